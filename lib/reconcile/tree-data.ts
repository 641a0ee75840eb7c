/**
 * The nodes of a 16-way prefix tree of ids, as typed arrays indexed by node
 * number (struct of arrays, so a million ids cost no million objects):
 * count, first child (children come in blocks of 16, one per hex digit; -1
 * marks a leaf), depth, a 64-bit sum of the unkeyed `mix64(id)` and the XOR
 * of the ids under the node. A leaf holds its ids sorted in one Uint8Array.
 *
 * `PrefixTree` (prefix-tree.ts) owns a mutable one and hands sessions the
 * same object as an immutable snapshot, copying it before it next writes.
 * Everything here only reads.
 */
import { ID_BYTES, nibbleAt, searchLeaf, comparePrefix, words } from './ids'
import { mixHi, mixLo } from './hash'

/** The unkeyed summary of the ids under a prefix: what the tree keeps per node. */
export interface NodeSummary {
  count: number
  /** Sum of mix64(id) mod 2^64, 8 bytes little endian. */
  sum: Uint8Array
  /** XOR of the ids. */
  xor: Uint8Array
}

/** Called with an id under a prefix: the leaf's buffer, the id's offset, the leaf node, the id's index; false stops. */
export type IdVisitor = (buf: Uint8Array, at: number, leaf: number, i: number) => boolean

export class TreeData {
  count: Uint32Array
  child: Int32Array
  depth: Uint8Array
  /** 2 words per node: sum of mix64(id), low then high. */
  sums: Uint32Array
  /** 8 words per node: XOR of the ids, in memory order. */
  xors: Int32Array
  /** Sorted ids of each leaf (null for inner nodes and empty leaves). */
  leaves: Array<Uint8Array | null>
  /** Nodes in use are below this. */
  top: number

  constructor (cap: number) {
    this.count = new Uint32Array(cap)
    this.child = new Int32Array(cap).fill(-1)
    this.depth = new Uint8Array(cap)
    this.sums = new Uint32Array(cap * 2)
    this.xors = new Int32Array(cap * 8)
    this.leaves = new Array<Uint8Array | null>(cap).fill(null)
    this.top = 1
  }

  get size (): number {
    return this.count[0]!
  }

  /** A copy of the node arrays (room for `cap` nodes) sharing the leaves, which then must not change in place. */
  clone (cap = this.top): TreeData {
    const t = new TreeData(0)
    const n = this.top
    t.count = new Uint32Array(cap)
    t.count.set(this.count.subarray(0, n))
    t.child = new Int32Array(cap)
    t.child.set(this.child.subarray(0, n))
    if (cap > n) t.child.fill(-1, n)
    t.depth = new Uint8Array(cap)
    t.depth.set(this.depth.subarray(0, n))
    t.sums = new Uint32Array(cap * 2)
    t.sums.set(this.sums.subarray(0, n * 2))
    t.xors = new Int32Array(cap * 8)
    t.xors.set(this.xors.subarray(0, n * 8))
    const leaves = new Array<Uint8Array | null>(cap)
    for (let i = 0; i < n; i++) leaves[i] = this.leaves[i]!
    for (let i = n; i < cap; i++) leaves[i] = null
    t.leaves = leaves
    t.top = n
    return t
  }

  /** The leaf the id would be in. */
  leafOf (id: Uint8Array, at: number): number {
    let node = 0
    const child = this.child
    while (child[node]! >= 0) node = child[node]! + nibbleAt(id, at, this.depth[node]!)
    return node
  }

  has (id: Uint8Array, at = 0): boolean {
    const leaf = this.leafOf(id, at)
    const n = this.count[leaf]!
    return n > 0 && searchLeaf(this.leaves[leaf]!, n, id, at) >= 0
  }

  /**
   * The one id whose first `depth` digits are those of `prefix`: its
   * buffer and offset, `null` when there is none, `'many'` when there are
   * several.
   */
  onlyUnder (prefix: Uint8Array, depth: number): [Uint8Array, number] | null | 'many' {
    const loc = new Int32Array(3)
    this.locate(prefix, depth, loc)
    const node = loc[0]!
    if (loc[1] === -1) return this.count[node]! > 1 ? 'many' : null
    const k = loc[2]! - loc[1]!
    if (k === 0) return null
    return k > 1 ? 'many' : [this.leaves[node]!, loc[1]! * ID_BYTES]
  }

  /**
   * Finds a prefix: into `out`, [node, -1, -1] for an inner node exactly at
   * it, or [leaf, s, e] for the leaf holding it with its ids in [s, e).
   */
  locate (prefix: Uint8Array, depth: number, out: Int32Array): void {
    let node = 0
    while (this.child[node]! >= 0 && this.depth[node]! < depth) node = this.child[node]! + nibbleAt(prefix, 0, this.depth[node]!)
    out[0] = node
    if (this.child[node]! >= 0) {
      out[1] = -1
      out[2] = -1
      return
    }
    const n = this.count[node]!
    if (this.depth[node] === depth || n === 0) {
      out[1] = 0
      out[2] = n
      return
    }
    const buf = this.leaves[node]!
    let s = 0
    while (s < n && comparePrefix(buf, s * ID_BYTES, prefix, depth) < 0) s++
    let e = s
    while (e < n && comparePrefix(buf, e * ID_BYTES, prefix, depth) === 0) e++
    out[1] = s
    out[2] = e
  }

