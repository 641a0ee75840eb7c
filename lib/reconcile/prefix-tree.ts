/**
 * The prefix tree a `ReconcileSet` keeps its ids in: a 16-way tree (level k
 * splits on the k-th hex digit of the id) over `TreeData` node arrays.
 *
 *  - a leaf holds at most `LEAF_MAX` ids, sorted; one more splits it into
 *    16 leaves. An inner node that falls to `MERGE_AT` ids or fewer
 *    collapses back into a leaf.
 *  - every node keeps its count, a 64-bit sum of `mix64(id)` and the XOR of
 *    its ids, all order independent, so an insert or a delete updates the
 *    path from the root in O(depth).
 *  - a bulk build sorts the ids once and lays the leaves out as views of
 *    that one sorted buffer.
 *  - `snapshot()` hands out the live node arrays as they are and marks them
 *    shared; the next write copies them first (and each leaf it touches),
 *    so a snapshot costs nothing until the set changes under it.
 *
 * It serves the fallback tree walk, the since and bulk paths, views, and
 * the lookup of a decoded id by its first bytes.
 */
import { INVALID_OPERATION } from '../errors'
import { ID_BYTES, MAX_DEPTH, nibbleAt, compareAt, hasPrefix, searchLeaf, words } from './ids'
import { mixHi, mixLo } from './hash'
import { TreeData } from './tree-data'

/** A leaf holding more ids than this splits in 16. */
export const LEAF_MAX = 32
/** An inner node holding this few ids collapses into a leaf. */
export const MERGE_AT = 12

function growU32 (a: Uint32Array, n: number): Uint32Array { const b = new Uint32Array(n); b.set(a); return b }
function growI32 (a: Int32Array, n: number, fill = 0): Int32Array { const b = new Int32Array(n); if (fill !== 0) b.fill(fill); b.set(a); return b }
function growU8 (a: Uint8Array, n: number): Uint8Array { const b = new Uint8Array(n); b.set(a); return b }

export class PrefixTree<M> {
  #t: TreeData
  #cap = 64
  readonly #freeBlocks: number[] = []
  /** Snapshot epoch each leaf's buffer was allocated in (copy on write). */
  #owned: Uint32Array
  #epoch = 1
  /** The node arrays are also a snapshot: copy before writing. */
  #shared = false
  #metas: Array<Array<M | undefined> | null> | null = null
  readonly #path = new Int32Array(MAX_DEPTH + 2)
  readonly #scratch = new Uint8Array(ID_BYTES)
  readonly #scratchW = new Int32Array(this.#scratch.buffer)

  constructor () {
    this.#t = new TreeData(this.#cap)
    this.#owned = new Uint32Array(this.#cap)
  }

  /** The live nodes (read only). */
  get data (): TreeData {
    return this.#t
  }

  get size (): number {
    return this.#t.count[0]!
  }

  get hasMetas (): boolean {
    return this.#metas !== null
  }

  /** The tree as it is now, immutable: later writes copy before they change anything it shares. */
  snapshot (): TreeData {
    this.#shared = true
    return this.#t
  }

