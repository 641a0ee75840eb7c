/**
 * Verified block bytes kept in memory, so that a block read again is not
 * hashed again: every core of the process shares one byte budget, least
 * recently read first out.
 *
 * Why it is safe without hooks on truncate, clear, reorg or audit: an entry
 * keeps the leaf hash its bytes were verified against, and answers only a
 * read whose block is held, not marked, and whose leaf verifies now to that
 * same hash. A block cleared, rotten on disk, or of a dead fork has another
 * leaf or none, so it misses and takes the disk path, which checks it. The
 * cache holds its own copies, and hands out fresh ones: what a caller does
 * to its buffer changes nothing here (serving, which only copies a block
 * into an answer, reads the kept bytes themselves: `peek`).
 *
 * A block is kept on its second read. Which blocks were read once is
 * remembered in one table for the whole process (`SeenTable`), with a slot
 * for every block of 1 KiB the budget holds: a core of up to that many
 * blocks is remembered across a whole read of it, so served to one peer
 * after another it is read from disk and hashed for the first two only. A
 * core of twice as many or more, read from end to end, forgets each block
 * before it comes round again: such a scan keeps nothing.
 */
import b4a from 'b4a'
import { equalHashAt } from './tree-node'

/** What the process-wide budget starts at: a 10,000-block core of 1 KiB blocks fits. */
export const DEFAULT_BLOCK_CACHE_BYTES = 16 * 1024 * 1024
/**
 * Bytes an entry costs beyond its block, counted against the budget: the
 * leaf hash, the entry, its two views and its map slot. Measured on Node 20
 * with 100,000 blocks of 1 KiB kept: 475 bytes each (it said 160 before,
 * which let 16 MiB of budget hold about 20 MiB).
 */
export const ENTRY_OVERHEAD = 480
/** Blocks above this are not kept: one would push out hundreds of small ones. */
const MAX_BLOCK = 64 * 1024
/** Bounds of the table of blocks read once (a slot for every block of 1 KiB the budget holds). */
const MIN_SEEN_SLOTS = 256
const MAX_SEEN_SLOTS = 1 << 20

/** A kept block, linked into the process-wide recency list. */
class Entry {
  /** Neighbours in `recent`: `older` is read less recently. */
  older: Entry | null = null
  newer: Entry | null = null

  constructor (
    readonly owner: Map<number, Entry>,
    readonly index: number,
    /** The block's bytes, then the 32-byte leaf hash they were verified against (one buffer: fewer objects to keep). */
    readonly kept: Uint8Array,
    readonly size: number,
    /** The block's bytes alone, as a plain view, made once rather than on every hit. */
    readonly view: Uint8Array
  ) {}
}

/**
 * The blocks read once and not kept, for every core of the process: a slot
 * names the last block (core, index) read there, and the next block to land
 * on it takes it over. A core's neighbouring blocks land on neighbouring
 * slots, so a read of up to a table's worth of them forgets none. Fixed in
 * size whatever the number of cores (each core used to keep a Set of up to
 * 4,096 indices of its own).
 */
class SeenTable {
  readonly #index: Float64Array
  readonly #owner: Uint32Array

  constructor (slots: number) {
    this.#index = new Float64Array(slots).fill(-1)
    this.#owner = new Uint32Array(slots)
  }

  /** Whether block `index` of `owner` was read once before (and forgotten now); otherwise it is remembered. */
  readBefore (owner: number, index: number): boolean {
    // Owners spread over the table; indices stay in order within one.
    const slot = (index + (Math.imul(owner, 0x9e3779b1) >>> 0)) % this.#index.length
    if (this.#index[slot] === index && this.#owner[slot] === owner) {
      this.#index[slot] = -1
      return true
    }
    this.#index[slot] = index
    this.#owner[slot] = owner
    return false
  }
}

/** A slot for every block of 1 KiB that `bytes` of budget hold, within bounds. */
export function seenSlotsFor (bytes: number): number {
  return Math.min(MAX_SEEN_SLOTS, Math.max(MIN_SEEN_SLOTS, Math.floor(bytes / (1024 + ENTRY_OVERHEAD))))
}

