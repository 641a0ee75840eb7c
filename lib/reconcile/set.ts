/**
 * `ReconcileSet`: a set of 32-byte ids, ready to reconcile with a peer's.
 * It keeps, up to date on every insert and delete:
 *
 *  - the prefix tree of the ids (prefix-tree.ts), with optional metadata
 *    per id: the since, bulk and fallback paths read it;
 *  - the rateless coded symbols over the whole set (coded-symbols.ts), so a
 *    session only subtracts and peels;
 *  - the keyed fingerprints it was last asked for (fingerprint.ts);
 *  - views (`set.view(name, predicate)`): sets of the ids matching a
 *    predicate of (id, metadata), each with all of the above;
 *  - an insert log (a ring of the last `logCapacity` inserted ids) and
 *    per-peer sync points, for the "since" path.
 */
import sodium from 'sodium-universal'
import b4a from 'b4a'
import { BAD_ARGUMENT, INVALID_OPERATION } from '../errors'
import { ID_BYTES, MAX_DEPTH, checkId, sortIds } from './ids'
import { mixHi, mixLo } from './hash'
import { PrefixTree } from './prefix-tree'
import type { TreeData, NodeSummary } from './tree-data'
import { CodedSymbols, encodeIds, type SymbolTable } from './coded-symbols'
import { FingerprintCache, type Sum64 } from './fingerprint'

const DEFAULT_LOG_CAPACITY = 16384

/** Decides whether an id belongs to a view. `id` may be a reused buffer: copy it to keep it. */
export type ViewPredicate<M> = (id: Uint8Array, meta: M | undefined) => boolean

/** Where the last sync with a peer ended: the log position and the set's summary then. */
export interface SyncPoint {
  readonly seq: number
  readonly count: number
  readonly sumLo: number
  readonly sumHi: number
  readonly xor: Int32Array
}

export interface ReconcileSetOptions {
  /** Inserted ids remembered for the since fast path (default 16384). */
  logCapacity?: number
}

interface ViewOf<M> {
  parent: ReconcileSet<M>
  name: string
  predicate: ViewPredicate<M>
}

function randomName (): string {
  const b = b4a.alloc(8)
  sodium.randombytes_buf(b)
  return b4a.toString(b, 'hex')
}

/**
 * A set of 32-byte ids (with optional metadata per id), ready to reconcile
 * with a peer's: see `Session` and `sync`.
 */
export class ReconcileSet<M = unknown> {
  /** A random local identity, under which `sync()` remembers this set for the since path. */
  readonly id: string
  /** The view's name, or null for a set. */
  readonly name: string | null
  /** The set a view derives from. */
  readonly parent: ReconcileSet<M> | null
  readonly #predicate: ViewPredicate<M> | null

  readonly #tree = new PrefixTree<M>()
  readonly #symbols = new CodedSymbols()
  readonly #fingerprints = new FingerprintCache()

  #version = 0
  #seq = 0
  readonly #logCap: number
  #log: Uint8Array | null = null
  readonly #peers = new Map<string, SyncPoint>()
  readonly #views = new Map<string, ReconcileSet<M>>()

  readonly #scratch = new Uint8Array(ID_BYTES)
  readonly #scratchW = new Int32Array(this.#scratch.buffer)

  constructor (ids?: Iterable<Uint8Array> | null, opts: ReconcileSetOptions & { metas?: ArrayLike<M | undefined> } = {}, view?: ViewOf<M>) {
    this.id = randomName()
    this.name = view?.name ?? null
    this.parent = view?.parent ?? null
    this.#predicate = view?.predicate ?? null
    this.#logCap = Math.max(0, opts.logCapacity ?? DEFAULT_LOG_CAPACITY)
    if (view !== undefined) this.#rebuildFrom(view.parent)
    else if (ids !== undefined && ids !== null) this.insertMany(Array.isArray(ids) ? ids : [...ids], opts.metas)
  }

  /** A set holding `ids` (duplicates are dropped), with `metas[i]` the metadata of `ids[i]`. */
  static from<M = unknown> (ids: Iterable<Uint8Array>, metas?: ArrayLike<M | undefined>, opts?: ReconcileSetOptions): ReconcileSet<M> {
    return new ReconcileSet<M>(ids, { ...opts, metas })
  }

  /** Number of ids. */
  get size (): number {
    return this.#tree.size
  }

  /** Bumped by every change. */
  get version (): number {
    return this.#version
  }

  /** Number of ids ever inserted: the position in the insert log. */
  get seq (): number {
    return this.#seq
  }

  get readonly (): boolean {
    return this.parent !== null
  }

  // ---------------------------------------------------------------------
  // Reading

