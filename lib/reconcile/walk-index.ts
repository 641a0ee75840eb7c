/**
 * What the tree walk reads from one side's snapshot: the keyed fingerprint
 * of every node and every id (hashed once per session, when a session
 * falls back to the walk), and the queries the walk makes of the tree —
 * the ids under a prefix, in order; a prefix's fingerprint and children;
 * the 1 or 2 ids whose hashes make up a fingerprint difference.
 */
import type { KeyedHash } from './hash'
import type { TreeData, IdVisitor } from './tree-data'
import { ID_BYTES, nibbleAt, childPrefix } from './ids'
import { Kids, heavyChild } from './walk-kids'

export class KeyedIndex {
  readonly #tree: TreeData
  /** Keyed hash of every id (2 words), leaf by leaf from `base[leaf]`. */
  readonly #idH: Uint32Array
  readonly #base: Int32Array
  /** Keyed fingerprint of every node (2 words). */
  readonly #node: Uint32Array

  readonly #loc = new Int32Array(3)

  constructor (t: TreeData, h: KeyedHash) {
    this.#tree = t
    this.#base = new Int32Array(t.top)
    this.#node = new Uint32Array(t.top * 2)
    this.#idH = new Uint32Array(t.size * 2)
    const STAGE = 8192
    const stage = new Uint32Array(STAGE * 8)
    let staged = 0
    let flushed = 0
    let next = 0
    const flush = (): void => {
      if (staged === 0) return
      h.many(stage, 0, staged, this.#idH, flushed * 2)
      flushed += staged
      staged = 0
    }
    const leaves = (node: number): void => {
      const first = t.child[node]!
      if (first >= 0) {
        for (let v = 0; v < 16; v++) if (t.count[first + v]! > 0) leaves(first + v)
        return
      }
      const n = t.count[node]!
      this.#base[node] = next
      next += n
      if (n === 0) return
      const buf = t.leaves[node]!
      const w = new Uint32Array(buf.buffer, buf.byteOffset, n * 8)
      let i = 0
      while (i < n) {
        const k = Math.min(n - i, STAGE - staged)
        stage.set(w.subarray(i * 8, (i + k) * 8), staged * 8)
        staged += k
        i += k
        if (staged === STAGE) flush()
      }
    }
    leaves(0)
    flush()
    const sums = (node: number): void => {
      const first = t.child[node]!
      let lo = 0
      let hi = 0
      if (first >= 0) {
        for (let v = 0; v < 16; v++) {
          const ch = first + v
          if (t.count[ch] === 0) continue
          sums(ch)
          const a = this.#node[ch * 2]!
          const s = (lo + a) >>> 0
          hi = (hi + this.#node[ch * 2 + 1]! + (s < a ? 1 : 0)) >>> 0
          lo = s
        }
      } else {
        const b = this.#base[node]!
        const n = t.count[node]!
        for (let i = 0; i < n; i++) {
          const a = this.#idH[(b + i) * 2]!
          const s = (lo + a) >>> 0
          hi = (hi + this.#idH[(b + i) * 2 + 1]! + (s < a ? 1 : 0)) >>> 0
          lo = s
        }
      }
      this.#node[node * 2] = lo
      this.#node[node * 2 + 1] = hi
    }
    sums(0)
  }

  /** The keyed hash of the id at index i of leaf `leaf`, into out[o..o+2]. */
  idHash (leaf: number, i: number, out: Uint32Array | number[], o = 0): void {
    const j = (this.#base[leaf]! + i) * 2
    out[o] = this.#idH[j]!
    out[o + 1] = this.#idH[j + 1]!
  }

  /** Our ids under the prefix, in order, after `after` (exclusive), until `fn` returns false. */
  walk (prefix: Uint8Array, depth: number, after: Uint8Array | null, fn: IdVisitor): void {
    this.#tree.eachUnder(prefix, depth, after, fn)
  }

  /**
   * Our 16 children of a prefix: counts and keyed fingerprints — of the
   * longest prefix all our ids under it share (when that is longer), with
   * the heavy path.
   */
  kidsAt (prefix: Uint8Array, depth: number): Kids {
    const t = this.#tree
    const kids = new Kids()
    kids.q = depth
    const a = t.endUnder(prefix, depth, false)
    const b = t.endUnder(prefix, depth, true)
    if (a !== null && b !== null && (a[0] !== b[0] || a[1] !== b[1])) {
      // Two different ids differ at some digit before the last: q < MAX_DEPTH.
      let q = depth
      while (nibbleAt(a[0], a[1], q) === nibbleAt(b[0], b[1], q)) q++
      if (q > depth) {
        const qp = new Uint8Array(ID_BYTES)
        qp.set(a[0].subarray(a[1], a[1] + ((q + 1) >>> 1)))
        if ((q & 1) === 1) qp[q >>> 1] = qp[q >>> 1]! & 0xf0
        kids.qp = qp
        kids.q = q
        prefix = qp
        depth = q
      }
    }
    const loc = this.#loc
    t.locate(prefix, depth, loc)
    if (loc[1] === -1) {
      const first = t.child[loc[0]!]!
      for (let v = 0; v < 16; v++) {
        kids.c[v] = t.count[first + v]!
        kids.lo[v] = this.#node[(first + v) * 2]!
        kids.hi[v] = this.#node[(first + v) * 2 + 1]!
      }
    } else {
      const buf = t.leaves[loc[0]!]
      const b = this.#base[loc[0]!]!
      for (let i = loc[1]!; i < loc[2]!; i++) {
        const v = nibbleAt(buf!, i * ID_BYTES, depth)
        kids.c[v]!++
        const a = this.#idH[(b + i) * 2]!
        const s = (kids.lo[v]! + a) >>> 0
        kids.hi[v] = kids.hi[v]! + this.#idH[(b + i) * 2 + 1]! + (s < a ? 1 : 0)
        kids.lo[v] = s
      }
    }
    let pc = 0
    for (let v = 0; v < 16; v++) pc += kids.c[v]!
    const hv = heavyChild(kids, pc)
    if (hv >= 0) {
      kids.hv = hv
      kids.heavy = this.kidsAt(childPrefix(prefix, depth, hv), depth + 1)
    }
    return kids
  }

  /**
   * Our `k` (1 or 2) ids under the prefix whose keyed hashes sum to the
   * fingerprint difference (dlo, dhi), sorted, back to back; or null.
   */
  search (prefix: Uint8Array, depth: number, k: number, dlo: number, dhi: number): Uint8Array | null {
    let found: Uint8Array | null = null
    if (k === 1) {
      this.walk(prefix, depth, null, (buf, at, leaf, i) => {
        const j = (this.#base[leaf]! + i) * 2
        if (this.#idH[j] !== dlo || this.#idH[j + 1] !== dhi) return true
        found = buf.slice(at, at + ID_BYTES)
        return false
      })
      return found
    }
    // Two ids: remember each hash, look for the complement.
    const his: number[] = []
    const where: Array<[Uint8Array, number]> = []
    const byLo = new Map<number, number>()
    const chain: number[] = []
    this.walk(prefix, depth, null, (buf, at, leaf, i) => {
      const j = (this.#base[leaf]! + i) * 2
      const lo = this.#idH[j]!
      const hi = this.#idH[j + 1]!
      const needLo = (dlo - lo) >>> 0
      const needHi = (dhi - hi - (dlo < lo ? 1 : 0)) >>> 0
      for (let m = byLo.get(needLo) ?? -1; m >= 0; m = chain[m]!) {
        if (his[m] === needHi) {
          const [b2, at2] = where[m]!
          const out = new Uint8Array(2 * ID_BYTES)
          // b2 comes first: it was walked earlier, and the walk is in order.
          out.set(b2.subarray(at2, at2 + ID_BYTES), 0)
          out.set(buf.subarray(at, at + ID_BYTES), ID_BYTES)
          found = out
          return false
        }
      }
      const idx = his.length
      his.push(hi)
      where.push([buf, at])
      chain.push(byLo.get(lo) ?? -1)
      byLo.set(lo, idx)
      return true
    })
    return found
  }
}
