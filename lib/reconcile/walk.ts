/**
 * The tree walk: the fallback when decoding coded symbols stalls or cannot
 * be confirmed (crafted colliding ids, an unlucky draw), and the engine of
 * the bulk path. It compares keyed fingerprints of prefixes of the two
 * prefix trees, level by level, and always finds the exact difference.
 *
 * Both sides keep the same agenda — a list of open prefixes, each with what
 * both sides said about it — and every message carries, in agenda order,
 * the sender's part for the prefixes it has something to say about. What
 * happens to a prefix depends only on what both sides said, so both always
 * agree on the next agenda, and on when it is empty:
 *
 *  - same count and fingerprint: done.
 *  - one side has none: the other sends all its ids under it (bulk).
 *  - one side has ≤ 4, or 8× fewer ids: it sends them; the other answers
 *    with the ones it has beyond them (so a cold peer gets bulk too).
 *  - counts differ by 1 or 2 and differences are sparse at this depth: the
 *    side with more finds the 1 or 2 ids whose keyed hashes sum to the
 *    fingerprint difference and sends just those; the other checks them.
 *    Not found: it sends its ids (small prefix) or its children instead.
 *  - both sides have ≤ 24 ids: both send an 8-byte keyed hash of each, then
 *    each sends the ids whose hashes the other lacks.
 *  - otherwise both send the children (walk-kids.ts), with path
 *    compression and heavy paths.
 */
import { INVALID_MESSAGE } from '../errors'
import { ID_BYTES, MAX_DEPTH, IdBuffer, nibbleAt, childPrefix, compareAt, hasPrefix } from './ids'
import type { TreeData } from './tree-data'
import { IdStream, writeChunk, readChunk, type IdSink } from './bulk'
import { Kids, HASH_MAX, writeKids, readKids } from './walk-kids'
import type { KeyedIndex } from './walk-index'
import type { Reader, Writer } from './wire'

/** A prefix with at most this many ids on a side is settled by sending ids. */
export const LIST_MAX = 4
/** ... as is one where one side has this many times fewer ids than the other. */
export const COLD_RATIO = 8
/** Expected differences per node up to which a count difference of 1 or 2 is decoded by search. */
const SPARSE = 3
/** Bytes a prefix can take in a message, at most (a heavy path of children lists). */
const MAX_TASK_BYTES = MAX_DEPTH * (16 * 17 + 16) + 64

// What a prefix is waiting for in the current round.
const K_CHILDREN = 1 // both: the 16 children
const K_SINGLE = 2 // the side with 1–2 more ids: those ids, or its children, or its ids
const K_HALF = 3 // the side that has not sent its children yet: its children
const K_ALL = 4 // the side with ids (the other has none): all of them, in chunks
const K_LIST = 5 // the side(s) with few ids: all of them, in chunks
const K_EXTRAS = 6 // the side that got the other's list: its ids not in the list, in chunks
const K_HASHES = 7 // both: the keyed hash of each of their ids
const K_HEXTRAS = 8 // both, after K_HASHES: the ids the other lacks

const ME = 1
const THEM = 2
const BOTH = 3

const TAG_IDS = 0
const TAG_CHILDREN = 1
const TAG_LIST = 2

/** What the walk needs from its session. */
export interface WalkContext extends IdSink {
  readonly tree: TreeData
  /** The keyed fingerprints of our snapshot (built on first use). */
  index (): KeyedIndex
  /** The keyed hash of one id, into out[0..2]. */
  hashOne (src: Uint8Array, at: number, out: Uint32Array): void
  /** Most ids we accept in one message, and the remote does. */
  readonly recvLimit: number
  readonly peerLimit: number
  readonly maxOpen: number
  /** Estimated number of differences (-1: unknown), and whether they are mostly on one side. */
  readonly estimate: number
  readonly oneSided: boolean
}

