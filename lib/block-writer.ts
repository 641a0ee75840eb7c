/**
 * Writing verified blocks from peers to disk. A download verifies blocks one
 * message at a time but writes them in batches: every block queued while the
 * last batch was on its way goes out in the next one, neighbours as one data
 * write, their nodes as a few runs, the bitfield once after the data. Apart
 * from the core because it is a pipeline with state of its own (the queue,
 * the flush in progress, where the next block goes) that only ever meets the
 * core's state under the core's mutex and through the host below.
 */
import type { Core } from './core'
import type { CoreEventSink } from './core-events'
import type { MerkleTree } from './merkle-tree'
import type { BlockReader } from './block-reader'
import type { TreeNode } from './tree-node'
import { isCoded, WRITE_FAILED } from './errors'

/** Told once a queued block is written (`stored`), dropped as stale (`!stored`), or failed (`err`). */
export type StoredCallback = (err: Error | null, stored: boolean) => void

/**
 * What the writer needs from its core: objects, no closures made per core
 * (see `AnswersHost` for why).
 */
export interface BlockWriterHost {
  /** Its tree, storage, bitfield and mutex, its epoch (blocks queued in another are stale) and which blocks it holds. */
  readonly core: Core
  /** Hears 'have' for blocks just stored. */
  readonly events: CoreEventSink
  /** Clears unverified marks of blocks just stored. */
  readonly reader: BlockReader
}

interface PendingBlock {
  index: number
  value: Uint8Array
  nodes: TreeNode[]
  epoch: number
  /** Kept in memory once stored, for a read about to come (see BlockReader.hold). */
  hold: boolean
  done: StoredCallback[]
}

/** Gaps between nodes written together that are filled from verified nodes at hand. */
const MAX_NODE_GAP = 8

export class BlockWriter {
  readonly #host: BlockWriterHost
  #pending = new Map<number, PendingBlock>()
  #flushing: Promise<void> | null = null
  /**
   * Where the block after the last batch written goes (a download writes
   * block after block): its index and byte offset, from verified sizes,
   * valid in `epoch` only.
   */
  #next = { index: -1, offset: 0, epoch: -1 }

  constructor (host: BlockWriterHost) {
    this.#host = host
  }