  /**
   * Calls `fn` with our ids under the prefix, in order, after `after`
   * (exclusive): the leaf's buffer, the id's offset, the leaf node and the
   * id's index in it. Stops when `fn` returns false.
   */
  eachUnder (prefix: Uint8Array, depth: number, after: Uint8Array | null, fn: IdVisitor): void {
    const loc = new Int32Array(3)
    this.locate(prefix, depth, loc)
    const node = loc[0]!
    if (loc[1] !== -1) {
      const buf = this.leaves[node]
      if (buf === null) return
      let i = loc[1]!
      if (after !== null) {
        const p = searchLeaf(buf, this.count[node]!, after, 0)
        i = Math.max(i, p >= 0 ? p + 1 : ~p)
      }
      for (const e = loc[2]!; i < e; i++) if (!fn(buf, i * ID_BYTES, node, i)) return
      return
    }
    this.#eachNode(node, after, after !== null, fn)
  }

  #eachNode (node: number, after: Uint8Array | null, bounded: boolean, fn: IdVisitor): boolean {
    const first = this.child[node]!
    if (first >= 0) {
      const a = bounded ? nibbleAt(after!, 0, this.depth[node]!) : 0
      for (let v = a; v < 16; v++) {
        if (this.count[first + v] === 0) continue
        if (!this.#eachNode(first + v, after, bounded && v === a, fn)) return false
      }
      return true
    }
    const n = this.count[node]!
    if (n === 0) return true
    const buf = this.leaves[node]!
    let i = 0
    if (bounded) {
      const p = searchLeaf(buf, n, after!, 0)
      i = p >= 0 ? p + 1 : ~p
    }
    for (; i < n; i++) if (!fn(buf, i * ID_BYTES, node, i)) return false
    return true
  }

  /** The id at one end of our ids under a prefix (first or last), as [buffer, offset], or null. */
  endUnder (prefix: Uint8Array, depth: number, last: boolean): [Uint8Array, number] | null {
    const loc = new Int32Array(3)
    this.locate(prefix, depth, loc)
    if (loc[1] !== -1) {
      if (loc[2]! <= loc[1]!) return null
      return [this.leaves[loc[0]!]!, (last ? loc[2]! - 1 : loc[1]!) * ID_BYTES]
    }
    let node = loc[0]!
    while (this.child[node]! >= 0) {
      const first = this.child[node]!
      let next = -1
      for (let k = 0; k < 16; k++) {
        const v = last ? 15 - k : k
        if (this.count[first + v]! > 0) {
          next = first + v
          break
        }
      }
      if (next < 0) return null
      node = next
    }
    const n = this.count[node]!
    return n === 0 ? null : [this.leaves[node]!, (last ? n - 1 : 0) * ID_BYTES]
  }

  /** Calls fn for every id in order with the leaf's buffer and the id's offset in it. */
  forEach (fn: (buf: Uint8Array, at: number) => void, node = 0): void {
    const first = this.child[node]!
    if (first >= 0) {
      for (let v = 0; v < 16; v++) if (this.count[first + v]! > 0) this.forEach(fn, first + v)
      return
    }
    const buf = this.leaves[node]
    const n = this.count[node]!
    for (let i = 0; i < n; i++) fn(buf!, i * ID_BYTES)
  }

  /** Calls fn with each non-empty leaf's buffer and id count, in order. */
  forEachLeaf (fn: (buf: Uint8Array, n: number, node: number) => void, node = 0): void {
    const first = this.child[node]!
    if (first >= 0) {
      for (let v = 0; v < 16; v++) if (this.count[first + v]! > 0) this.forEachLeaf(fn, first + v)
      return
    }
    const n = this.count[node]!
    if (n > 0) fn(this.leaves[node]!, n, node)
  }

  /** All ids, sorted, as one buffer. */
  flat (): Uint8Array {
    const out = new Uint8Array(this.size * ID_BYTES)
    let o = 0
    this.forEachLeaf((buf, n) => {
      out.set(buf.subarray(0, n * ID_BYTES), o)
      o += n * ID_BYTES
    })
    return out
  }

  /** Summary of the ids whose first `depth` digits are those of `prefix`. */
  summary (prefix: Uint8Array, depth: number): NodeSummary {
    const loc = new Int32Array(3)
    this.locate(prefix, depth, loc)
    const node = loc[0]!
    const sum = new Uint32Array(2)
    const xor = new Int32Array(8)
    let count = 0
    if (loc[1] === -1 || this.depth[node] === depth) {
      count = this.count[node]!
      sum[0] = this.sums[node * 2]!
      sum[1] = this.sums[node * 2 + 1]!
      for (let k = 0; k < 8; k++) xor[k] = this.xors[node * 8 + k]!
    } else {
      const buf = this.leaves[node]
      const w = buf === null ? null : words(buf)
      count = loc[2]! - loc[1]!
      for (let i = loc[1]!; i < loc[2]!; i++) {
        const lo = mixLo(w!, i * 8)
        const s = (sum[0]! + lo) >>> 0
        sum[1] = sum[1]! + mixHi(w!, i * 8) + (s < lo ? 1 : 0)
        sum[0] = s
        for (let k = 0; k < 8; k++) xor[k] = xor[k]! ^ w![i * 8 + k]!
      }
    }
    return {
      count,
      sum: new Uint8Array(sum.buffer.slice(0)),
      xor: new Uint8Array(xor.buffer.slice(0))
    }
  }
}