/** One open prefix. */
class Task extends IdStream {
  kind = 0
  actor = 0
  k = 0
  mc = 0
  mlo = 0
  mhi = 0
  tc = 0
  tlo = 0
  thi = 0
  myKids: Kids | null = null
  theirKids: Kids | null = null
  myTag = -1
  theirTag = -1
  theirHashes: Uint32Array | null = null
}

/** Which sides settle a prefix with these counts by sending their ids (0: neither, descend). */
function listers (mc: number, tc: number): number {
  if (mc <= LIST_MAX && tc <= LIST_MAX) return BOTH
  const min = Math.min(mc, tc)
  const max = Math.max(mc, tc)
  if (min <= LIST_MAX || min * COLD_RATIO <= max) return mc < tc ? ME : THEM
  return 0
}

/** Whether a walk over sets of these sizes settles the root by sending ids: the bulk path. */
export function startsInBulk (mc: number, tc: number): boolean {
  return mc === 0 || tc === 0 || (mc !== tc && listers(mc, tc) !== 0)
}

export class TreeWalk {
  readonly #ctx: WalkContext
  #agenda: Task[] = []
  readonly #h = new Uint32Array(2)

  /** Starts at the root, with both counts and both fingerprints of the whole sets known. */
  constructor (ctx: WalkContext, mc: number, tc: number, mlo: number, mhi: number, tlo: number, thi: number) {
    this.#ctx = ctx
    const root = new Task(new Uint8Array(ID_BYTES), 0)
    root.mc = mc
    root.tc = tc
    root.mlo = mlo
    root.mhi = mhi
    root.tlo = tlo
    root.thi = thi
    this.#classify(root, this.#agenda)
  }

  get done (): boolean {
    return this.#agenda.length === 0
  }

  /** The largest message the remote may send us next. */
  get maxMessageBytes (): number {
    return 64 + this.#ctx.recvLimit * ID_BYTES + this.#agenda.length * MAX_TASK_BYTES
  }

