/**
 * One core on its own: header, tree, blocks and bitfield kept consistent on
 * disk. Every tree mutation (append, truncate, repair) runs under one mutex
 * and follows one write order — blocks, nodes and bits first, the header
 * last — so a process killed at any point reopens to the last header written,
 * and everything that header promises is on disk.
 *
 * This module holds that state and the steps of the write order (the header
 * commit, leaving a tree, settling), the local writes and the reads. What
 * changes the core on outside word runs in modules of its own against the
 * core's public face plus those steps, handed over as a host: data from
 * peers (`peer-data`), forks (`reorg`), repair and audit (`healing`); blocks
 * from peers are written by `block-writer`, signatures are `verifier`'s.
 */
import b4a from 'b4a'
import * as crypto from './crypto'
import type { MerkleTree } from './merkle-tree'
import { TreeBatch, type TreeState } from './tree-batch'
import { Mutex } from './mutex'
import type { Bitfield } from './bitfield'
import type { CoreStorage, Header } from './storage'
import { generateProof, type Proof, type ProofRequest } from './proof'
import { ProofScratch, blockProofNow } from './block-proof'
import { hasOpenTail } from './crash-recovery'
import type { AuditReport } from './audit'
import { BlockReader, type ReadOptions } from './block-reader'
import { BlockWriter, wrapWrite, type StoredCallback } from './block-writer'
import { openCore, type CoreOpenOptions, type OpenedCore } from './core-open'
import type { CoreEvents, CoreEventSink } from './core-events'
import { Verifier, type CommitOptions } from './verifier'
import { applyData, checkConflict, verifyBlockNow, verifyData, type PeerDataHost, type VerifiedData } from './peer-data'
import { continueFork, reorg, verifyFork, type ReorgHost, type VerifiedFork } from './reorg'
import { audit, repair, type HealingHost } from './healing'
import { TreeAsAsked, crossingParents, seekBytes, sumSizes, verifiedRoots } from './tree-lookups'
import * as m from './messages'
import { ASSERTION, BAD_ARGUMENT, INVALID_OPERATION, MISSING_NODE, missingNodeOf } from './errors'
import type { TreeNode } from './tree-node'
import type { Manifest } from './messages'

export interface AppendOptions extends CommitOptions {
  /** Append nothing when the core would grow past this length. */
  maxLength?: number
  /** Runs under the lock with the blocks, the length they start at and the fork: in-place encryption. */
  preappend?: (blocks: Uint8Array[], start: number, fork: number) => void | Promise<void>
}

const REPAIR_MODE_MESSAGE = 'Cannot commit while repair mode is on'

// Named through the core by the replicator, the fork switch and tests.
export type { CoreOpenOptions, VerifiedData, VerifiedFork }

export class Core {
  readonly key: Uint8Array
  readonly discoveryKey: Uint8Array
  readonly keyPair: crypto.KeyPair | null
  readonly writable: boolean
  readonly tree: MerkleTree
  readonly bitfield: Bitfield
  readonly mutex = new Mutex()
  repairMode: boolean
  /**
   * Runs under the lock before a truncation touches anything, with the new
   * and the old length: snapshots copy out the blocks they still need.
   */
  onbeforetruncate: ((newLength: number, oldLength: number) => Promise<void>) | null = null
  private contiguous: number
  private header: Header
  /**
   * Bumped by every truncation and reorg, under the mutex, before anything
   * changes: work checked against an older epoch (a verified block, a fork
   * search, a read) is stale and must not land.
   */
  #epoch = 0
  /** Reads blocks back, verified; keeps the marks of held blocks that cannot be verified now. */
  readonly #reader: BlockReader
  /** Writes verified blocks from peers, in batches. */
  readonly #writer: BlockWriter
  /** The manifest and signatures: what our key signs. */
  readonly #verifier: Verifier
  /** What `peer-data`, `reorg` and `healing` may do beyond the public face: steps of the write order. */
  readonly #host: PeerDataHost & ReorgHost & HealingHost
  readonly #proofNodes: ProofScratch
  readonly #events: CoreEventSink

