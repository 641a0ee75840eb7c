/**
 * What a snapshot session sees: the tree as it was when the snapshot was
 * taken. Below `compatLength` the core still holds the same blocks (appends
 * never change old blocks), so reads go to the core. A truncation — ours or a
 * writer's, followed as a reorg — lowers `compatLength`; the blocks the
 * snapshot held locally when it was taken are copied out first, so the
 * snapshot keeps returning the bytes it was taken over, as Hypercore 11's
 * storage snapshots do. Blocks that arrived after the snapshot was taken are
 * not kept: like Hypercore 11, such a read fails with SNAPSHOT_NOT_AVAILABLE.
 */
import { Bitfield } from './bitfield'
import type { TreeNode } from './tree-node'

/** The frozen tree a snapshot was taken at. */
export interface SnapshotTree {
  length: number
  byteLength: number
  fork: number
  roots: readonly TreeNode[]
}

export class Snapshot implements SnapshotTree {
  readonly length: number
  readonly byteLength: number
  readonly fork: number
  readonly roots: readonly TreeNode[]
  /** Blocks below this are the core's own, unchanged since the snapshot. */
  compatLength: number
  /** Sessions sharing this snapshot (a snapshot of a snapshot is the same one). */
  refs = 0
  /** Old-fork blocks copied out before a truncation removed them from the core. */
  readonly #retained = new Map<number, Uint8Array>()
  /** Blocks stored after the snapshot was taken: not the snapshot's to keep. */
  readonly #later = new Bitfield()

  /** A snapshot of the core's current tree: every block below its length is still the core's. */
  constructor (tree: SnapshotTree) {
    this.length = tree.length
    this.byteLength = tree.byteLength
    this.fork = tree.fork
    this.roots = tree.roots.slice()
    this.compatLength = tree.length
  }

  /** Blocks [start, start + length) were stored in the core. */
  onstored (start: number, length: number): void {
    const end = Math.min(start + length, this.compatLength)
    if (start < end) this.#later.setRange(start, end, true)
  }

  /**
   * Block `index` is about to be truncated away: whether this snapshot wants
   * it kept (it held it when it was taken and reads it still).
   */
  wants (index: number): boolean {
    return index < this.compatLength && !this.#later.get(index) && !this.#retained.has(index)
  }

  retain (index: number, block: Uint8Array): void {
    this.#retained.set(index, block)
  }

  /** The core was truncated to `length`: blocks from there on are no longer the core's. */
  truncated (length: number): void {
    if (length < this.compatLength) this.compatLength = length
  }

  /** A kept old-fork block, or undefined. */
  retained (index: number): Uint8Array | undefined {
    return this.#retained.get(index)
  }

  get retainedBytes (): number {
    let n = 0
    for (const b of this.#retained.values()) n += b.byteLength
    return n
  }
}