  compose (w: Writer): void {
    const budget = { ids: Math.min(this.#ctx.peerLimit, this.#ctx.recvLimit) }
    for (const task of this.#agenda) this.#composeTask(task, w, budget)
  }

  receive (r: Reader): void {
    const budget = { ids: this.#ctx.recvLimit }
    const next: Task[] = []
    for (const task of this.#agenda) {
      this.#decodeTask(task, r, budget)
      this.#resolveTask(task, next)
      if (next.length > this.#ctx.maxOpen) throw INVALID_MESSAGE('Too many open prefixes')
    }
    this.#agenda = next
  }

  // ---------------------------------------------------------------------
  // Planning

  /** Whether differences are sparse enough at `depth` to decode a count difference by search. */
  #sparse (depth: number): boolean {
    const e = this.#ctx.estimate
    return e < 0 || this.#ctx.oneSided || e / Math.pow(16, depth) <= SPARSE
  }

  /** Decides what a compared prefix needs next (counts and fingerprints known). */
  #classify (t: Task, out: Task[], mine: Kids | null = null, theirs: Kids | null = null): void {
    const mc = t.mc
    const tc = t.tc
    if (mc === tc && t.mlo === t.tlo && t.mhi === t.thi) return
    if (mc === 0 || tc === 0) {
      if (mc === 0 && tc === 0) return
      t.kind = K_ALL
      t.actor = tc === 0 ? ME : THEM
      out.push(t)
      return
    }
    const diff = mc - tc
    const ad = Math.abs(diff)
    if (ad <= 2 && ad >= 1 && this.#sparse(t.depth)) {
      t.kind = K_SINGLE
      t.actor = diff > 0 ? ME : THEM
      t.k = ad
      out.push(t)
      return
    }
    const l = listers(mc, tc)
    if (l !== 0 || t.depth >= MAX_DEPTH) {
      t.kind = K_LIST
      t.actor = l === 0 ? BOTH : l
      out.push(t)
      return
    }
    if (mine !== null && theirs !== null) {
      this.#compareSpans(t, mine, theirs, out)
      return
    }
    t.kind = Math.max(mc, tc) <= HASH_MAX ? K_HASHES : K_CHILDREN
    t.actor = BOTH
    out.push(t)
  }

  /** Compares children that may come with path compression (see Kids). */
  #compareSpans (parent: Task, mine: Kids, theirs: Kids, out: Task[]): void {
    const p = parent.depth
    const qm = mine.q
    const qt = theirs.q
    if (qm === p && qt === p) {
      this.#compareKids(parent, mine, theirs, out)
      return
    }
    const pm = mine.qp ?? parent.prefix
    const pt = theirs.qp ?? parent.prefix
    let l = p
    const lim = Math.min(qm, qt)
    while (l < lim && nibbleAt(pm, 0, l) === nibbleAt(pt, 0, l)) l++
    if (qm === qt && l === qm) {
      this.#compareKids(new Task(pm, qm), mine, theirs, out)
      return
    }
    if (l < qm && l < qt) {
      // The spans part ways: no id in common, each side gets all of the other's.
      const a = new Task(pm, qm)
      a.kind = K_ALL
      a.actor = ME
      a.mc = parent.mc
      const b = new Task(pt, qt)
      b.kind = K_ALL
      b.actor = THEM
      b.tc = parent.tc
      if (nibbleAt(pm, 0, l) < nibbleAt(pt, 0, l)) out.push(a, b)
      else out.push(b, a)
      return
    }
    // One span lies inside the other: compare under the shorter one, the
    // longer one's side holding all its ids in one of those children.
    const inner = qm > qt // my span is the longer one
    const short = inner ? theirs : mine
    const q = short.q
    const sp = inner ? pt : pm
    const c = nibbleAt(inner ? pm : pt, 0, q)
    const whole = inner ? mine : theirs
    let wlo = 0
    let whi = 0
    for (let v = 0; v < 16; v++) {
      if (whole.c[v] === 0) continue
      const s = (wlo + whole.lo[v]!) >>> 0
      whi = (whi + whole.hi[v]! + (s < wlo ? 1 : 0)) >>> 0
      wlo = s
    }
    for (let v = 0; v < 16; v++) {
      if (short.c[v] === 0 && v !== c) continue
      const t = new Task(childPrefix(sp, q, v), q + 1)
      const sc = short.c[v]!
      const slo = short.lo[v]!
      const shi = short.hi[v]!
      const [wc, wl, wh] = v === c ? [inner ? parent.mc : parent.tc, wlo, whi] : [0, 0, 0]
      if (inner) {
        t.mc = wc; t.mlo = wl; t.mhi = wh
        t.tc = sc; t.tlo = slo; t.thi = shi
      } else {
        t.mc = sc; t.mlo = slo; t.mhi = shi
        t.tc = wc; t.tlo = wl; t.thi = wh
      }
      this.#classify(t, out)
    }
  }

  #compareKids (parent: Task, mine: Kids, theirs: Kids, out: Task[]): void {
    for (let v = 0; v < 16; v++) {
      const a = mine.c[v]!
      const b = theirs.c[v]!
      if (a === 0 && b === 0) continue
      const t = new Task(childPrefix(parent.prefix, parent.depth, v), parent.depth + 1)
      t.mc = a
      t.mlo = mine.lo[v]!
      t.mhi = mine.hi[v]!
      t.tc = b
      t.tlo = theirs.lo[v]!
      t.thi = theirs.hi[v]!
      const g1 = mine.hv === v ? mine.heavy : null
      const g2 = theirs.hv === v ? theirs.heavy : null
      this.#classify(t, out, g1, g2)
    }
  }

  // ---------------------------------------------------------------------
  // Composing our part

  #composeTask (t: Task, w: Writer, budget: { ids: number }): void {
    const ctx = this.#ctx
    switch (t.kind) {
      case K_CHILDREN:
        this.#writeKids(t, w)
        return
      case K_SINGLE: {
        if (t.actor !== ME) return
        const dlo = (t.mlo - t.tlo) >>> 0
        const dhi = (t.mhi - t.thi - (t.mlo < t.tlo ? 1 : 0)) >>> 0
        const found = ctx.index().search(t.prefix, t.depth, t.k, dlo, dhi)
        if (found !== null) {
          t.myTag = TAG_IDS
          w.u8(TAG_IDS)
          w.fixed(found)
        } else if (t.mc <= HASH_MAX || t.depth >= MAX_DEPTH) {
          // A small prefix: all our ids, the other side answers with what it has beyond them.
          t.myTag = TAG_LIST
          w.u8(TAG_LIST)
          writeChunk(ctx.tree, t, w, { ids: Number.MAX_SAFE_INTEGER }, false)
        } else {
          t.myTag = TAG_CHILDREN
          w.u8(TAG_CHILDREN)
          this.#writeKids(t, w)
        }
        return
      }
      case K_HALF:
        if (t.actor === ME) this.#writeKids(t, w)
        return
      case K_ALL:
        if (t.actor === ME) writeChunk(ctx.tree, t, w, budget, false)
        return
      case K_LIST:
        if ((t.actor & ME) !== 0 && !t.myDone) writeChunk(ctx.tree, t, w, budget, false)
        return
      case K_EXTRAS:
        if (t.actor === ME) writeChunk(ctx.tree, t, w, budget, true)
        return
      case K_HASHES: {
        // The keyed hash of each of our ids under the prefix (as many as our count says).
        const index = ctx.index()
        const h = this.#h
        index.walk(t.prefix, t.depth, null, (_buf, _at, leaf, i) => {
          index.idHash(leaf, i, h)
          w.fp(h[0]!, h[1]!)
          return true
        })
        return
      }
      case K_HEXTRAS:
        this.#writeUnhashed(t, w)
    }
  }

