/**
 * Reading blocks back from disk, verified. A block is checked against its
 * leaf, the leaf tied by hashes to the signed roots (`MerkleTree.verifyNode`),
 * and located by verified sizes only, so nothing rot did to the tree or the
 * data is ever returned:
 *
 * - bytes that do not match their verified leaf are rot: the core clears the
 *   block (after a second look under its lock);
 * - a block whose leaf cannot be verified (a node on its way up is lost or
 *   rotten) is kept but marked unverified: not `has()`, not served, fetched
 *   again on read, until it verifies again or is stored anew.
 *
 * The marks live in memory; a reopened core verifies on read anyway.
 */
import { Bitfield } from './bitfield'
import { CoreBlockCache } from './block-cache'
import { matchesLeaf } from './crypto'
import { byteOffset } from './proof'
import { KeyRing } from './key-ring'
import { MISSING_NODE, isCoded, missingNodeOf } from './errors'
import type { MerkleTree } from './merkle-tree'
import type { CoreStorage } from './storage'
import { copyNode, equalHashes, type TreeNode } from './tree-node'

/** How a block is read. */
export interface ReadOptions {
  /** Check the block against its verified leaf (default true). */
  verify?: boolean
  /** The read is for a peer: a block found rotten is fetched back from other peers. */
  serving?: boolean
}

export type BlockVerdict = 'good' | 'corrupt' | 'unverifiable'

/** What the reader needs from the core it reads for. */
export interface BlockReaderHost {
  readonly tree: MerkleTree
  readonly storage: CoreStorage
  readonly bitfield: Bitfield
  /** Clears block `index`, read as not matching its verified leaf, if a second look agrees. */
  dropRotten (index: number, refetch: boolean): Promise<void>
  /** Blocks [start, start + length) are not served from here for now (`refetch`: fetch them back). */
  dropped (start: number, length: number, refetch: boolean): void
  /** Blocks [start, start + length) are served from here again. */
  restored (start: number, length: number): void
}

export class BlockReader {
  readonly #host: BlockReaderHost
  /** Held blocks that cannot be verified now. */
  readonly #unverified = new Bitfield()
  /** Blocks read and verified lately, kept so a second read hashes nothing. */
  readonly #cache = new CoreBlockCache()
  /** Blocks being read for peers: peers asking for one at once share its read and its hash. */
  readonly #reading = new KeyRing<SharedRead>()
  /** Where `readMany` looks at a leaf it needs only for a moment (its hash, to find the block kept). */
  readonly #leafAtHand: TreeNode = { index: 0, size: 0, hash: new Uint8Array(32) }

  constructor (host: BlockReaderHost) {
    this.#host = host
  }

  isUnverified (index: number): boolean {
    return this.#unverified.get(index)
  }

  /** First marked block at or after `index`, or -1. */
  firstUnverified (index: number): number {
    return this.#unverified.firstSet(index)
  }