let budget = DEFAULT_BLOCK_CACHE_BYTES
let used = 0
let seen = new SeenTable(seenSlotsFor(budget))
/** Tells the cores' reads apart in `seen` (ids of closed cores are never handed out again before the counter wraps). */
let nextOwner = 1
/**
 * Every entry of every core, from least to most recently read: a list
 * threaded through the entries, so a hit moves its entry to the newest end
 * with a few field writes. It was a Set deleted from and added to on every
 * hit, and a hit made its view: 423 ns a hit then, 283 now (12,000 entries).
 */
const recent = { oldest: null as Entry | null, newest: null as Entry | null }

function unlink (entry: Entry): void {
  if (entry.older !== null) entry.older.newer = entry.newer
  else recent.oldest = entry.newer
  if (entry.newer !== null) entry.newer.older = entry.older
  else recent.newest = entry.older
  entry.older = entry.newer = null
}

function pushNewest (entry: Entry): void {
  entry.older = recent.newest
  entry.newer = null
  if (recent.newest !== null) recent.newest.newer = entry
  else recent.oldest = entry
  recent.newest = entry
}

function cost (entry: Entry): number {
  return entry.size + ENTRY_OVERHEAD
}

function remove (entry: Entry): void {
  unlink(entry)
  entry.owner.delete(entry.index)
  used -= cost(entry)
}

function evictTo (limit: number): void {
  while (used > limit && recent.oldest !== null) remove(recent.oldest)
}

/** The process-wide budget in bytes (0 turns the cache off); what is over it goes at once. */
export function setBlockCacheSize (bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError('Block cache size must be a non-negative integer')
  budget = bytes
  evictTo(budget)
  seen = new SeenTable(seenSlotsFor(budget))
}

export function blockCacheSize (): number {
  return budget
}

/** Bytes the cache holds now, entries' overhead included. */
export function blockCacheUsed (): number {
  return used
}

/** One core's part of the cache. */
export class CoreBlockCache {
  readonly #entries = new Map<number, Entry>()
  /** This core in `seen`. */
  readonly #owner: number

  constructor () {
    this.#owner = nextOwner
    nextOwner = nextOwner === 0xffffffff ? 1 : nextOwner + 1
  }

  /** A copy of block `index` if it is kept as verified against `leafHash`, else null. */
  get (index: number, leafHash: Uint8Array): Uint8Array | null {
    const kept = this.peek(index, leafHash)
    if (kept === null) return null
    const copy = b4a.allocUnsafe(kept.byteLength)
    copy.set(kept)
    return copy
  }

  /**
   * Block `index`'s kept bytes themselves if kept as verified against
   * `leafHash`, else null: for a reader that only copies them (serving).
   */
  peek (index: number, leafHash: Uint8Array): Uint8Array | null {
    const entry = this.#entries.get(index)
    if (entry === undefined) return null
    if (!equalHashAt(entry.kept, entry.size, leafHash)) {
      remove(entry)
      return null
    }
    if (entry !== recent.newest) {
      unlink(entry)
      pushNewest(entry)
    }
    // A plain view: a Buffer's subarray costs several times as much, and nothing but an encoder reads this one.
    return entry.view
  }

  /**
   * Keeps a copy of block `index`, just verified against `leafHash`, if it
   * was read before. A block read only once (a stream, a scan) then costs a
   * slot in `seen`, not a copy and an entry that would push out blocks that
   * are read again.
   */
  put (index: number, leafHash: Uint8Array, bytes: Uint8Array): void {
    if (seen.readBefore(this.#owner, index)) this.hold(index, leafHash, bytes)
  }

  /** Keeps a copy of block `index`, just verified against `leafHash`, read before or not: one about to be read. */
  hold (index: number, leafHash: Uint8Array, bytes: Uint8Array): void {
    if (bytes.byteLength > MAX_BLOCK || bytes.byteLength + ENTRY_OVERHEAD > budget) return
    const old = this.#entries.get(index)
    if (old !== undefined) remove(old)
    const size = bytes.byteLength
    const kept = b4a.allocUnsafe(size + 32)
    kept.set(bytes)
    kept.set(leafHash, size)
    const entry = new Entry(this.#entries, index, kept, size, new Uint8Array(kept.buffer, kept.byteOffset, size))
    this.#entries.set(index, entry)
    pushNewest(entry)
    used += cost(entry)
    if (used > budget) evictTo(budget)
  }

  /** Lets go of everything this core keeps (it closed). */
  drop (): void {
    for (const entry of [...this.#entries.values()]) remove(entry)
  }
}
