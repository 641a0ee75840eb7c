/**
 * The set side of reconciliation: `ReconcileSet`, a set of 32-byte ids kept
 * as a 16-way prefix tree (level k splits on the k-th hex digit of the id).
 *
 * Layout, chosen so that a million ids cost no million objects:
 *  - nodes live in typed arrays indexed by node number (struct of arrays):
 *    count, first child (children come in blocks of 16, one per digit; -1
 *    marks a leaf), depth, a 64-bit sum of `mix64(id)` and a 256-bit XOR of
 *    the ids under the node. Both are order independent, so an insert or a
 *    delete updates the path from the root in O(depth).
 *  - a leaf holds at most `LEAF_MAX` ids, sorted, in one Uint8Array (32
 *    bytes each); one more splits it into 16 leaves. An inner node that
 *    falls to `MERGE_AT` ids or fewer collapses back into a leaf.
 *  - a bulk build sorts the ids once (radix sort of an index) and lays the
 *    leaves out as views of that one sorted buffer.
 *
 * Reconciliation sessions read an immutable `TreeData` snapshot: taking one
 * copies the node arrays (a few MB at a million ids) and shares the leaves,
 * which the live set copies before it next writes to them (copy on write),
 * so a set can change while sessions on it are under way.
 *
 * Views (`set.view(name, predicate)`) are separate trees holding the ids
 * that match a predicate of (id, metadata); the set keeps them up to date on
 * every insert and delete. The insert log (a ring of the last `logCapacity`
 * inserted ids) and per-peer sync points serve the "since" fast path.
 */
import sodium from 'sodium-universal'
import b4a from 'b4a'
import { BAD_ARGUMENT, INVALID_OPERATION } from '../errors'
import { mixHi, mixLo } from './hash'

export const ID_BYTES = 32
/** Hex digits in an id: the deepest a node can be. */
export const MAX_DEPTH = 64
/** A leaf holding more ids than this splits in 16. */
export const LEAF_MAX = 32
/** An inner node holding this few ids collapses into a leaf. */
export const MERGE_AT = 12
const DEFAULT_LOG_CAPACITY = 16384

/** Decides whether an id belongs to a view. `id` may be a reused buffer: copy it to keep it. */
export type ViewPredicate<M> = (id: Uint8Array, meta: M | undefined) => boolean

/** The unkeyed summary of the ids under a prefix: what the tree keeps per node. */
export interface NodeSummary {
  count: number
  /** Sum of mix64(id) mod 2^64, 8 bytes little endian. */
  sum: Uint8Array
  /** XOR of the ids. */
  xor: Uint8Array
}

/** Where the last sync with a peer ended: the log position and the set's summary then. */
export interface SyncPoint {
  readonly seq: number
  readonly count: number
  readonly sumLo: number
  readonly sumHi: number
  readonly xor: Int32Array
}

interface ViewOf<M> {
  parent: ReconcileSet<M>
  name: string
  predicate: ViewPredicate<M>
}

export interface ReconcileSetOptions {
  /** Inserted ids remembered for the since fast path (default 16384). */
  logCapacity?: number
}

/** The k-th hex digit of the id stored at `buf[at..]`. */
export function nibbleAt (buf: Uint8Array, at: number, depth: number): number {
  const b = buf[at + (depth >>> 1)]!
  return (depth & 1) === 0 ? b >>> 4 : b & 15
}

/** Compares the ids at a[ai..] and b[bi..], bytewise. */
export function compareAt (a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const d = a[ai + i]! - b[bi + i]!
    if (d !== 0) return d
  }
  return 0
}

/** Whether the first `depth` digits of the id at buf[at..] are those of `prefix`. */
export function hasPrefix (buf: Uint8Array, at: number, prefix: Uint8Array, depth: number): boolean {
  const whole = depth >>> 1
  for (let i = 0; i < whole; i++) if (buf[at + i] !== prefix[i]) return false
  if ((depth & 1) === 1 && (buf[at + whole]! >>> 4) !== (prefix[whole]! >>> 4)) return false
  return true
}

export function checkId (id: unknown): asserts id is Uint8Array {
  if (!(id instanceof Uint8Array) || id.byteLength !== ID_BYTES) throw BAD_ARGUMENT('An id is a Uint8Array of 32 bytes')
}