  /** Our children of the prefix (kept, to compare with theirs). */
  #writeKids (t: Task, w: Writer): void {
    t.myKids = this.#ctx.index().kidsAt(t.prefix, t.depth)
    writeKids(w, t.myKids, t.depth, t.mc)
  }

  /** Our ids under the prefix whose hashes are not among theirs, as one chunk. */
  #writeUnhashed (t: Task, w: Writer): void {
    const index = this.#ctx.index()
    const theirs = t.theirHashes!
    const ids = new IdBuffer(4)
    const h = this.#h
    index.walk(t.prefix, t.depth, null, (buf, at, leaf, i) => {
      index.idHash(leaf, i, h)
      for (let m = 0; m < theirs.length; m += 2) if (theirs[m] === h[0] && theirs[m + 1] === h[1]) return true
      ids.push(buf, at)
      return true
    })
    w.uint(ids.n * 2)
    w.fixed(ids.buf.subarray(0, ids.n * ID_BYTES))
  }

  // ---------------------------------------------------------------------
  // Decoding their part

  #decodeTask (t: Task, r: Reader, budget: { ids: number }): void {
    const ctx = this.#ctx
    switch (t.kind) {
      case K_CHILDREN:
        t.theirKids = readKids(r, t.prefix, t.depth, t.tc, t.tlo, t.thi)
        return
      case K_SINGLE: {
        if (t.actor !== THEM) return
        const tag = t.theirTag = r.u8()
        if (tag === TAG_IDS) {
          const ids = r.fixed(t.k * ID_BYTES)
          const h = this.#h
          let lo = 0
          let hi = 0
          for (let i = 0; i < t.k; i++) {
            const at = i * ID_BYTES
            if (!hasPrefix(ids, at, t.prefix, t.depth)) throw INVALID_MESSAGE('Id outside its prefix')
            if (i > 0 && compareAt(ids, at - ID_BYTES, ids, at) >= 0) throw INVALID_MESSAGE('Ids not sorted')
            ctx.hashOne(ids, at, h)
            const s = (lo + h[0]!) >>> 0
            hi = (hi + h[1]! + (s < h[0]! ? 1 : 0)) >>> 0
            lo = s
          }
          const dlo = (t.tlo - t.mlo) >>> 0
          const dhi = (t.thi - t.mhi - (t.tlo < t.mlo ? 1 : 0)) >>> 0
          if (lo !== dlo || hi !== dhi) throw INVALID_MESSAGE('Ids do not match the fingerprints')
          for (let i = 0; i < t.k; i++) if (!ctx.has(ids, i * ID_BYTES)) ctx.learn(ids, i * ID_BYTES)
        } else if (tag === TAG_CHILDREN) {
          if (t.depth >= MAX_DEPTH) throw INVALID_MESSAGE('No children below a whole id')
          t.theirKids = readKids(r, t.prefix, t.depth, t.tc, t.tlo, t.thi)
        } else if (tag === TAG_LIST) {
          readChunk(t, r, { ids: HASH_MAX }, true, ctx)
          if (!t.theirDone) throw INVALID_MESSAGE('A short list comes in one piece')
        } else {
          throw INVALID_MESSAGE('Unknown tag')
        }
        return
      }
      case K_HALF:
        if (t.actor === THEM) t.theirKids = readKids(r, t.prefix, t.depth, t.tc, t.tlo, t.thi)
        return
      case K_ALL:
        if (t.actor === THEM) readChunk(t, r, budget, false, ctx)
        return
      case K_LIST:
        if ((t.actor & THEM) !== 0 && !t.theirDone) readChunk(t, r, budget, (t.actor & ME) === 0, ctx)
        return
      case K_EXTRAS:
        if (t.actor === THEM) readChunk(t, r, budget, false, ctx)
        return
      case K_HASHES: {
        const out = new Uint32Array(t.tc * 2)
        for (let i = 0; i < t.tc; i++) r.fp(out, i * 2)
        t.theirHashes = out
        return
      }
      case K_HEXTRAS:
        readChunk(t, r, { ids: HASH_MAX }, false, ctx)
        if (!t.theirDone) throw INVALID_MESSAGE('Unhashed ids come in one piece')
    }
  }

  // ---------------------------------------------------------------------
  // After both parts of a round

  #resolveTask (t: Task, out: Task[]): void {
    switch (t.kind) {
      case K_CHILDREN:
      case K_HALF:
        this.#compareSpans(t, t.myKids!, t.theirKids!, out)
        return
      case K_SINGLE: {
        const tag = t.actor === ME ? t.myTag : t.theirTag
        if (tag === TAG_IDS) return
        if (tag === TAG_CHILDREN) {
          // The side ahead sent its children; the other sends its own next round.
          t.kind = K_HALF
          t.actor = t.actor === ME ? THEM : ME
          out.push(t)
          return
        }
        // A list from the side ahead, in one piece: the other answers with its extras.
        this.#answerList(t, t.actor === ME ? THEM : ME, out)
        return
      }
      case K_ALL:
        if (t.actor === ME ? !t.myDone : !t.theirDone) out.push(t)
        return
      case K_LIST: {
        const meSends = (t.actor & ME) !== 0
        const theySend = (t.actor & THEM) !== 0
        if ((meSends && !t.myDone) || (theySend && !t.theirDone)) {
          out.push(t)
          return
        }
        if (meSends && theySend) return
        // One side listed all its ids: the other sends what it has beyond them.
        this.#answerList(t, meSends ? THEM : ME, out)
        return
      }
      case K_EXTRAS:
        if (t.actor === ME ? !t.myDone : !t.theirDone) out.push(t)
        return
      case K_HASHES:
        t.kind = K_HEXTRAS
        t.actor = BOTH
        out.push(t)
    }
  }

  #answerList (t: Task, actor: number, out: Task[]): void {
    t.kind = K_EXTRAS
    t.actor = actor
    if (actor === ME && t.theirList === null) t.theirList = new IdBuffer(1)
    t.restart()
    out.push(t)
  }
}