  has (id: Uint8Array): boolean {
    checkId(id)
    return this.#tree.data.has(id)
  }

  /** The metadata stored with `id`, if any. */
  getMeta (id: Uint8Array): M | undefined {
    checkId(id)
    return this.#tree.getMeta(id)
  }

  /** Every id, sorted (fresh copies). */
  all (): Uint8Array[] {
    const flat = this.#tree.data.flat()
    const out = new Array<Uint8Array>(this.size)
    for (let i = 0; i < out.length; i++) out[i] = flat.subarray(i * ID_BYTES, (i + 1) * ID_BYTES)
    return out
  }

  /** Calls `fn` with every id in order; `id` is a reused buffer, copy it to keep it. */
  forEach (fn: (id: Uint8Array, meta: M | undefined) => void): void {
    this.#tree.forEach(fn)
  }

  * [Symbol.iterator] (): IterableIterator<Uint8Array> {
    yield * this.all()
  }

  /** The unkeyed summary of the ids under the first `depth` hex digits of `prefix` (whole set: depth 0). */
  summary (prefix: Uint8Array = new Uint8Array(ID_BYTES), depth = 0): NodeSummary {
    if (!(prefix instanceof Uint8Array) || depth < 0 || depth > MAX_DEPTH || prefix.byteLength * 2 < depth) throw BAD_ARGUMENT('Bad prefix')
    return this.#tree.data.summary(prefix, depth)
  }

  /** An immutable view of the tree as it is now (copy on write: free until the set next changes). */
  snapshot (): TreeData {
    return this.#tree.snapshot()
  }

  /** The coded symbols as they are now, immutable (copy on write). */
  symbols (): SymbolTable {
    return this.#symbols.snapshot()
  }

  /** The keyed fingerprint of the set under `key` (16 bytes), remembered and kept up to date from then on. */
  fingerprint (key: Uint8Array): Sum64 {
    return this.#fingerprints.get(key, this.#tree.data)
  }

  /** Throws unless every invariant holds: the tree's, and cached symbols equal to ones built afresh (for tests). */
  verifyIntegrity (): void {
    this.#tree.verifyIntegrity()
    const cached = this.#symbols.snapshot()
    const fresh = encodeIds(this.all(), cached.cells)
    const same = (a: Int32Array, b: Int32Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])
    if (!same(cached.xor, fresh.xor) || !same(cached.chk, fresh.chk) || !same(cached.cnt, fresh.cnt) ||
      !same(cached.est1, fresh.est1) || !same(cached.est2, fresh.est2)) {
      throw INVALID_OPERATION('Tree integrity: cached symbols differ from symbols built afresh')
    }
    for (const v of this.#views.values()) v.verifyIntegrity()
  }

  // ---------------------------------------------------------------------
  // Writing

  /** Adds `id` (with `meta`); false if it was there already. O(depth + log cells). */
  insert (id: Uint8Array, meta?: M): boolean {
    checkId(id)
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    return this.#insert(id, meta)
  }

  /** Alias of `insert`. */
  add (id: Uint8Array, meta?: M): boolean {
    return this.insert(id, meta)
  }

  /** Removes `id`; false if it was not there. O(depth + log cells). */
  delete (id: Uint8Array): boolean {
    checkId(id)
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    return this.#delete(id)
  }