  private constructor (
    readonly storage: CoreStorage,
    opened: OpenedCore,
    events: CoreEventSink
  ) {
    this.#events = events
    const { header, tree, bitfield } = opened
    this.header = header
    this.key = header.key
    this.discoveryKey = crypto.discoveryKey(header.key)
    this.#verifier = new Verifier(header.key, opened.manifest)
    this.keyPair = header.keyPair
    this.tree = tree
    this.#proofNodes = new ProofScratch(tree)
    this.bitfield = bitfield
    this.repairMode = opened.repairMode
    this.writable = opened.writable
    this.contiguous = Math.min(bitfield.firstUnset(0), tree.length)
    this.#reader = new BlockReader({
      tree,
      storage,
      bitfield,
      dropRotten: (index, refetch) => this.dropRotten(index, refetch),
      dropped: (start, length, refetch) => {
        this.#lowerContiguous(start)
        this.emit('drop', start, length, refetch)
      },
      restored: (start, length) => this.emit('have', start, length)
    })
    this.#writer = new BlockWriter({ core: this, events, reader: this.#reader })
    this.#host = {
      core: this,
      verifier: this.#verifier,
      reader: this.#reader,
      emit: (name, ...args) => this.emit(name, ...args),
      commit: state => this.writeTree(state),
      adoptManifest: manifest => this.adoptManifest(manifest),
      appended: () => this.emit('append'),
      leaveTree: () => this.leaveTree(),
      cutHeld: length => this.#cutHeld(length),
      truncated: (length, fork) => this.emit('truncate', length, fork),
      restoreRoots: roots => this.#restoreRoots(roots),
      settle: () => this.settle(),
      lowerContiguous: index => this.#lowerContiguous(index)
    }
  }

  static async open (storage: CoreStorage, opts: CoreOpenOptions, events: CoreEventSink): Promise<Core> {
    return new Core(storage, await openCore(storage, opts), events)
  }

  private emit<K extends keyof CoreEvents> (name: K, ...args: Parameters<CoreEvents[K]>): void {
    this.#events.oncoreevent(name, args)
  }

  /** The manifest, once known (from storage, or from a peer). */
  get manifest (): Manifest | null {
    return this.#verifier.manifest
  }

  get length (): number {
    return this.tree.length
  }

  get byteLength (): number {
    return this.tree.byteLength
  }

  get fork (): number {
    return this.tree.fork
  }

  /** Count of truncations and reorgs so far: a read that spans a change of it must read again. */
  get epoch (): number {
    return this.#epoch
  }

  get contiguousLength (): number {
    if (this.contiguous < this.tree.length && this.has(this.contiguous)) {
      const unverified = this.#reader.firstUnverified(this.contiguous)
      const unset = this.bitfield.firstUnset(this.contiguous)
      this.contiguous = Math.min(unverified === -1 ? unset : Math.min(unset, unverified), this.tree.length)
    }
    return Math.min(this.contiguous, this.tree.length)
  }

  /** Whether block `index` is held here, as far as we can tell good. */
  has (index: number): boolean {
    return index < this.tree.length && this.bitfield.get(index) && !this.#reader.isUnverified(index)
  }

  // -------------------------------------------------------------------------
  // Writing

  async append (blocks: Uint8Array[], opts: AppendOptions = {}): Promise<{ length: number, byteLength: number }> {
    this.assertCommitable()
    await this.mutex.lock()
    try {
      this.assertCommitable()
      const tree = this.tree
      const max = opts.maxLength ?? -1
      if (max >= 0 && tree.length + blocks.length > max) return { length: tree.length, byteLength: tree.byteLength }
      if (opts.preappend) await opts.preappend(blocks, tree.length, tree.fork)
      if (blocks.length === 0) return { length: tree.length, byteLength: tree.byteLength }

      const batch = new TreeBatch(tree.state())
      for (const block of blocks) batch.append(block)
      batch.signature = this.#verifier.sign(batch, opts, this.keyPair)

      const start = tree.length
      const { header, contiguous } = this
      this.bitfield.setRange(start, batch.length, true)
      if (contiguous === start) this.contiguous = batch.length
      try {
        // All four writes at once: the header names the blocks it was written
        // with (appendedFrom), and a reopen after a crash checks exactly those.
        await Promise.all([
          this.storage.writeDataParts(tree.byteLength, blocks),
          this.storage.putNodes(batch.nodes),
          this.storage.writeBitfield(this.bitfield.takeDirty()),
          this.writeTree(batch, start)
        ])
      } catch (err) {
        this.header = header
        this.contiguous = contiguous
        this.bitfield.setRange(start, batch.length, false)
        this.bitfield.takeDirty()
        throw wrapWrite(err)
      }

      // The new length first: it sizes the node cache for the nodes trusted next.
      tree.setState(batch)
      for (const node of batch.nodes) tree.trust(node)
      this.emit('append')
      this.emit('have', start, batch.length - start)
      return { length: batch.length, byteLength: batch.byteLength }
    } finally {
      this.mutex.unlock()
    }
  }

  async truncate (newLength: number, fork: number, opts: CommitOptions = {}): Promise<void> {
    if (!Number.isSafeInteger(newLength) || newLength < 0) throw BAD_ARGUMENT('Length must be a non-negative integer')
    if (!Number.isSafeInteger(fork) || fork < 0) throw BAD_ARGUMENT('Fork must be a non-negative integer')
    this.assertCommitable()
    await this.mutex.lock()
    try {
      this.assertCommitable()
      const tree = this.tree
      const oldLength = tree.length
      if (newLength > oldLength) throw BAD_ARGUMENT('Cannot truncate to ' + newLength + ', the core has ' + oldLength + ' blocks')

      // Only verified roots get signed: a rotten node must never become part of a signed tree.
      const roots = await verifiedRoots(tree, newLength, i => INVALID_OPERATION('Cannot truncate: tree node ' + i + ' is missing or does not verify'))
      const batch = new TreeBatch({ roots, length: newLength, byteLength: sumSizes(roots), fork, signature: null })
      batch.signature = this.#verifier.sign(batch, opts, this.keyPair)
      if (this.onbeforetruncate !== null) await this.onbeforetruncate(newLength, oldLength)
      this.leaveTree()

      // The header goes first: from here on, what lies past the new length is
      // garbage to a reopen, so the clean-up below may be cut short freely.
      await this.writeTree(batch)
      tree.forget()
      tree.setState(batch)
      this.#cutHeld(newLength)
      await Promise.all([
        this.storage.writeBitfield(this.bitfield.takeDirty()),
        this.storage.deleteNodeRange(2 * newLength, 2 * oldLength),
        this.storage.deleteNodes(crossingParents(newLength, oldLength)),
        this.storage.truncateData(batch.byteLength)
      ])
      this.emit('truncate', newLength, fork)
    } finally {
      this.mutex.unlock()
    }
  }

  /**
   * Removes blocks from local storage; the tree keeps proving them. Peers are
   * told (a range drop, as Hypercore does), and `get` fetches them again.
   * Resolves with the bytes freed (0 where verified sizes cannot locate them).
   */
  async clear (start: number, end: number): Promise<number> {
    await this.mutex.lock()
    try {
      end = Math.min(end, this.tree.length)
      if (start >= end) return 0
      // A reopen checks the last append's blocks; they must not be cleared under it.
      await this.settle()
      await this.unhold(start, end)
      const freed = await this.releaseData(start, end)
      this.emit('drop', start, end - start, false)
      return freed
    } finally {
      this.mutex.unlock()
    }
  }

  /** Nothing from `length` on is held any more, nor marked unverified (a truncation or a reorg cut it). */
  #cutHeld (length: number): void {
    this.bitfield.truncate(length)
    this.#reader.truncate(length)
    this.#lowerContiguous(length)
  }

  #lowerContiguous (index: number): void {
    if (this.contiguous > index) this.contiguous = index
  }

  /** Blocks [start, end) are no longer held: bits first, so no reader trusts the bytes after this. */
  private async unhold (start: number, end: number): Promise<void> {
    this.bitfield.setRange(start, end, false)
    this.#reader.unmark(start, end)
    this.#lowerContiguous(start)
    await this.storage.writeBitfield(this.bitfield.takeDirty())
  }

  /**
   * Frees the bytes of blocks [start, end) where verified sizes locate them;
   * where they do not, the bytes stay (a guess could hit a neighbour).
   */
  private async releaseData (start: number, end: number): Promise<number> {
    let from: number
    let to: number
    try {
      from = await this.tree.verifiedOffset(2 * start)
      to = await this.tree.verifiedOffset(2 * end)
    } catch (err) {
      if (missingNodeOf(err) !== null) return 0
      throw err
    }
    if (to > from) await this.storage.clearData(from, to - from)
    return Math.max(0, to - from)
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * The block's bytes, or null when it is not held here (or, verified, not
   * good: rotten bytes clear it, an unverifiable leaf marks it; either way
   * the caller fetches it like a missing block). See `BlockReader`.
   */
  getBlock (index: number, opts: ReadOptions = {}): Promise<Uint8Array | null> {
    return this.#reader.read(index, opts)
  }

  /** Several blocks at once, runs of neighbours read together (serving a peer); like `getBlock`. */
  getBlocks (indices: number[], opts: ReadOptions = {}): Promise<Array<Uint8Array | null>> {
    return this.#reader.readMany(indices, opts)
  }

  /**
   * Clears block `index`, read as not matching its leaf, once a second look
   * under the lock agrees (it may have been stored again in between).
   */
  private async dropRotten (index: number, refetch: boolean): Promise<void> {
    await this.mutex.lock()
    try {
      if (index >= this.tree.length || !this.bitfield.get(index)) return
      const verdict = await this.#reader.check(index)
      if (verdict === 'unverifiable') this.#reader.mark(index)
      if (verdict !== 'corrupt') return
      await this.settle()
      await this.unhold(index, index + 1)
      this.emit('drop', index, 1, refetch)
    } finally {
      this.mutex.unlock()
    }
  }

  /**
   * [block index, offset inside it] of byte `bytes`, counting `padding` bytes
   * of every block as not there (encryption padding, as Hypercore 11 does).
   */
  seek (bytes: number, padding = 0): Promise<[number, number]> {
    return seekBytes(this.tree, bytes, padding)
  }

  async treeHash (length = this.tree.length): Promise<Uint8Array> {
    if (this.repairMode) throw INVALID_OPERATION('The tree is being repaired')
    if (length === this.tree.length) return this.tree.hash()
    if (!Number.isSafeInteger(length) || length < 0 || length > this.tree.length) throw BAD_ARGUMENT('Length is out of bounds')
    return crypto.treeHash(await verifiedRoots(this.tree, length, MISSING_NODE))
  }

  /**
   * A proof from the current tree; throws INVALID_OPERATION if a node it
   * needs is missing. Appends while proving do not disturb it (it proves the
   * tree as it was when asked: appends only add nodes); a truncation does.
   */
  async proof (req: ProofRequest): Promise<Proof> {
    const now = blockProofNow(this.tree, req)
    if (now !== null) return now
    const epoch = this.#epoch
    const tree = this.tree
    const asked = new TreeAsAsked(tree.state(), tree.verified)
    try {
      const proof = await generateProof(asked, req)
      if (this.#epoch !== epoch) throw INVALID_OPERATION('The tree changed while proving')
      return proof
    } catch (err) {
      if (this.#epoch !== epoch) throw INVALID_OPERATION('The tree changed while proving')
      throw err
    }
  }

  /**
   * The nodes of `proof` for a plain block request, from verified nodes at
   * hand, without waiting; null when it takes more (then `proof`). Throws
   * like `proof`. What serving answers most requests with: the nodes are
   * reused by the next call, so encode them before making another.
   */
  blockProofNodesNow (req: ProofRequest): TreeNode[] | null {
    return this.#proofNodes.nodesFor(req)
  }

  // -------------------------------------------------------------------------
  // Verifying, repairing, auditing

  /**
   * Verifies a proof that needs nothing local (upgrade from 0) against this
   * core's key. Returns the tree it proves.
   */
  verifyFullyRemote (proof: Proof): TreeBatch {
    return this.#verifier.verifyFullyRemote(proof)
  }

  /** See `peer-data`: 'conflict' when a fully remote proof signed by our signers proves another tree than ours. */
  checkConflict (proof: Proof): Promise<'conflict' | 'invalid' | 'none'> {
    return checkConflict(this, proof)
  }

  /** See `healing`: restores tree nodes from a verified proof; true when they are now part of our tree. */
  repair (proof: Proof): Promise<boolean> {
    return repair(this.#host, proof)
  }

  /**
   * See `healing`: checks every held block and stored node; rewrites what
   * can be recomputed, drops what cannot, clears or marks bad blocks.
   */
  audit (): Promise<AuditReport> {
    return audit(this.#host)
  }

  /** Out of repair mode with `roots` (checked against our signature) as the tree's. */
  async #restoreRoots (roots: TreeNode[]): Promise<void> {
    const tree = this.tree
    tree.setState({ ...tree.state(), roots, byteLength: sumSizes(roots) })
    // Nodes verified against the roots we had in repair mode are checked again against the signed ones.
    tree.forget()
    this.repairMode = false
    if (tree.byteLength !== this.header.tree.byteLength) await this.writeTree(tree)
  }

  private async adoptManifest (manifest: Manifest): Promise<void> {
    this.#verifier.adopt(manifest)
    this.header = { ...this.header, manifest: m.encode(m.manifest, manifest) }
    await this.storage.writeHeader(this.header)
    this.emit('manifest')
  }

  // -------------------------------------------------------------------------
  // User data: local key-value pairs, kept in the header (never replicated)

  getUserData (key: string): Uint8Array | null {
    const entry = this.header.userData?.find(e => e.key === key)
    return entry === undefined ? null : entry.value
  }

  /** Sets (or with null, deletes) one entry; durable when this resolves. */
  async setUserData (key: string, value: Uint8Array | null): Promise<void> {
    await this.mutex.lock()
    try {
      const rest = (this.header.userData ?? []).filter(e => e.key !== key)
      if (value !== null) rest.push({ key, value: b4a.from(value) })
      this.header = { ...this.header, userData: rest }
      await this.storage.writeHeader(this.header)
    } finally {
      this.mutex.unlock()
    }
  }

  // -------------------------------------------------------------------------
  // Data from peers: verified first, stored after, never the other way round

  /** See `peer-data`: checks a peer's data message, storing nothing. */
  verifyData (data: m.DataMessage): Promise<VerifiedData> {
    return verifyData(this.#host, data)
  }

  /** See `peer-data`: `verifyData` for a plain block proof, without waiting. */
  verifyBlockNow (data: m.DataMessage): VerifiedData | 'unanchored' | null {
    return verifyBlockNow(this, data)
  }

  /** See `peer-data`: stores what `verifyData` checked; false when it went stale. */
  applyData (v: VerifiedData): Promise<boolean> {
    return applyData(this.#host, v)
  }

  /**
   * Queues a verified block for disk. Writes are batched: blocks and nodes of
   * many messages go out together, and the bitfield only after the data.
   * `done` is told `stored` false when the block was verified against a tree
   * we have left since (`epoch`): then nothing of it is written. `hold` keeps
   * the block in memory once stored, for a read about to come.
   */
  queueBlock (index: number, value: Uint8Array, nodes: TreeNode[], epoch: number, hold: boolean, done: StoredCallback): void {
    this.#writer.queue(index, value, nodes, epoch, hold, done)
  }

  /** Whether a block is queued for disk (so there is no point fetching it again). */
  isStoring (index: number): boolean {
    return this.#writer.has(index)
  }

  /**
   * Called under the mutex before the tree changes shape: every queued block
   * and staged node was checked against the tree we are leaving.
   */
  private leaveTree (): void {
    this.#epoch++
    this.#writer.drop()
    this.tree.clearStaged()
  }

  // -------------------------------------------------------------------------
  // Following a peer to a higher fork

  /** See `reorg`: checks a peer's proof of a higher fork and starts the search for where it leaves ours. */
  verifyFork (data: m.DataMessage): Promise<VerifiedFork> {
    return verifyFork(this.#host, data)
  }

  /** Takes a hash proof that carries a fork search further (see `ForkPoint.update`). */
  continueFork (fork: VerifiedFork, data: m.DataMessage): Promise<void> {
    return continueFork(this, fork, data)
  }

  /** See `reorg`: moves to a verified higher fork in one step; false, changing nothing, when stale. */
  reorg (fork: VerifiedFork): Promise<boolean> {
    return reorg(this.#host, fork)
  }

  // -------------------------------------------------------------------------

  private assertCommitable (): void {
    if (this.repairMode) throw ASSERTION(REPAIR_MODE_MESSAGE)
  }

  /** Whether `keyPair` can sign this core: its secret key is there and it is a declared signer. */
  canSign (keyPair: crypto.KeyPair | null | undefined): boolean {
    return this.#verifier.canSign(keyPair)
  }

  /** Writes the header for `state`; `appendedFrom` < length only from append. */
  private async writeTree (state: TreeState, appendedFrom = state.length): Promise<void> {
    this.header = {
      ...this.header,
      tree: { fork: state.fork, length: state.length, byteLength: state.byteLength, signature: state.signature },
      hints: { contiguousLength: Math.min(this.contiguous, state.length), appendedFrom }
    }
    await this.storage.writeHeader(this.header)
  }

  /** After this, nothing needs checking on the next open. */
  private async settle (): Promise<void> {
    if (hasOpenTail(this.header)) await this.writeTree(this.tree)
  }

  /** Byte sizes of what is on disk, for `info()`. */
  storageInfo (): { treeNodes: number, blocks: number } {
    return { treeNodes: 2 * this.tree.length - 1, blocks: this.bitfield.count(0, this.tree.length) }
  }

  async close (): Promise<void> {
    this.#reader.close()
    await this.#writer.idle()
    await this.mutex.lock()
    try {
      if (this.writable && !this.repairMode) await this.settle().catch(noop)
      await this.storage.close()
    } finally {
      this.mutex.unlock()
    }
  }
}

function noop (): void {}
