/**
 * Keyed fingerprints of whole sets: the sum mod 2^64 of a keyed PRF of each
 * id (hash.ts). It is what confirms a decode before a session reports
 * success, and what tells two equal sets apart from two that only look
 * alike to the unkeyed cells.
 *
 * Hashing a million ids takes ~30 ms, too slow to do per session, so a set
 * remembers the fingerprint under the few keys it was asked for last (a
 * connection's key stays the same for all its sessions) and a journal of
 * its changes since: asking again costs only hashing what changed. A key
 * that fell further behind than the journal reaches is hashed afresh.
 */
import { KeyedHash } from './hash'
import type { TreeData } from './tree-data'
import { ID_BYTES } from './ids'

/** Changes the journal remembers. */
const JOURNAL = 4096
/** Keys remembered at once. */
const KEYS = 8
/** Ids hashed per batch. */
const STAGE = 8192

/** A 64-bit sum as two 32-bit halves. */
export type Sum64 = [lo: number, hi: number]

export function add64 (a: Sum64, lo: number, hi: number): void {
  const s = (a[0] + lo) >>> 0
  a[1] = (a[1] + hi + (s < lo ? 1 : 0)) >>> 0
  a[0] = s
}

export function sub64 (a: Sum64, lo: number, hi: number): void {
  const s = (a[0] - lo) >>> 0
  a[1] = (a[1] - hi - (a[0] < lo ? 1 : 0)) >>> 0
  a[0] = s
}

/** Adds (sign 1) or subtracts (sign -1) the keyed hashes of the `n` ids at `flat` (aligned, back to back) to `acc`. */
export function sumHashes (h: KeyedHash, flat: Uint8Array, n: number, acc: Sum64, sign = 1): void {
  if (n === 0) return
  if ((flat.byteOffset & 3) !== 0) flat = flat.slice(0, n * ID_BYTES)
  const src = new Uint32Array(flat.buffer, flat.byteOffset, n * 8)
  const out = new Uint32Array(Math.min(n, STAGE) * 2)
  for (let i = 0; i < n; i += STAGE) {
    const k = Math.min(STAGE, n - i)
    h.many(src, i * 8, k, out, 0)
    for (let j = 0; j < k; j++) {
      if (sign === 1) add64(acc, out[j * 2]!, out[j * 2 + 1]!)
      else sub64(acc, out[j * 2]!, out[j * 2 + 1]!)
    }
  }
}

/** The keyed fingerprint of every id in `tree`. */
export function fingerprintOf (tree: TreeData, h: KeyedHash): Sum64 {
  const acc: Sum64 = [0, 0]
  const stage = new Uint8Array(STAGE * ID_BYTES)
  let staged = 0
  tree.forEachLeaf((buf, n) => {
    let i = 0
    while (i < n) {
      const k = Math.min(n - i, STAGE - staged)
      stage.set(buf.subarray(i * ID_BYTES, (i + k) * ID_BYTES), staged * ID_BYTES)
      staged += k
      i += k
      if (staged === STAGE) {
        sumHashes(h, stage, staged, acc)
        staged = 0
      }
    }
  })
  sumHashes(h, stage, staged, acc)
  return acc
}

interface Remembered {
  readonly hasher: KeyedHash
  readonly sum: Sum64
  /** Journal position the sum is up to date with. */
  pos: number
}

export class FingerprintCache {
  readonly #keys = new Map<string, Remembered>()
  #journal: Uint8Array | null = null
  readonly #signs = new Int8Array(JOURNAL)
  /** Changes ever journaled. */
  #pos = 0

  /** Notes one change (sign 1: inserted, -1: deleted) of the id at `id[0..32]`. */
  record (id: Uint8Array, sign: 1 | -1): void {
    if (this.#keys.size === 0) return
    if (this.#journal === null) this.#journal = new Uint8Array(JOURNAL * ID_BYTES)
    const slot = this.#pos % JOURNAL
    this.#journal.set(id.subarray(0, ID_BYTES), slot * ID_BYTES)
    this.#signs[slot] = sign
    this.#pos++
  }

  /** Forgets every remembered fingerprint (the set was replaced wholesale). */
  reset (): void {
    this.#keys.clear()
  }

  /** The fingerprint under `key` of the set whose live tree is `tree`. */
  get (key: Uint8Array, tree: TreeData): Sum64 {
    const name = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')
    let r = this.#keys.get(name)
    if (r !== undefined && this.#pos - r.pos > JOURNAL) r = undefined
    if (r === undefined) {
      const hasher = new KeyedHash(key)
      r = { hasher, sum: fingerprintOf(tree, hasher), pos: this.#pos }
    } else {
      this.#catchUp(r)
      this.#keys.delete(name)
    }
    this.#keys.set(name, r)
    if (this.#keys.size > KEYS) this.#keys.delete(this.#keys.keys().next().value!)
    return [r.sum[0], r.sum[1]]
  }

  #catchUp (r: Remembered): void {
    const n = this.#pos - r.pos
    if (n === 0) return
    const added = new Uint8Array(n * ID_BYTES)
    const removed = new Uint8Array(n * ID_BYTES)
    let a = 0
    let d = 0
    for (let p = r.pos; p < this.#pos; p++) {
      const slot = p % JOURNAL
      const src = this.#journal!.subarray(slot * ID_BYTES, (slot + 1) * ID_BYTES)
      if (this.#signs[slot] === 1) added.set(src, (a++) * ID_BYTES)
      else removed.set(src, (d++) * ID_BYTES)
    }
    sumHashes(r.hasher, added, a, r.sum, 1)
    sumHashes(r.hasher, removed, d, r.sum, -1)
    r.pos = this.#pos
  }
}