/** Binary search of the sorted leaf `buf` of `count` ids: index of `id`, or ~(insertion point). */
export function searchLeaf (buf: Uint8Array, count: number, id: Uint8Array, at: number): number {
  let lo = 0
  let hi = count - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const c = compareAt(buf, mid * ID_BYTES, id, at)
    if (c < 0) lo = mid + 1
    else if (c > 0) hi = mid - 1
    else return mid
  }
  return ~lo
}

function words (buf: Uint8Array): Int32Array {
  return new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2)
}

/**
 * The nodes of a tree. A `ReconcileSet` owns a mutable one; `snapshot()`
 * hands out immutable copies for sessions to read.
 */
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

  /** A copy of the node arrays sharing the leaves (which then must not change in place). */
  clone (): TreeData {
    const t = Object.create(TreeData.prototype) as TreeData
    const n = this.top
    t.count = this.count.slice(0, n)
    t.child = this.child.slice(0, n)
    t.depth = this.depth.slice(0, n)
    t.sums = this.sums.slice(0, n * 2)
    t.xors = this.xors.slice(0, n * 8)
    t.leaves = this.leaves.slice(0, n)
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

  /** All ids, sorted, as one buffer. */
  flat (): Uint8Array {
    const out = new Uint8Array(this.size * ID_BYTES)
    let o = 0
    const walk = (node: number): void => {
      const first = this.child[node]!
      if (first >= 0) {
        for (let v = 0; v < 16; v++) if (this.count[first + v]! > 0) walk(first + v)
        return
      }
      const n = this.count[node]!
      if (n === 0) return
      out.set(this.leaves[node]!.subarray(0, n * ID_BYTES), o)
      o += n * ID_BYTES
    }
    walk(0)
    return out
  }

  /** Summary of the ids whose first `depth` digits are those of `prefix`. */
  summary (prefix: Uint8Array, depth: number): NodeSummary {
    let node = 0
    while (this.child[node]! >= 0 && this.depth[node]! < depth) node = this.child[node]! + nibbleAt(prefix, 0, this.depth[node]!)
    const sum = new Uint32Array(2)
    const xor = new Int32Array(8)
    let count = 0
    if (this.child[node]! >= 0 || this.depth[node] === depth) {
      count = this.count[node]!
      sum[0] = this.sums[node * 2]!
      sum[1] = this.sums[node * 2 + 1]!
      for (let k = 0; k < 8; k++) xor[k] = this.xors[node * 8 + k]!
    } else {
      const buf = this.leaves[node]
      const n = this.count[node]!
      const w = buf === null ? null : words(buf)
      for (let i = 0; i < n; i++) {
        if (!hasPrefix(buf!, i * ID_BYTES, prefix, depth)) continue
        count++
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

function growU32 (a: Uint32Array, n: number): Uint32Array { const b = new Uint32Array(n); b.set(a); return b }
function growI32 (a: Int32Array, n: number, fill = 0): Int32Array { const b = new Int32Array(n); if (fill !== 0) b.fill(fill); b.set(a); return b }
function growU8 (a: Uint8Array, n: number): Uint8Array { const b = new Uint8Array(n); b.set(a); return b }

/**
 * Sorts `n` ids stored back to back in `flat` and drops duplicates.
 * Returns the sorted ids (a new buffer) and, for each, its index in `flat`.
 */
export function sortIds (flat: Uint8Array, n: number): { sorted: Uint8Array, order: Uint32Array, count: number } {
  // Counting sort on the first two bytes, then each bucket by the rest.
  const starts = new Uint32Array(65537)
  for (let i = 0; i < n; i++) starts[((flat[i * 32]! << 8) | flat[i * 32 + 1]!) + 1]!++
  for (let k = 0; k < 65536; k++) starts[k + 1]! += starts[k]!
  const perm = new Uint32Array(n)
  const fill = starts.slice(0, 65536)
  for (let i = 0; i < n; i++) perm[fill[(flat[i * 32]! << 8) | flat[i * 32 + 1]!]!++] = i
  const tmp = new Uint32Array(n)
  for (let k = 0; k < 65536; k++) {
    const s = starts[k]!
    const e = starts[k + 1]!
    if (e - s > 1) sortSegment(flat, perm, tmp, s, e, 2)
  }
  const flat32 = words(flat)
  const out = new Uint8Array(n * ID_BYTES)
  const out32 = words(out)
  const order = new Uint32Array(n)
  let m = 0
  for (let j = 0; j < n; j++) {
    const p = perm[j]!
    if (m > 0 && compareAt(flat, p * 32, out, (m - 1) * 32) === 0) continue
    const src = p * 8
    const dst = m * 8
    for (let k = 0; k < 8; k++) out32[dst + k] = flat32[src + k]!
    order[m++] = p
  }
  return { sorted: m === n ? out : out.subarray(0, m * ID_BYTES), order: order.subarray(0, m), count: m }
}

function sortSegment (flat: Uint8Array, perm: Uint32Array, tmp: Uint32Array, s: number, e: number, byte: number): void {
  if (e - s <= 24 || byte >= 32) {
    for (let i = s + 1; i < e; i++) {
      const x = perm[i]!
      let j = i - 1
      while (j >= s && compareFrom(flat, perm[j]! * 32, x * 32, byte) > 0) {
        perm[j + 1] = perm[j]!
        j--
      }
      perm[j + 1] = x
    }
    return
  }
  const counts = new Uint32Array(257)
  for (let i = s; i < e; i++) counts[flat[perm[i]! * 32 + byte]! + 1]!++
  for (let k = 0; k < 256; k++) counts[k + 1]! += counts[k]!
  const fill = counts.slice(0, 256)
  for (let i = s; i < e; i++) {
    const p = perm[i]!
    tmp[s + fill[flat[p * 32 + byte]!]!++] = p
  }
  perm.set(tmp.subarray(s, e), s)
  for (let k = 0; k < 256; k++) {
    const a = s + counts[k]!
    const b = s + counts[k + 1]!
    if (b - a > 1) sortSegment(flat, perm, tmp, a, b, byte + 1)
  }
}

function compareFrom (flat: Uint8Array, a: number, b: number, from: number): number {
  for (let i = from; i < ID_BYTES; i++) {
    const d = flat[a + i]! - flat[b + i]!
    if (d !== 0) return d
  }
  return 0
}

function randomName (): string {
  const b = b4a.alloc(8)
  sodium.randombytes_buf(b)
  return b4a.toString(b, 'hex')
}

/**
 * A set of 32-byte ids (with optional metadata per id) as a prefix tree,
 * ready to reconcile with a peer's.
 */
export class ReconcileSet<M = unknown> {
  /** A random local identity, under which `sync()` remembers this set for the since path. */
  readonly id: string
  /** The view's name, or null for a set. */
  readonly name: string | null
  /** The set a view derives from. */
  readonly parent: ReconcileSet<M> | null
  private readonly predicate: ViewPredicate<M> | null

  /** @internal the live tree */
  _t: TreeData
  private cap: number
  private readonly freeBlocks: number[] = []
  /** Snapshot epoch each leaf's buffer was allocated in (copy on write). */
  private owned: Uint32Array
  private epoch = 1
  private snap: TreeData | null = null
  private snapVersion = -1
  private metas: Array<Array<M | undefined> | null> | null = null

  private _version = 0
  private _seq = 0
  private readonly logCap: number
  private log: Uint8Array | null = null
  private readonly peers = new Map<string, SyncPoint>()
  private readonly viewMap = new Map<string, ReconcileSet<M>>()

  private readonly path = new Int32Array(MAX_DEPTH + 2)
  private readonly scratch = new Uint8Array(ID_BYTES)
  private readonly scratchW = new Int32Array(this.scratch.buffer)

  constructor (ids?: Iterable<Uint8Array> | null, opts: ReconcileSetOptions & { metas?: ArrayLike<M | undefined> } = {}, view?: ViewOf<M>) {
    this.id = randomName()
    this.name = view?.name ?? null
    this.parent = view?.parent ?? null
    this.predicate = view?.predicate ?? null
    this.logCap = Math.max(0, opts.logCapacity ?? DEFAULT_LOG_CAPACITY)
    this.cap = 64
    this._t = new TreeData(this.cap)
    this.owned = new Uint32Array(this.cap)
    if (view !== undefined) this.rebuildFrom(view.parent)
    else if (ids !== undefined && ids !== null) this.insertMany(Array.isArray(ids) ? ids : [...ids], opts.metas)
  }

  /** A set holding `ids` (duplicates are dropped), with `metas[i]` the metadata of `ids[i]`. */
  static from<M = unknown> (ids: Iterable<Uint8Array>, metas?: ArrayLike<M | undefined>, opts?: ReconcileSetOptions): ReconcileSet<M> {
    return new ReconcileSet<M>(ids, { ...opts, metas })
  }

  /** Number of ids. */
  get size (): number {
    return this._t.count[0]!
  }

  /** Bumped by every change. */
  get version (): number {
    return this._version
  }

  /** Number of ids ever inserted: the position in the insert log. */
  get seq (): number {
    return this._seq
  }

  get readonly (): boolean {
    return this.parent !== null
  }

  // ---------------------------------------------------------------------
  // Reading

  has (id: Uint8Array): boolean {
    checkId(id)
    return this._t.has(id)
  }

  /** The metadata stored with `id`, if any. */
  getMeta (id: Uint8Array): M | undefined {
    checkId(id)
    if (this.metas === null) return undefined
    const leaf = this._t.leafOf(id, 0)
    const n = this._t.count[leaf]!
    if (n === 0) return undefined
    const i = searchLeaf(this._t.leaves[leaf]!, n, id, 0)
    return i < 0 ? undefined : this.metas[leaf]?.[i]
  }

  /** Every id, sorted (fresh copies). */
  all (): Uint8Array[] {
    const flat = this._t.flat()
    const out = new Array<Uint8Array>(this.size)
    for (let i = 0; i < out.length; i++) out[i] = flat.subarray(i * ID_BYTES, (i + 1) * ID_BYTES)
    return out
  }

  /** Calls `fn` with every id in order; `id` is a reused buffer, copy it to keep it. */
  forEach (fn: (id: Uint8Array, meta: M | undefined) => void): void {
    const scratch = new Uint8Array(ID_BYTES)
    const walk = (node: number): void => {
      const t = this._t
      const first = t.child[node]!
      if (first >= 0) {
        for (let v = 0; v < 16; v++) if (t.count[first + v]! > 0) walk(first + v)
        return
      }
      const buf = t.leaves[node]
      const n = t.count[node]!
      const meta = this.metas === null ? null : this.metas[node]
      for (let i = 0; i < n; i++) {
        scratch.set(buf!.subarray(i * ID_BYTES, (i + 1) * ID_BYTES))
        fn(scratch, meta?.[i])
      }
    }
    walk(0)
  }

  * [Symbol.iterator] (): IterableIterator<Uint8Array> {
    yield * this.all()
  }

  /** The unkeyed summary of the ids under the first `depth` hex digits of `prefix` (whole set: depth 0). */
  summary (prefix: Uint8Array = new Uint8Array(ID_BYTES), depth = 0): NodeSummary {
    if (!(prefix instanceof Uint8Array) || depth < 0 || depth > MAX_DEPTH || prefix.byteLength * 2 < depth) throw BAD_ARGUMENT('Bad prefix')
    return this._t.summary(prefix, depth)
  }

  /**
   * An immutable view of the tree as it is now, for sessions. Cheap: copies
   * the node arrays and shares the leaves (copy on write from then on).
   */
  snapshot (): TreeData {
    if (this.snap !== null && this.snapVersion === this._version) return this.snap
    this.snap = this._t.clone()
    this.snapVersion = this._version
    this.epoch++
    return this.snap
  }

  /** Throws unless every invariant of the tree holds (for tests). */
  verifyIntegrity (): void {
    const t = this._t
    const fail = (msg: string): never => { throw INVALID_OPERATION('Tree integrity: ' + msg) }
    const sum = new Uint32Array(2)
    const xor = new Int32Array(8)
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
      if (this.metas !== null && this.metas[node] !== null && this.metas[node] !== undefined && this.metas[node]!.length !== n) fail(`meta of ${node}`)
      sum[0] = 0; sum[1] = 0; xor.fill(0)
      const w = n > 0 ? words(buf!) : null
      for (let i = 0; i < n; i++) {
        if (i > 0 && compareAt(buf!, (i - 1) * ID_BYTES, buf!, i * ID_BYTES) >= 0) fail(`leaf ${node} not sorted`)
        if (!hasPrefix(buf!, i * ID_BYTES, prefix, depth)) fail(`id under the wrong prefix in ${node}`)
        const lo = mixLo(w!, i * 8)
        const s = (sum[0]! + lo) >>> 0
        sum[1] = sum[1]! + mixHi(w!, i * 8) + (s < lo ? 1 : 0)
        sum[0] = s
        for (let k = 0; k < 8; k++) xor[k] = xor[k]! ^ w![i * 8 + k]!
      }
      if (sum[0] !== t.sums[node * 2] || sum[1] !== t.sums[node * 2 + 1]) fail(`sum of leaf ${node}`)
      for (let k = 0; k < 8; k++) if (xor[k] !== t.xors[node * 8 + k]) fail(`xor of leaf ${node}`)
    }
    visit(0, 0)
    for (const v of this.viewMap.values()) v.verifyIntegrity()
  }

  // ---------------------------------------------------------------------
  // Writing

  /** Adds `id` (with `meta`); false if it was there already. O(depth). */
  insert (id: Uint8Array, meta?: M): boolean {
    checkId(id)
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    return this._insert(id, meta)
  }

  /** Alias of `insert`. */
  add (id: Uint8Array, meta?: M): boolean {
    return this.insert(id, meta)
  }

  /** Removes `id`; false if it was not there. O(depth). */
  delete (id: Uint8Array): boolean {
    checkId(id)
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    return this._delete(id)
  }

  /** Adds many ids; an empty set is built in bulk (sorted once), much faster than one by one. Returns how many were new. */
  insertMany (ids: readonly Uint8Array[], metas?: ArrayLike<M | undefined>): number {
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    for (const id of ids) checkId(id)
    if (metas !== undefined && metas.length !== ids.length) throw BAD_ARGUMENT('One meta per id')
    if (this.size > 0 || ids.length < 64) {
      let added = 0
      for (let i = 0; i < ids.length; i++) if (this._insert(ids[i]!, metas?.[i])) added++
      return added
    }
    const flat = new Uint8Array(ids.length * ID_BYTES)
    for (let i = 0; i < ids.length; i++) flat.set(ids[i]!, i * ID_BYTES)
    const { sorted, order, count } = sortIds(flat, ids.length)
    let m: Array<M | undefined> | null = null
    if (metas !== undefined) {
      m = new Array<M | undefined>(count)
      for (let i = 0; i < count; i++) m[i] = metas[order[i]!]
    }
    this.load(sorted, count, m)
    // The log keeps the last logCapacity of them (in sorted order: for the since path order does not matter).
    const logged = Math.min(count, this.logCap)
    this._seq += count - logged
    for (let i = count - logged; i < count; i++) this.logId(sorted, i * ID_BYTES)
    for (const v of this.viewMap.values()) v.rebuildFrom(this)
    return count
  }

  /** Removes every id. */
  clear (): void {
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    this.load(new Uint8Array(0), 0, null)
    for (const v of this.viewMap.values()) v.rebuildFrom(this)
  }

  // ---------------------------------------------------------------------
  // Views

  /**
   * The view `name`: a tree of the ids matching `predicate`, kept up to date
   * on every insert and delete. Giving a predicate (re)defines the view,
   * built from the ids there are now; without one, returns the existing view.
   * Both sides must use the same predicate (with the same parameters, e.g. a
   * time cutoff rounded to the day) for their views to reconcile.
   */
  view (name: string, predicate?: ViewPredicate<M>): ReconcileSet<M> {
    if (typeof name !== 'string') throw BAD_ARGUMENT('A view has a name')
    if (this.parent !== null) throw INVALID_OPERATION('Views are made from a set, not from a view')
    if (predicate === undefined) {
      const v = this.viewMap.get(name)
      if (v === undefined) throw BAD_ARGUMENT('No view named ' + name)
      return v
    }
    const v = ReconcileSet.makeView(this, name, predicate)
    this.viewMap.set(name, v)
    return v
  }

  /** Names of the views. */
  views (): string[] {
    return [...this.viewMap.keys()]
  }

  dropView (name: string): boolean {
    return this.viewMap.delete(name)
  }

  private static makeView<M> (parent: ReconcileSet<M>, name: string, predicate: ViewPredicate<M>): ReconcileSet<M> {
    return new ReconcileSet<M>(null, { logCapacity: parent.logCap }, { parent, name, predicate })
  }

  private rebuildFrom (parent: ReconcileSet<M>): void {
    const pred = this.predicate!
    const out = new Uint8Array(parent.size * ID_BYTES)
    const metas: Array<M | undefined> = []
    let m = 0
    let anyMeta = false
    parent.forEach((id, meta) => {
      if (!pred(id, meta)) return
      out.set(id, m * ID_BYTES)
      metas.push(meta)
      if (meta !== undefined) anyMeta = true
      m++
    })
    this.load(out.subarray(0, m * ID_BYTES), m, anyMeta ? metas : null)
  }

  // ---------------------------------------------------------------------
  // Since bookkeeping

  /** Remembers that this set is in sync with `peer` now (call after applying what the sync found). */
  markSynced (peer: string): void {
    const t = this._t
    this.peers.set(peer, {
      seq: this._seq,
      count: t.count[0]!,
      sumLo: t.sums[0]!,
      sumHi: t.sums[1]!,
      xor: t.xors.slice(0, 8)
    })
  }

  syncPoint (peer: string): SyncPoint | null {
    return this.peers.get(peer) ?? null
  }

  forgetPeer (peer: string): boolean {
    return this.peers.delete(peer)
  }

  /**
   * The ids added since the sync point with `peer`, sorted, as one buffer —
   * or null when they cannot say what changed: no sync point, more than
   * `limit` ids, the log no longer reaching back, or other changes (deletes)
   * since, which the summary of the set gives away.
   */
  addedSince (peer: string, limit: number): Uint8Array | null {
    const p = this.peers.get(peer)
    if (p === undefined || this.log === null && this._seq > p.seq) return null
    const n = this._seq - p.seq
    if (n < 0 || n > this.logCap) return null
    const t = this._t
    const found = new Uint8Array(Math.min(n, limit + 1) * ID_BYTES)
    let m = 0
    let count = p.count
    let lo = p.sumLo
    let hi = p.sumHi
    const xor = p.xor.slice()
    const w = this.scratchW
    for (let s = p.seq; s < this._seq; s++) {
      const at = (s % this.logCap) * ID_BYTES
      if (!t.has(this.log!, at)) continue
      if (m > limit) return null
      this.scratch.set(this.log!.subarray(at, at + ID_BYTES))
      found.set(this.scratch, m * ID_BYTES)
      m++
      count++
      const a = mixLo(w, 0)
      const sLo = (lo + a) >>> 0
      hi = (hi + mixHi(w, 0) + (sLo < a ? 1 : 0)) >>> 0
      lo = sLo
      for (let k = 0; k < 8; k++) xor[k] = xor[k]! ^ w[k]!
    }
    if (m > limit) return null
    // An id logged twice (added, deleted, added) is counted twice: the summary no longer matches.
    if (count !== t.count[0] || lo !== t.sums[0] || hi !== t.sums[1]) return null
    for (let k = 0; k < 8; k++) if (xor[k] !== t.xors[k]) return null
    const { sorted } = sortIds(found, m)
    return sorted
  }

  // ---------------------------------------------------------------------
  // Internals

  /** Fills `path` with the nodes from the root to the leaf that holds (or would hold) `id`; returns its length. */
  private descend (id: Uint8Array): number {
    const t = this._t
    const path = this.path
    let len = 0
    let node = 0
    while (t.child[node]! >= 0) {
      path[len++] = node
      node = t.child[node]! + nibbleAt(id, 0, t.depth[node]!)
    }
    path[len++] = node
    return len
  }

  /** @internal */
  _insert (id: Uint8Array, meta: M | undefined): boolean {
    const t = this._t
    const len = this.descend(id)
    const node = this.path[len - 1]!
    const n = t.count[node]!
    let buf = t.leaves[node]
    const pos = n === 0 ? -1 : searchLeaf(buf!, n, id, 0)
    if (pos >= 0) return false
    const at = ~pos
    if (buf === null || buf.byteLength < (n + 1) * ID_BYTES) {
      const grown = new Uint8Array(Math.max(n + 1, Math.min(Math.max(4, n * 2), LEAF_MAX + 1)) * ID_BYTES)
      if (n > 0) grown.set(buf!.subarray(0, n * ID_BYTES))
      buf = grown
      t.leaves[node] = buf
      this.owned[node] = this.epoch
    } else if (this.owned[node] !== this.epoch) {
      buf = buf.slice()
      t.leaves[node] = buf
      this.owned[node] = this.epoch
    }
    buf.copyWithin((at + 1) * ID_BYTES, at * ID_BYTES, n * ID_BYTES)
    buf.set(id, at * ID_BYTES)
    if (meta !== undefined && this.metas === null) this.metas = new Array(this.cap).fill(null)
    if (this.metas !== null) {
      let arr = this.metas[node]
      if (arr === null || arr === undefined) arr = this.metas[node] = new Array<M | undefined>(n).fill(undefined)
      arr.splice(at, 0, meta)
    }
    this.scratch.set(id)
    this.applyPath(len, this.scratchW, 1)
    if (t.count[node]! > LEAF_MAX && t.depth[node]! < MAX_DEPTH) this.split(node)
    this._version++
    this.logId(id, 0)
    if (this.viewMap.size > 0) {
      for (const v of this.viewMap.values()) if (v.predicate!(id, meta)) v._insert(id, meta)
    }
    return true
  }

  /** @internal */
  _delete (id: Uint8Array): boolean {
    const t = this._t
    const len = this.descend(id)
    const node = this.path[len - 1]!
    const n = t.count[node]!
    if (n === 0) return false
    let buf = t.leaves[node]!
    const pos = searchLeaf(buf, n, id, 0)
    if (pos < 0) return false
    if (this.owned[node] !== this.epoch) {
      buf = buf.slice()
      t.leaves[node] = buf
      this.owned[node] = this.epoch
    }
    buf.copyWithin(pos * ID_BYTES, (pos + 1) * ID_BYTES, n * ID_BYTES)
    if (this.metas !== null) this.metas[node]?.splice(pos, 1)
    this.scratch.set(id)
    this.applyPath(len, this.scratchW, -1)
    for (let i = 0; i < len - 1; i++) {
      if (t.count[this.path[i]!]! <= MERGE_AT) {
        this.collapse(this.path[i]!)
        break
      }
    }
    this._version++
    if (this.viewMap.size > 0) for (const v of this.viewMap.values()) v._delete(id)
    return true
  }

  /** Adds (sign 1) or removes (sign -1) the id in `w` to the summaries of path[0..len). */
  private applyPath (len: number, w: Int32Array, sign: 1 | -1): void {
    const t = this._t
    const a = mixLo(w, 0)
    const b = mixHi(w, 0)
    const path = this.path
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

  private logId (id: Uint8Array, at: number): void {
    if (this.logCap > 0) {
      if (this.log === null) this.log = new Uint8Array(this.logCap * ID_BYTES)
      this.log.set(id.subarray(at, at + ID_BYTES), (this._seq % this.logCap) * ID_BYTES)
    }
    this._seq++
  }

  private ensureCap (n: number): void {
    if (n <= this.cap) return
    let cap = this.cap
    while (cap < n) cap *= 2
    const t = this._t
    t.count = growU32(t.count, cap)
    t.child = growI32(t.child, cap, -1)
    t.depth = growU8(t.depth, cap)
    t.sums = growU32(t.sums, cap * 2)
    t.xors = growI32(t.xors, cap * 8)
    for (let i = this.cap; i < cap; i++) t.leaves.push(null)
    this.owned = growU32(this.owned, cap)
    if (this.metas !== null) for (let i = this.cap; i < cap; i++) this.metas.push(null)
    this.cap = cap
  }

  /** A block of 16 empty leaves at `depth`. */
  private allocBlock (depth: number): number {
    let first = this.freeBlocks.pop()
    if (first === undefined) {
      first = this._t.top
      this.ensureCap(first + 16)
      this._t.top = first + 16
    }
    const t = this._t
    for (let v = 0; v < 16; v++) {
      const c = first + v
      t.count[c] = 0
      t.child[c] = -1
      t.depth[c] = depth
      t.sums[c * 2] = 0
      t.sums[c * 2 + 1] = 0
      t.xors.fill(0, c * 8, c * 8 + 8)
      t.leaves[c] = null
      if (this.metas !== null) this.metas[c] = null
    }
    return first
  }

  private freeBlock (first: number): void {
    const t = this._t
    for (let v = 0; v < 16; v++) {
      const c = first + v
      if (t.child[c]! >= 0) this.freeBlock(t.child[c]!)
      t.child[c] = -1
      t.leaves[c] = null
      if (this.metas !== null) this.metas[c] = null
    }
    this.freeBlocks.push(first)
  }

  /** Turns a full leaf into an inner node over 16 leaves. */
  private split (node: number): void {
    const t = this._t
    const depth = t.depth[node]!
    const buf = t.leaves[node]!
    const n = t.count[node]!
    const meta = this.metas === null ? null : this.metas[node]
    const first = this.allocBlock(depth + 1)
    let i = 0
    for (let v = 0; v < 16; v++) {
      let j = i
      while (j < n && nibbleAt(buf, j * ID_BYTES, depth) === v) j++
      if (j > i) this.fillLeaf(first + v, buf.slice(i * ID_BYTES, j * ID_BYTES), j - i, meta?.slice(i, j) ?? null)
      i = j
    }
    t.child[node] = first
    t.leaves[node] = null
    if (this.metas !== null) this.metas[node] = null
    // All the ids may share the next digit too: split that child again.
    for (let v = 0; v < 16; v++) {
      if (t.count[first + v]! > LEAF_MAX && depth + 1 < MAX_DEPTH) this.split(first + v)
    }
  }

  /** Makes `node` a leaf of the `n` sorted ids in `buf`, computing its summary. */
  private fillLeaf (node: number, buf: Uint8Array, n: number, meta: Array<M | undefined> | null): void {
    const t = this._t
    t.child[node] = -1
    t.leaves[node] = n === 0 ? null : buf
    this.owned[node] = this.epoch
    t.count[node] = n
    if (this.metas !== null) this.metas[node] = meta
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
  private collapse (node: number): void {
    const t = this._t
    const first = t.child[node]!
    if (first < 0) return
    const n = t.count[node]!
    const buf = new Uint8Array(Math.max(4, Math.min(n * 2, LEAF_MAX + 1)) * ID_BYTES)
    const meta: Array<M | undefined> | null = this.metas === null ? null : []
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
        const m = this.metas![c]
        for (let i = 0; i < k; i++) meta.push(m?.[i])
      }
      o += k
    }
    gather(node)
    this.freeBlock(first)
    t.child[node] = -1
    t.leaves[node] = n === 0 ? null : buf
    this.owned[node] = this.epoch
    if (this.metas !== null) this.metas[node] = meta
  }

  /** Replaces the whole tree by one over `count` sorted, distinct ids. */
  private load (sorted: Uint8Array, count: number, metas: Array<M | undefined> | null): void {
    // Enough nodes for a full split of every leaf level, roughly.
    let cap = 64
    while (cap < (count / 4) + 64) cap *= 2
    this.cap = cap
    this._t = new TreeData(cap)
    this.owned = new Uint32Array(cap)
    this.freeBlocks.length = 0
    this.metas = metas === null ? null : new Array(cap).fill(null)
    if ((sorted.byteOffset & 3) !== 0) sorted = sorted.slice()
    this.epoch++
    this.buildRange(0, 0, sorted, 0, count, metas)
    this._version++
  }

  private buildRange (node: number, depth: number, sorted: Uint8Array, s: number, e: number, metas: Array<M | undefined> | null): void {
    const t = this._t
    t.depth[node] = depth
    if (e - s <= LEAF_MAX || depth >= MAX_DEPTH) {
      this.fillLeaf(node, sorted.subarray(s * ID_BYTES, e * ID_BYTES), e - s, metas === null ? null : metas.slice(s, e))
      return
    }
    const first = this.allocBlock(depth + 1)
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
      if (lo > i) this.buildRange(c, depth + 1, sorted, i, lo, metas)
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