  getMeta (id: Uint8Array): M | undefined {
    if (this.#metas === null) return undefined
    const t = this.#t
    const leaf = t.leafOf(id, 0)
    const n = t.count[leaf]!
    if (n === 0) return undefined
    const i = searchLeaf(t.leaves[leaf]!, n, id, 0)
    return i < 0 ? undefined : this.#metas[leaf]?.[i]
  }

  /** Calls `fn` with every id in order (a reused buffer) and its metadata. */
  forEach (fn: (id: Uint8Array, meta: M | undefined) => void): void {
    const scratch = new Uint8Array(ID_BYTES)
    const t = this.#t
    t.forEachLeaf((buf, n, node) => {
      const meta = this.#metas === null ? null : this.#metas[node]
      for (let i = 0; i < n; i++) {
        scratch.set(buf.subarray(i * ID_BYTES, (i + 1) * ID_BYTES))
        fn(scratch, meta?.[i])
      }
    })
  }

  /** Adds `id`; false if it was there already. */
  insert (id: Uint8Array, meta: M | undefined): boolean {
    const len = this.#descend(id)
    let t = this.#t
    const node = this.#path[len - 1]!
    const n = t.count[node]!
    const pos = n === 0 ? -1 : searchLeaf(t.leaves[node]!, n, id, 0)
    if (pos >= 0) return false
    t = this.#own()
    let buf = t.leaves[node]
    const at = ~pos
    if (buf === null || buf.byteLength < (n + 1) * ID_BYTES) {
      const grown = new Uint8Array(Math.max(n + 1, Math.min(Math.max(4, n * 2), LEAF_MAX + 1)) * ID_BYTES)
      if (n > 0) grown.set(buf!.subarray(0, n * ID_BYTES))
      buf = grown
      t.leaves[node] = buf
      this.#owned[node] = this.#epoch
    } else if (this.#owned[node] !== this.#epoch) {
      buf = buf.slice()
      t.leaves[node] = buf
      this.#owned[node] = this.#epoch
    }
    buf.copyWithin((at + 1) * ID_BYTES, at * ID_BYTES, n * ID_BYTES)
    buf.set(id, at * ID_BYTES)
    if (meta !== undefined && this.#metas === null) this.#metas = new Array(this.#cap).fill(null)
    if (this.#metas !== null) {
      let arr = this.#metas[node]
      if (arr === null || arr === undefined) arr = this.#metas[node] = new Array<M | undefined>(n).fill(undefined)
      arr.splice(at, 0, meta)
    }
    this.#scratch.set(id)
    this.#applyPath(len, this.#scratchW, 1)
    if (t.count[node]! > LEAF_MAX && t.depth[node]! < MAX_DEPTH) this.#split(node)
    return true
  }

  /** Removes `id`; false if it was not there. */
  delete (id: Uint8Array): boolean {
    const len = this.#descend(id)
    let t = this.#t
    const node = this.#path[len - 1]!
    const n = t.count[node]!
    if (n === 0) return false
    const pos = searchLeaf(t.leaves[node]!, n, id, 0)
    if (pos < 0) return false
    t = this.#own()
    let buf = t.leaves[node]!
    if (this.#owned[node] !== this.#epoch) {
      buf = buf.slice()
      t.leaves[node] = buf
      this.#owned[node] = this.#epoch
    }
    buf.copyWithin(pos * ID_BYTES, (pos + 1) * ID_BYTES, n * ID_BYTES)
    if (this.#metas !== null) this.#metas[node]?.splice(pos, 1)
    this.#scratch.set(id)
    this.#applyPath(len, this.#scratchW, -1)
    for (let i = 0; i < len - 1; i++) {
      if (t.count[this.#path[i]!]! <= MERGE_AT) {
        this.#collapse(this.#path[i]!)
        break
      }
    }
    return true
  }

  /** Replaces the whole tree by one over `count` sorted, distinct ids. */
  load (sorted: Uint8Array, count: number, metas: Array<M | undefined> | null): void {
    // Enough nodes for a full split of every leaf level, roughly.
    let cap = 64
    while (cap < (count / 4) + 64) cap *= 2
    this.#cap = cap
    this.#t = new TreeData(cap)
    this.#shared = false
    this.#owned = new Uint32Array(cap)
    this.#freeBlocks.length = 0
    this.#metas = metas === null ? null : new Array(cap).fill(null)
    if ((sorted.byteOffset & 3) !== 0) sorted = sorted.slice()
    this.#epoch++
    this.#buildRange(0, 0, sorted, 0, count, metas)
  }

  /** Throws unless every invariant of the tree holds (for tests). */
  verifyIntegrity (): void {
    const t = this.#t
    const fail = (msg: string): never => { throw INVALID_OPERATION('Tree integrity: ' + msg) }
    const prefix = new Uint8Array(ID_BYTES)
    const visit = (node: number, depth: number): void => {
      if (t.depth[node] !== depth) fail(`node ${node} at depth ${t.depth[node]} expected ${depth}`)
      const first = t.child[node]!
      if (first >= 0) {
        if (depth >= MAX_DEPTH) fail('inner node at max depth')
        if (t.leaves[node] !== null) fail('inner node with ids')
        if (t.count[node]! <= MERGE_AT) fail(`inner node ${node} with ${t.count[node]} ids`)
        let c = 0
        let lo = 0
        let hi = 0
        const x = new Int32Array(8)
        for (let v = 0; v < 16; v++) {
          const ch = first + v
          const byte = depth >>> 1
          const keep = prefix[byte]!
          prefix[byte] = (depth & 1) === 0 ? (v << 4) : ((keep & 0xf0) | v)
          visit(ch, depth + 1)
          prefix[byte] = keep
          c += t.count[ch]!
          const s = (lo + t.sums[ch * 2]!) >>> 0
          hi = (hi + t.sums[ch * 2 + 1]! + (s < lo ? 1 : 0)) >>> 0
          lo = s
          for (let k = 0; k < 8; k++) x[k] = x[k]! ^ t.xors[ch * 8 + k]!
        }
        if (c !== t.count[node]) fail(`count of ${node}`)
        if (lo !== t.sums[node * 2] || hi !== t.sums[node * 2 + 1]) fail(`sum of ${node}`)
        for (let k = 0; k < 8; k++) if (x[k] !== t.xors[node * 8 + k]) fail(`xor of ${node}`)
        return
      }
      const n = t.count[node]!
      const buf = t.leaves[node]
      if (n > LEAF_MAX && depth < MAX_DEPTH) fail(`leaf ${node} with ${n} ids`)
      if (n > 0 && (buf === null || buf.byteLength < n * ID_BYTES)) fail(`leaf ${node} storage`)
      const metas = this.#metas?.[node]
      if (metas !== null && metas !== undefined && metas.length !== n) fail(`meta of ${node}`)
      let lo = 0
      let hi = 0
      const xor = new Int32Array(8)
      const w = n > 0 ? words(buf!) : null
      for (let i = 0; i < n; i++) {
        if (i > 0 && compareAt(buf!, (i - 1) * ID_BYTES, buf!, i * ID_BYTES) >= 0) fail(`leaf ${node} not sorted`)
        if (!hasPrefix(buf!, i * ID_BYTES, prefix, depth)) fail(`id under the wrong prefix in ${node}`)
        const a = mixLo(w!, i * 8)
        const s = (lo + a) >>> 0
        hi = (hi + mixHi(w!, i * 8) + (s < a ? 1 : 0)) >>> 0
        lo = s
        for (let k = 0; k < 8; k++) xor[k] = xor[k]! ^ w![i * 8 + k]!
      }
      if (lo !== t.sums[node * 2] || hi !== t.sums[node * 2 + 1]) fail(`sum of leaf ${node}`)
      for (let k = 0; k < 8; k++) if (xor[k] !== t.xors[node * 8 + k]) fail(`xor of leaf ${node}`)
    }
    visit(0, 0)
  }

  // ---------------------------------------------------------------------
  // Internals

  /** The live nodes, copied first if a snapshot shares them. */
  #own (): TreeData {
    if (this.#shared) {
      this.#t = this.#t.clone(this.#cap)
      this.#shared = false
      // Every leaf buffer is shared with the snapshot now: copy each before writing to it.
      this.#epoch++
    }
    return this.#t
  }

  /** Fills `path` with the nodes from the root to the leaf that holds (or would hold) `id`; returns its length. */
  #descend (id: Uint8Array): number {
    const t = this.#t
    const path = this.#path
    let len = 0
    let node = 0
    while (t.child[node]! >= 0) {
      path[len++] = node
      node = t.child[node]! + nibbleAt(id, 0, t.depth[node]!)
    }
    path[len++] = node
    return len
  }

  /** Adds (sign 1) or removes (sign -1) the id in `w` to the summaries of path[0..len). */
  #applyPath (len: number, w: Int32Array, sign: 1 | -1): void {
    const t = this.#t
    const a = mixLo(w, 0)
    const b = mixHi(w, 0)
    const path = this.#path
    for (let i = 0; i < len; i++) {
      const node = path[i]!
      t.count[node] = t.count[node]! + sign
      const lo = t.sums[node * 2]!
      if (sign === 1) {
        const s = (lo + a) >>> 0
        t.sums[node * 2] = s
        t.sums[node * 2 + 1] = t.sums[node * 2 + 1]! + b + (s < a ? 1 : 0)
      } else {
        t.sums[node * 2] = (lo - a) >>> 0
        t.sums[node * 2 + 1] = t.sums[node * 2 + 1]! - b - (lo < a ? 1 : 0)
      }
      const x = node * 8
      for (let k = 0; k < 8; k++) t.xors[x + k] = t.xors[x + k]! ^ w[k]!
    }
  }

  #ensureCap (n: number): void {
    if (n <= this.#cap) return
    let cap = this.#cap
    while (cap < n) cap *= 2
    const t = this.#t
    t.count = growU32(t.count, cap)
    t.child = growI32(t.child, cap, -1)
    t.depth = growU8(t.depth, cap)
    t.sums = growU32(t.sums, cap * 2)
    t.xors = growI32(t.xors, cap * 8)
    for (let i = this.#cap; i < cap; i++) t.leaves.push(null)
    this.#owned = growU32(this.#owned, cap)
    if (this.#metas !== null) for (let i = this.#cap; i < cap; i++) this.#metas.push(null)
    this.#cap = cap
  }

  /** A block of 16 empty leaves at `depth`. */
  #allocBlock (depth: number): number {
    let first = this.#freeBlocks.pop()
    if (first === undefined) {
      first = this.#t.top
      this.#ensureCap(first + 16)
      this.#t.top = first + 16
    }
    const t = this.#t
    for (let v = 0; v < 16; v++) {
      const c = first + v
      t.count[c] = 0
      t.child[c] = -1
      t.depth[c] = depth
      t.sums[c * 2] = 0
      t.sums[c * 2 + 1] = 0
      t.xors.fill(0, c * 8, c * 8 + 8)
      t.leaves[c] = null
      if (this.#metas !== null) this.#metas[c] = null
    }
    return first
  }

  #freeBlock (first: number): void {
    const t = this.#t
    for (let v = 0; v < 16; v++) {
      const c = first + v
      if (t.child[c]! >= 0) this.#freeBlock(t.child[c]!)
      t.child[c] = -1
      t.leaves[c] = null
      if (this.#metas !== null) this.#metas[c] = null
    }
    this.#freeBlocks.push(first)
  }

  /** Turns a full leaf into an inner node over 16 leaves. */
  #split (node: number): void {
    const t = this.#t
    const depth = t.depth[node]!
    const buf = t.leaves[node]!
    const n = t.count[node]!
    const meta = this.#metas === null ? null : this.#metas[node]
    const first = this.#allocBlock(depth + 1)
    let i = 0
    for (let v = 0; v < 16; v++) {
      let j = i
      while (j < n && nibbleAt(buf, j * ID_BYTES, depth) === v) j++
      if (j > i) this.#fillLeaf(first + v, buf.slice(i * ID_BYTES, j * ID_BYTES), j - i, meta?.slice(i, j) ?? null)
      i = j
    }
    t.child[node] = first
    t.leaves[node] = null
    if (this.#metas !== null) this.#metas[node] = null
    // All the ids may share the next digit too: split that child again.
    for (let v = 0; v < 16; v++) {
      if (t.count[first + v]! > LEAF_MAX && depth + 1 < MAX_DEPTH) this.#split(first + v)
    }
  }

  /** Makes `node` a leaf of the `n` sorted ids in `buf`, computing its summary. */
  #fillLeaf (node: number, buf: Uint8Array, n: number, meta: Array<M | undefined> | null): void {
    const t = this.#t
    t.child[node] = -1
    t.leaves[node] = n === 0 ? null : buf
    this.#owned[node] = this.#epoch
    t.count[node] = n
    if (this.#metas !== null) this.#metas[node] = meta
    let lo = 0
    let hi = 0
    const x = node * 8
    t.xors.fill(0, x, x + 8)
    if (n > 0) {
      const w = (buf.byteOffset & 3) === 0 ? words(buf) : words(buf.slice())
      for (let i = 0; i < n; i++) {
        const a = mixLo(w, i * 8)
        const s = (lo + a) >>> 0
        hi = (hi + mixHi(w, i * 8) + (s < a ? 1 : 0)) >>> 0
        lo = s
        for (let k = 0; k < 8; k++) t.xors[x + k] = t.xors[x + k]! ^ w[i * 8 + k]!
      }
    }
    t.sums[node * 2] = lo
    t.sums[node * 2 + 1] = hi
  }

  /** Turns an inner node back into a leaf of all the ids under it. */
  #collapse (node: number): void {
    const t = this.#t
    const first = t.child[node]!
    if (first < 0) return
    const n = t.count[node]!
    const buf = new Uint8Array(Math.max(4, Math.min(n * 2, LEAF_MAX + 1)) * ID_BYTES)
    const meta: Array<M | undefined> | null = this.#metas === null ? null : []
    let o = 0
    const gather = (c: number): void => {
      const f = t.child[c]!
      if (f >= 0) {
        for (let v = 0; v < 16; v++) gather(f + v)
        return
      }
      const k = t.count[c]!
      if (k === 0) return
      buf.set(t.leaves[c]!.subarray(0, k * ID_BYTES), o * ID_BYTES)
      if (meta !== null) {
        const m = this.#metas![c]
        for (let i = 0; i < k; i++) meta.push(m?.[i])
      }
      o += k
    }
    gather(node)
    this.#freeBlock(first)
    t.child[node] = -1
    t.leaves[node] = n === 0 ? null : buf
    this.#owned[node] = this.#epoch
    if (this.#metas !== null) this.#metas[node] = meta
  }

  #buildRange (node: number, depth: number, sorted: Uint8Array, s: number, e: number, metas: Array<M | undefined> | null): void {
    const t = this.#t
    t.depth[node] = depth
    if (e - s <= LEAF_MAX || depth >= MAX_DEPTH) {
      this.#fillLeaf(node, sorted.subarray(s * ID_BYTES, e * ID_BYTES), e - s, metas === null ? null : metas.slice(s, e))
      return
    }
    const first = this.#allocBlock(depth + 1)
    t.child[node] = first
    t.leaves[node] = null
    let i = s
    for (let v = 0; v < 16; v++) {
      // Binary search for the end of digit v (the ids are sorted).
      let lo = i
      let hi = e
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (nibbleAt(sorted, mid * ID_BYTES, depth) <= v) lo = mid + 1
        else hi = mid
      }
      const c = first + v
      if (lo > i) this.#buildRange(c, depth + 1, sorted, i, lo, metas)
      i = lo
    }
    let c = 0
    let lo = 0
    let hi = 0
    const x = node * 8
    t.xors.fill(0, x, x + 8)
    for (let v = 0; v < 16; v++) {
      const ch = first + v
      c += t.count[ch]!
      const a = t.sums[ch * 2]!
      const sLo = (lo + a) >>> 0
      hi = (hi + t.sums[ch * 2 + 1]! + (sLo < a ? 1 : 0)) >>> 0
      lo = sLo
      for (let k = 0; k < 8; k++) t.xors[x + k] = t.xors[x + k]! ^ t.xors[ch * 8 + k]!
    }
    t.count[node] = c
    t.sums[node * 2] = lo
    t.sums[node * 2 + 1] = hi
  }
}
