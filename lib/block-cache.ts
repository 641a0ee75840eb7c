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
 * to its buffer changes nothing here.
 */
import b4a from 'b4a'
import { equalHashAt } from './tree-node'

/** What the process-wide budget starts at: a 10,000-block core of 1 KiB blocks fits. */
export const DEFAULT_BLOCK_CACHE_BYTES = 16 * 1024 * 1024
/** Bytes an entry costs beyond its block (leaf hash, object, map and set slots), counted against the budget. */
const ENTRY_OVERHEAD = 160
/** Blocks above this are not kept: one would push out hundreds of small ones. */
const MAX_BLOCK = 64 * 1024
/** Blocks a core remembers having read once (indices only), before it forgets them all. */
const MAX_SEEN = 4096

interface Entry {
  readonly owner: Map<number, Entry>
  readonly index: number
  /** The block's bytes, then the 32-byte leaf hash they were verified against (one buffer: fewer objects to keep). */
  readonly kept: Uint8Array
  readonly size: number
}

let budget = DEFAULT_BLOCK_CACHE_BYTES
let used = 0
/** Every entry of every core, least recently read first (a Set keeps insertion order). */
const order = new Set<Entry>()

function cost (entry: Entry): number {
  return entry.size + ENTRY_OVERHEAD
}

function remove (entry: Entry): void {
  order.delete(entry)
  entry.owner.delete(entry.index)
  used -= cost(entry)
}

function evictTo (limit: number): void {
  for (const oldest of order) {
    if (used <= limit) return
    remove(oldest)
  }
}

/** The process-wide budget in bytes (0 turns the cache off); what is over it goes at once. */
export function setBlockCacheSize (bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError('Block cache size must be a non-negative integer')
  budget = bytes
  evictTo(budget)
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
  /**
   * Blocks read once and not kept: a block is kept on its second read. A
   * block read only once (a stream, a scan) then costs an index here, not a
   * copy and an entry that would push out blocks that are read again.
   */
  readonly #seen = new Set<number>()

  /** A copy of block `index` if it is kept as verified against `leafHash`, else null. */
  get (index: number, leafHash: Uint8Array): Uint8Array | null {
    const entry = this.#entries.get(index)
    if (entry === undefined) return null
    if (!equalHashAt(entry.kept, entry.size, leafHash)) {
      remove(entry)
      return null
    }
    order.delete(entry)
    order.add(entry)
    const copy = b4a.allocUnsafe(entry.size)
    copy.set(entry.kept.subarray(0, entry.size))
    return copy
  }

  /** Keeps a copy of block `index`, just verified against `leafHash`, if it was read before. */
  put (index: number, leafHash: Uint8Array, bytes: Uint8Array): void {
    if (!this.#seen.delete(index)) {
      if (this.#seen.size >= MAX_SEEN) this.#seen.clear()
      this.#seen.add(index)
      return
    }
    this.hold(index, leafHash, bytes)
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
    const entry: Entry = { owner: this.#entries, index, kept, size }
    this.#entries.set(index, entry)
    order.add(entry)
    used += cost(entry)
    if (used > budget) evictTo(budget)
  }

  /** Lets go of everything this core keeps (it closed). */
  drop (): void {
    for (const entry of [...this.#entries.values()]) remove(entry)
    this.#seen.clear()
  }
}
