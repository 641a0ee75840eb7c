/**
 * Ids in bulk: a side sends its ids under a prefix, sorted, in chunks of
 * what the receiver accepts per message. The bulk path (a cold or empty
 * peer) is this at the root; the tree walk uses it for small prefixes; the
 * symbols path for the ids the decoding side sends back.
 *
 * A chunk is a count with a "more" flag (count·2 + more), then the ids.
 * The reader checks each id is under the prefix and after the previous one,
 * so a peer cannot make us count an id twice or wander outside the prefix.
 */
import { INVALID_MESSAGE } from '../errors'
import { ID_BYTES, IdBuffer, compareAt, hasPrefix } from './ids'
import type { TreeData } from './tree-data'
import type { Reader, Writer } from './wire'

/** Where a transfer of ids under a prefix stands, both ways. */
export class IdStream {
  myCursor: Uint8Array | null = null
  myDone = false
  theirCursor: Uint8Array | null = null
  theirDone = false
  /** The remote's ids (kept when we answer with the ones beyond them). */
  theirList: IdBuffer | null = null

  constructor (readonly prefix: Uint8Array, readonly depth: number) {}

  /** Starts over, for the answer to a list. */
  restart (): void {
    this.myCursor = null
    this.theirCursor = null
    this.myDone = false
    this.theirDone = false
  }
}

/** What a reader of ids reports to: its session. */
export interface IdSink {
  /** Whether we hold the id (in the session's snapshot). */
  has (src: Uint8Array, at: number): boolean
  /** We lack the id: remember it (throws past the session's limit). */
  learn (src: Uint8Array, at: number): void
  /** Count an id kept for the remote against the session's limit (throws past it). */
  keep (): void
}

/**
 * Writes a chunk of our ids under the prefix (after the last one sent), at
 * most `budget.ids`; with `extras`, only those not in the remote's list.
 */
export function writeChunk (tree: TreeData, s: IdStream, w: Writer, budget: { ids: number }, extras: boolean): void {
  const runs: Array<[Uint8Array, number, number]> = []
  let k = 0
  let more = false
  const cap = budget.ids
  const list = extras ? s.theirList : null
  let last: Uint8Array | null = null
  let lastAt = 0
  tree.eachUnder(s.prefix, s.depth, s.myCursor, (buf, at) => {
    if (list !== null && list.includes(buf, at)) return true
    if (k >= cap) {
      more = true
      return false
    }
    k++
    last = buf
    lastAt = at
    const r = runs.length > 0 ? runs[runs.length - 1]! : null
    if (r !== null && r[0] === buf && r[1] + r[2] === at) r[2] += ID_BYTES
    else runs.push([buf, at, ID_BYTES])
    return true
  })
  budget.ids -= k
  w.uint(k * 2 + (more ? 1 : 0))
  for (const [buf, at, len] of runs) w.fixed(buf.subarray(at, at + len))
  if (last !== null) s.myCursor = (last as Uint8Array).slice(lastAt, lastAt + ID_BYTES)
  s.myDone = !more
}

/** Writes the given sorted ids (back to back in `ids`, from index `from`) as one chunk of at most `budget.ids`; returns where it stopped. */
export function writeListChunk (ids: Uint8Array, n: number, from: number, w: Writer, budget: { ids: number }): number {
  const k = Math.min(n - from, budget.ids)
  budget.ids -= k
  const more = from + k < n
  w.uint(k * 2 + (more ? 1 : 0))
  w.fixed(ids.subarray(from * ID_BYTES, (from + k) * ID_BYTES))
  return from + k
}

/**
 * Reads their chunk of ids under the prefix: learns the ones we lack.
 * `keep`: also keeps all of them (their list, to answer with our extras).
 */
export function readChunk (s: IdStream, r: Reader, budget: { ids: number }, keep: boolean, sink: IdSink): void {
  const head = r.uint()
  const k = Math.floor(head / 2)
  if (k > budget.ids) throw INVALID_MESSAGE('Too many ids in one message')
  budget.ids -= k
  const ids = r.fixed(k * ID_BYTES)
  let prev = s.theirCursor
  let prevAt = 0
  for (let i = 0; i < k; i++) {
    const at = i * ID_BYTES
    if (!hasPrefix(ids, at, s.prefix, s.depth)) throw INVALID_MESSAGE('Id outside its prefix')
    if (prev !== null && compareAt(prev, prevAt, ids, at) >= 0) throw INVALID_MESSAGE('Ids not sorted')
    prev = ids
    prevAt = at
    if (keep) {
      sink.keep()
      if (s.theirList === null) s.theirList = new IdBuffer(Math.min(k, 1024))
      s.theirList.push(ids, at)
    }
    if (!sink.has(ids, at)) sink.learn(ids, at)
  }
  if (k > 0) s.theirCursor = ids.slice((k - 1) * ID_BYTES, k * ID_BYTES)
  s.theirDone = (head & 1) === 0
}