  /**
   * The block's bytes, or null when it is not held here (or, verified, not
   * good: then it is marked or cleared, and the caller fetches it like a
   * missing one). Serving, a lost node on the way up throws MISSING_NODE, so
   * the caller heals it from peers as for a proof.
   */
  async read (index: number, opts: ReadOptions = {}, again = true): Promise<Uint8Array | null> {
    const { tree, storage, bitfield } = this.#host
    if (index >= tree.length || !bitfield.get(index)) return null
    const now = this.#readNow(index, opts)
    if (now !== null) return now
    if (opts.verify === false) {
      if (this.#unverified.get(index)) return null
      const { offset, size } = await this.#locate(index)
      return storage.readData(offset, size)
    }
    const leaf = await this.#leaf(index, opts)
    if (leaf === null) return null
    const kept = this.#cache.get(index, leaf.hash)
    if (kept !== null) return kept
    const bytes = await this.#readHeld(await tree.verifiedOffset(2 * index), leaf.size)
    if (bytes !== null && matchesLeaf(leaf, bytes)) {
      this.#verified(index)
      this.#cache.put(index, leaf.hash, bytes)
      return bytes
    }
    await this.#host.dropRotten(index, opts.serving === true)
    // The second look (under the lock) may have found good bytes: a write of
    // this block raced the first one. Then it is held and verified now.
    return again ? this.read(index, opts, false) : null
  }

  /**
   * The common read, from what is in memory and one synchronous read of the
   * data file: the leaf verified at hand, the offset from verified sizes at
   * hand, the bytes matching the leaf (with `verify: false`, the leaf's size
   * as stored and no check). Null when any of that is not so (then `read`
   * goes the long way, which also deals with rot).
   */
  #readNow (index: number, opts: ReadOptions): Uint8Array | null {
    if (this.#unverified.get(index)) return null
    const { tree, storage } = this.#host
    if (opts.verify === false) {
      // Unchecked: the size as stored, the offset from sizes at hand (verified ones, the same unless rotten).
      const size = tree.storedSize(2 * index)
      const offset = size === -1 ? -1 : tree.peekOffset(2 * index)
      return offset === -1 ? null : storage.readDataNow(offset, size)
    }
    const leaf = tree.verifyNodeNow(2 * index)
    if (leaf === undefined || leaf === null || 'missing' in leaf) return null
    const kept = this.#cache.get(index, leaf.hash)
    if (kept !== null) return kept
    const offset = tree.peekOffset(2 * index)
    if (offset === -1) return null
    const bytes = storage.readDataNow(offset, leaf.size)
    if (bytes === null || !matchesLeaf(leaf, bytes)) return null
    this.#cache.put(index, leaf.hash, bytes)
    return bytes
  }

  /**
   * Keeps block `index`, verified against `leafHash` and just stored, for a
   * read about to come (a `get` waiting for it): that read then takes it
   * from memory instead of reading and hashing it again.
   */
  hold (index: number, leafHash: Uint8Array, bytes: Uint8Array): void {
    this.#cache.hold(index, leafHash, bytes)
  }

  /** Lets go of the blocks kept in memory for this core (it closed). */
  close (): void {
    this.#cache.drop()
  }

  /**
   * Several blocks (null for those not held, or not good), runs of
   * neighbours read with one read each: what serving a peer needs. Peers
   * asking for a block at once share one read of it and one hash, and a
   * block verified on two reads is kept in memory: peers asking for it later
   * get the kept bytes, neither read nor hashed again (the bytes are then
   * shared: to be copied into an answer, never changed).
   */
  async readMany (indices: number[], opts: ReadOptions = {}): Promise<Array<Uint8Array | null>> {
    const { tree, storage, bitfield } = this.#host
    const verify = opts.verify !== false
    const held = indices.filter(i => i < tree.length && bitfield.get(i) && (verify || !this.#unverified.get(i)))
    const byIndex = new Map<number, Uint8Array>()
    let where: Array<Located | null>
    if (!verify) {
      where = await Promise.all(held.map(async index => ({ index, leaf: null, ...await this.#locate(index) })))
    } else {
      // One after the other: the first leaf of a 16-leaf window reads it, the others find it cached.
      held.sort((a, b) => a - b)
      where = []
      let prev: Located | null = null
      for (const index of held) {
        // A kept block whose leaf is verified at hand (most of what a writer serves again): no copy of the leaf made.
        const atHand = !this.#unverified.get(index) && tree.peekNodeInto(2 * index, this.#leafAtHand)
        if (atHand) {
          const kept = this.#cache.peek(index, this.#leafAtHand.hash)
          if (kept !== null) {
            byIndex.set(index, kept)
            prev = null
            continue
          }
        }
        // Without waiting when the leaf is verified from what is in memory (most of a run); at hand, it is that one.
        const now = atHand ? copyNode(this.#leafAtHand) : tree.verifyNodeNow(2 * index)
        const leaf = now !== undefined && now !== null && !('missing' in now) ? now : await this.#leaf(index, opts)
        if (leaf === null) {
          prev = null
          continue
        }
        // A marked block is checked on disk again, as a read of it is (see `#readNow`); one whose leaf was at hand was looked for above.
        const kept = atHand || this.#unverified.get(index) ? null : this.#cache.peek(index, leaf.hash)
        if (kept !== null) {
          byIndex.set(index, kept)
          // The next block finds its own offset: this one's was not looked up.
          prev = null
          continue
        }
        // A block right after another starts where that one ends (both sizes verified).
        let offset: number
        if (prev !== null && prev.index === index - 1) {
          offset = prev.offset + prev.size
        } else {
          offset = tree.peekOffset(2 * index)
          if (offset === -1) offset = await tree.verifiedOffset(2 * index)
        }
        where.push(prev = { index, leaf, offset, size: leaf.size })
      }
    }
    const shared: Array<[number, SharedRead]> = []
    if (verify) {
      where = where.filter(b => {
        // Only a read checked against the same leaf: after a truncation the index may name another block.
        const reading = this.#reading.get(b!.index)
        const share = reading !== undefined && equalHashes(reading.hash, b!.leaf!.hash)
        if (share) shared.push([b!.index, reading])
        return !share
      })
    }
    const order = where.filter(b => b !== null).sort((a, b) => a.offset - b.offset)
    const rotten: number[] = []
    const reads: Array<Promise<void>> = []
    for (let k = 0; k < order.length;) {
      let end = k + 1
      while (end < order.length && order[end]!.offset === order[end - 1]!.offset + order[end - 1]!.size && end - k < 256) end++
      const run = order.slice(k, end)
      const start = run[0]!.offset
      const last = run[run.length - 1]!
      const size = last.offset + last.size - start
      const slots = verify ? run.map(b => this.#share(b.index, b.leaf!.hash)) : []
      const read = (verify ? storage.readDataUpTo(start, size) : storage.readData(start, size)).then(bytes => {
        run.forEach((b, j) => {
          const value = bytes.subarray(b.offset - start, b.offset - start + b.size)
          if (b.leaf === null) {
            byIndex.set(b.index, value)
          } else if (matchesLeaf(b.leaf, value)) {
            this.#verified(b.index)
            byIndex.set(b.index, value)
            slots[j]!.value = value
            this.#cache.put(b.index, b.leaf.hash, value)
          } else {
            rotten.push(b.index)
          }
        })
      })
      if (verify) {
        // Settles either way: a failed read leaves the sharers without the block (and its own caller with the error).
        const unshare = (): void => run.forEach((b, j) => this.#unshare(b.index, slots[j]!))
        const done = read.then(unshare, unshare)
        for (const slot of slots) slot.done = done
      }
      reads.push(read)
      k = end
    }
    await Promise.all(reads)
    for (const [index, slot] of shared) {
      // Another peer's read: its verdict too (rot is that read's to deal with).
      await slot.done
      if (slot.value !== null) byIndex.set(index, slot.value)
    }
    for (const index of rotten) await this.#host.dropRotten(index, opts.serving === true)
    return indices.map(i => byIndex.get(i) ?? null)
  }

  #share (index: number, hash: Uint8Array): SharedRead {
    const slot: SharedRead = { done: DONE, value: null, hash }
    this.#reading.set(index, slot)
    return slot
  }

  #unshare (index: number, slot: SharedRead): void {
    if (this.#reading.get(index) === slot) this.#reading.delete(index)
  }

  /** Checks held block `index` on disk: good, corrupt (bytes against its verified leaf), or unverifiable. */
  async check (index: number): Promise<BlockVerdict> {
    const { tree } = this.#host
    const leaf = await tree.verifiedNode(2 * index)
    if (leaf === null) return 'unverifiable'
    let offset: number
    try {
      offset = await tree.verifiedOffset(2 * index)
    } catch (err) {
      if (missingNodeOf(err) !== null) return 'unverifiable'
      throw err
    }
    const bytes = await this.#readHeld(offset, leaf.size)
    return bytes !== null && matchesLeaf(leaf, bytes) ? 'good' : 'corrupt'
  }

  /**
   * Marks a held block unverified: not `has()`, not served, fetched again on
   * read (or at once with `refetch`; its proof brings the nodes it lacks).
   */
  mark (index: number, refetch = false): void {
    if (!this.#host.bitfield.get(index) || this.#unverified.get(index)) return
    this.#unverified.set(index, true)
    this.#host.dropped(index, 1, refetch)
  }

  /** The marks become exactly `indices` (an audit's verdict), quietly. */
  setMarks (indices: readonly number[], length: number): void {
    this.#unverified.setRange(0, length, false)
    for (const i of indices) this.#unverified.set(i, true)
  }

  /** Forgets marks in [start, end) quietly (the blocks were cleared or stored anew). */
  unmark (start: number, end: number): void {
    const first = this.#unverified.firstSet(start)
    if (first !== -1 && first < end) this.#unverified.setRange(start, end, false)
  }

  /** After the tree healed: every marked block may verify now; reads and peers find out. */
  unmarkAll (length: number): void {
    const marked: number[] = []
    for (let i = this.#unverified.firstSet(0); i !== -1; i = this.#unverified.firstSet(i + 1)) marked.push(i)
    if (marked.length === 0) return
    this.#unverified.setRange(0, length, false)
    for (const [start, n] of runs(marked)) this.#host.restored(start, n)
  }

  truncate (length: number): void {
    this.#unverified.truncate(length)
  }

  /** The verified leaf of held block `index`, or null after marking it. */
  async #leaf (index: number, opts: ReadOptions): Promise<TreeNode | null> {
    const { tree } = this.#host
    const now = tree.verifyNodeNow(2 * index)
    const leaf = now !== undefined ? now : await tree.verifyNode(2 * index)
    if (leaf !== null && !('missing' in leaf)) return leaf
    // Serving, a lost node is healed from peers like one a proof needs; rot on the way up heals with the block.
    if (leaf !== null && opts.serving === true) throw MISSING_NODE(leaf.missing)
    this.mark(index, opts.serving === true)
    return null
  }

  #verified (index: number): void {
    if (!this.#unverified.get(index)) return
    this.#unverified.set(index, false)
    this.#host.restored(index, 1)
  }

  /** `size` bytes at `offset`, or null where the data file ends first (the bytes are lost). */
  async #readHeld (offset: number, size: number): Promise<Uint8Array | null> {
    try {
      return await this.#host.storage.readData(offset, size)
    } catch (err) {
      if (isCoded(err, 'STORAGE_CORRUPT')) return null
      throw err
    }
  }

  /** Where block `index` lies by the sizes as stored (`verify: false` reads). */
  async #locate (index: number): Promise<{ offset: number, size: number }> {
    const { tree } = this.#host
    const [leaf, offset] = await Promise.all([tree.getNode(2 * index), byteOffset(tree, 2 * index)])
    // A lost leaf still has a size: the distance to the next block.
    const size = leaf !== null ? leaf.size : (await byteOffset(tree, 2 * index + 2)) - offset
    return { offset, size }
  }
}

/** A read for peers under way, checked against leaf `hash`: settled when its bytes are in (`value`: good ones, or null). */
interface SharedRead {
  done: Promise<void>
  value: Uint8Array | null
  readonly hash: Uint8Array
}

const DONE: Promise<void> = Promise.resolve()

/** Where a held block lies: its verified leaf (null: unchecked) and place in the data file. */
interface Located {
  index: number
  leaf: TreeNode | null
  offset: number
  size: number
}

/** Sorted [start, length] runs of the given block indices. */
export function runs (indices: readonly number[]): Array<[number, number]> {
  const sorted = [...new Set(indices)].sort((a, b) => a - b)
  const out: Array<[number, number]> = []
  for (const i of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && last[0] + last[1] === i) last[1]++
    else out.push([i, 1])
  }
  return out
}