  /**
   * Queues a verified block (its proof's `nodes` are staged in the tree
   * until written). `done` is told when it is on disk, or that it was not
   * written because it was verified in another epoch than the core's now.
   * `hold`: keep it in memory once stored (a read of it is about to come).
   */
  queue (index: number, value: Uint8Array, nodes: TreeNode[], epoch: number, hold: boolean, done: StoredCallback): void {
    const host = this.#host
    if (epoch !== host.core.epoch) {
      done(null, false)
      return
    }
    if (host.core.has(index)) {
      done(null, true)
      return
    }
    const pending = this.#pending.get(index)
    if (pending !== undefined) {
      pending.done.push(done)
      if (hold) pending.hold = true
      return
    }
    host.core.tree.stage(nodes)
    this.#pending.set(index, { index, value, nodes, epoch, hold, done: [done] })
    if (this.#flushing === null) this.#flushing = this.#flush()
  }

  /** Whether a block is queued for disk (so there is no point fetching it again). */
  has (index: number): boolean {
    return this.#pending.has(index)
  }

  /**
   * Drops every queued block as stale; called under the mutex when the
   * tree changes shape (the blocks were checked against the tree left).
   */
  drop (): void {
    for (const b of this.#pending.values()) for (const d of b.done) d(null, false)
    this.#pending = new Map()
  }

  /** Resolves once nothing is queued or being written. */
  async idle (): Promise<void> {
    while (this.#flushing !== null) await this.#flushing.catch(noop)
  }

  async #flush (): Promise<void> {
    const host = this.#host
    try {
      while (this.#pending.size > 0) {
        // Under the mutex: a truncation or reorg never runs halfway through a
        // batch, and a batch never runs after one it was not verified for.
        let written: PendingBlock[] = []
        await host.core.mutex.lock()
        try {
          const epoch = host.core.epoch
          const all = [...this.#pending.values()].sort((a, b) => a.index - b.index)
          this.#pending = new Map()
          const batch = all.filter(b => b.epoch === epoch)
          for (const b of all) if (b.epoch !== epoch) for (const d of b.done) d(null, false)
          if (batch.length === 0) continue
          try {
            await this.#write(batch, epoch)
            written = batch
          } catch (err) {
            const e = wrapWrite(err)
            for (const b of batch) for (const d of b.done) d(e, false)
          }
        } finally {
          host.core.mutex.unlock()
        }
        // Told once the lock is free: readers woken by it may take the lock themselves.
        if (written.length > 0) this.#announce(written)
        for (const b of written) for (const d of b.done) d(null, true)
      }
    } finally {
      this.#flushing = null
    }
  }

  /** Writes a batch of verified blocks; the caller holds the lock, so a clear, truncate or audit never sees a block half stored. */
  async #write (batch: PendingBlock[], epoch: number): Promise<void> {
    const { tree, storage, bitfield } = this.#host.core
    const reader = this.#host.reader
    // Offsets from verified sizes (the proof's nodes are staged): a rotten size never misplaces a block.
    // A block right after another is at its offset plus its size (verified with its leaf); the first
    // of a run is where the last batch ended, or found in the tree.
    const offsets = new Array<number>(batch.length)
    const next = this.#next
    for (let k = 0; k < batch.length; k++) {
      const b = batch[k]!
      if (k > 0 && b.index === batch[k - 1]!.index + 1) {
        offsets[k] = offsets[k - 1]! + batch[k - 1]!.value.byteLength
        continue
      }
      if (b.index === next.index && next.epoch === epoch) {
        offsets[k] = next.offset
        continue
      }
      const quick = tree.peekOffset(2 * b.index)
      offsets[k] = quick !== -1 ? quick : await tree.verifiedOffset(2 * b.index)
    }
    const last = batch[batch.length - 1]!
    const nodes: TreeNode[] = []
    for (const b of batch) for (const n of b.nodes) nodes.push(n)

    // Adjacent blocks become one write, and so do nodes (see withGapsFilled).
    const writes: Array<Promise<void>> = [storage.putNodes(withGapsFilled(tree, nodes))]
    let runStart = 0
    for (let k = 1; k <= batch.length; k++) {
      const prev = batch[k - 1]!
      const contiguous = k < batch.length && batch[k]!.index === prev.index + 1 && offsets[k] === offsets[k - 1]! + prev.value.byteLength
      if (contiguous) continue
      const parts: Uint8Array[] = []
      for (let m = runStart; m < k; m++) parts.push(batch[m]!.value)
      writes.push(storage.writeDataParts(offsets[runStart]!, parts))
      runStart = k
    }
    await Promise.all(writes)

    // Bits only once the data is on disk: a set bit always means the block is there.
    for (const [start, end] of indexRuns(batch)) {
      bitfield.setRange(start, end, true)
      reader.unmark(start, end)
    }
    await storage.writeBitfield(bitfield.takeDirty())
    for (const b of batch) if (b.hold) holdStored(reader, b)
    tree.unstage(nodes)
    this.#next = { index: last.index + 1, offset: offsets[batch.length - 1]! + last.value.byteLength, epoch }
  }

  /** 'have' for each run of neighbouring blocks just written. */
  #announce (batch: PendingBlock[]): void {
    for (const [start, end] of indexRuns(batch)) this.#host.events.oncoreevent('have', [start, end - start])
  }
}

/** Keeps a block just stored in memory, with the leaf its proof verified it against. */
function holdStored (reader: BlockReader, b: PendingBlock): void {
  for (const n of b.nodes) {
    if (n.index === 2 * b.index) {
      reader.hold(b.index, n.hash, b.value)
      return
    }
  }
}

/** [start, end) of each run of neighbouring blocks in a batch sorted by index. */
function indexRuns (batch: readonly PendingBlock[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let start = batch[0]!.index
  for (let k = 1; k <= batch.length; k++) {
    if (k < batch.length && batch[k]!.index === batch[k - 1]!.index + 1) continue
    out.push([start, batch[k - 1]!.index + 1])
    if (k < batch.length) start = batch[k]!.index
  }
  return out
}

/**
 * The nodes sorted, with short gaps between them filled with the verified
 * nodes at hand for those indices, so they go to disk in a few runs (a
 * download's batch leaves out the nodes earlier batches wrote: without the
 * fill, one write each for about twenty runs). A verified node written
 * again writes what the tree file holds already, or ought to.
 */
function withGapsFilled (tree: MerkleTree, nodes: TreeNode[]): TreeNode[] {
  if (nodes.length < 2) return nodes
  const sorted = nodes.slice().sort((a, b) => a.index - b.index)
  const out: TreeNode[] = [sorted[0]!]
  for (let k = 1; k < sorted.length; k++) {
    const prev = out[out.length - 1]!.index
    const next = sorted[k]!
    const gap = next.index - prev - 1
    if (gap > 0 && gap <= MAX_NODE_GAP) {
      const fill: TreeNode[] = []
      for (let i = prev + 1; i < next.index; i++) {
        const node = tree.peekNode(i)
        if (node === undefined) break
        fill.push(node)
      }
      if (fill.length === gap) for (const n of fill) out.push(n)
    }
    out.push(next)
  }
  return out
}

/** A write that failed for a reason of its own, as a coded error. */
export function wrapWrite (err: unknown): Error {
  if (isCoded(err)) return err
  return WRITE_FAILED('Write to storage failed: ' + (err instanceof Error ? err.message : String(err)))
}

function noop (): void {}