  /** Adds many ids; an empty set is built in bulk (sorted once), much faster than one by one. Returns how many were new. */
  insertMany (ids: readonly Uint8Array[], metas?: ArrayLike<M | undefined>): number {
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    for (const id of ids) checkId(id)
    if (metas !== undefined && metas.length !== ids.length) throw BAD_ARGUMENT('One meta per id')
    if (this.size > 0 || ids.length < 64) {
      let added = 0
      for (let i = 0; i < ids.length; i++) if (this.#insert(ids[i]!, metas?.[i])) added++
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
    this.#load(sorted, count, m)
    // The log keeps the last logCapacity of them (in sorted order: for the since path order does not matter).
    const logged = Math.min(count, this.#logCap)
    this.#seq += count - logged
    for (let i = count - logged; i < count; i++) this.#logId(sorted, i * ID_BYTES)
    for (const v of this.#views.values()) v.#rebuildFrom(this)
    return count
  }

  /** Removes every id. */
  clear (): void {
    if (this.parent !== null) throw INVALID_OPERATION('A view changes with its set, not by itself')
    this.#load(new Uint8Array(0), 0, null)
    for (const v of this.#views.values()) v.#rebuildFrom(this)
  }

  // ---------------------------------------------------------------------
  // Views

  /**
   * The view `name`: a set of the ids matching `predicate`, kept up to date
   * on every insert and delete. Giving a predicate (re)defines the view,
   * built from the ids there are now; without one, returns the existing view.
   * Both sides must use the same predicate (with the same parameters, e.g. a
   * time cutoff rounded to the day) for their views to reconcile.
   */
  view (name: string, predicate?: ViewPredicate<M>): ReconcileSet<M> {
    if (typeof name !== 'string') throw BAD_ARGUMENT('A view has a name')
    if (this.parent !== null) throw INVALID_OPERATION('Views are made from a set, not from a view')
    if (predicate === undefined) {
      const v = this.#views.get(name)
      if (v === undefined) throw BAD_ARGUMENT('No view named ' + name)
      return v
    }
    const v = new ReconcileSet<M>(null, { logCapacity: this.#logCap }, { parent: this, name, predicate })
    this.#views.set(name, v)
    return v
  }

  /** Names of the views. */
  views (): string[] {
    return [...this.#views.keys()]
  }

  dropView (name: string): boolean {
    return this.#views.delete(name)
  }

  #rebuildFrom (parent: ReconcileSet<M>): void {
    const pred = this.#predicate!
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
    this.#load(out.subarray(0, m * ID_BYTES), m, anyMeta ? metas : null)
  }

  // ---------------------------------------------------------------------
  // Since bookkeeping

  /** Remembers that this set is in sync with `peer` now (call after applying what the sync found). */
  markSynced (peer: string): void {
    const t = this.#tree.data
    this.#peers.set(peer, {
      seq: this.#seq,
      count: t.count[0]!,
      sumLo: t.sums[0]!,
      sumHi: t.sums[1]!,
      xor: t.xors.slice(0, 8)
    })
  }

  syncPoint (peer: string): SyncPoint | null {
    return this.#peers.get(peer) ?? null
  }

  forgetPeer (peer: string): boolean {
    return this.#peers.delete(peer)
  }

  /**
   * The ids added since the sync point with `peer`, sorted, as one buffer —
   * or null when they cannot say what changed: no sync point, more than
   * `limit` ids, the log no longer reaching back, or other changes (deletes)
   * since, which the summary of the set gives away.
   */
  addedSince (peer: string, limit: number): Uint8Array | null {
    const p = this.#peers.get(peer)
    if (p === undefined || (this.#log === null && this.#seq > p.seq)) return null
    const n = this.#seq - p.seq
    if (n < 0 || n > this.#logCap) return null
    const t = this.#tree.data
    const found = new Uint8Array(Math.min(n, limit + 1) * ID_BYTES)
    let m = 0
    let count = p.count
    let lo = p.sumLo
    let hi = p.sumHi
    const xor = p.xor.slice()
    const w = this.#scratchW
    for (let s = p.seq; s < this.#seq; s++) {
      const at = (s % this.#logCap) * ID_BYTES
      if (!t.has(this.#log!, at)) continue
      if (m > limit) return null
      this.#scratch.set(this.#log!.subarray(at, at + ID_BYTES))
      found.set(this.#scratch, m * ID_BYTES)
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

  #insert (id: Uint8Array, meta: M | undefined): boolean {
    if (!this.#tree.insert(id, meta)) return false
    this.#scratch.set(id)
    this.#symbols.update(this.#scratch, this.#scratchW, 1)
    this.#symbols.fit(this.#tree.data)
    this.#fingerprints.record(this.#scratch, 1)
    this.#version++
    this.#logId(id, 0)
    if (this.#views.size > 0) {
      for (const v of this.#views.values()) if (v.#predicate!(id, meta)) v.#insert(id, meta)
    }
    return true
  }

  #delete (id: Uint8Array): boolean {
    if (!this.#tree.delete(id)) return false
    this.#scratch.set(id)
    this.#symbols.update(this.#scratch, this.#scratchW, -1)
    this.#fingerprints.record(this.#scratch, -1)
    this.#version++
    if (this.#views.size > 0) for (const v of this.#views.values()) v.#delete(id)
    return true
  }

  #load (sorted: Uint8Array, count: number, metas: Array<M | undefined> | null): void {
    this.#tree.load(sorted, count, metas)
    this.#symbols.rebuildFlat(sorted, count)
    this.#fingerprints.reset()
    this.#version++
  }

  #logId (id: Uint8Array, at: number): void {
    if (this.#logCap > 0) {
      if (this.#log === null) this.#log = new Uint8Array(this.#logCap * ID_BYTES)
      this.#log.set(id.subarray(at, at + ID_BYTES), (this.#seq % this.#logCap) * ID_BYTES)
    }
    this.#seq++
  }
}
