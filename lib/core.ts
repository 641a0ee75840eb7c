/**
 * One core on its own: header, tree, blocks and bitfield kept consistent on
 * disk. Every tree mutation (append, truncate, repair) runs under one mutex
 * and follows one write order — blocks, nodes and bits first, the header
 * last — so a process killed at any point reopens to the last header written,
 * and everything that header promises is on disk.
 */
import b4a from 'b4a'
import * as crypto from './crypto'
import { inTree } from './flat-tree'
import type { MerkleTree } from './merkle-tree'
import { TreeBatch, type TreeState } from './tree-batch'
import { Mutex } from './mutex'
import type { Bitfield } from './bitfield'
import type { CoreStorage, Header } from './storage'
import { blockProofNow, generateProof, verifyAgainst, verifyTree, type Proof, type ProofRequest } from './proof'
import { planRepair } from './repair'
import { hasOpenTail } from './crash-recovery'
import { audit as auditTree, type AuditReport } from './audit'
import { ForkPoint } from './fork-point'
import { BlockReader, runs, type ReadOptions } from './block-reader'
import { BlockWriter, wrapWrite, type StoredCallback } from './block-writer'
import { openCore, type CoreOpenOptions, type OpenedCore } from './core-open'
import { Verifier, type CommitOptions } from './verifier'
import { crossingParents, seekBytes, sumSizes, unanchored, verifiedRoots } from './tree-lookups'
import * as m from './messages'
import {
  ASSERTION, BAD_ARGUMENT, INVALID_OPERATION, MISSING_NODE, INVALID_PROOF, INVALID_SIGNATURE, STORAGE_CORRUPT,
  WRITE_FAILED, isCoded, missingNodeOf
} from './errors'
import type { TreeNode } from './tree-node'
import type { Manifest } from './messages'

export interface AppendOptions extends CommitOptions {
  /** Append nothing when the core would grow past this length. */
  maxLength?: number
  /** Runs under the lock with the blocks, the length they start at and the fork: in-place encryption. */
  preappend?: (blocks: Uint8Array[], start: number, fork: number) => void | Promise<void>
}

/** Events a core raises; the public class turns them into emitter events. */
export interface CoreEvents {
  append (): void
  /** The manifest became known (from a peer). */
  manifest (): void
  /** Blocks [start, start + length) became available locally (internal). */
  have (start: number, length: number): void
  truncate (length: number, fork: number): void
  repairing (proof: unknown): void
  repaired (proof: unknown): void
  'repair-failed' (err: Error): void
  /**
   * Blocks [start, start + length) are no longer served from here (cleared,
   * or found rotten); `refetch`: fetch them back from peers (internal).
   */
  drop (start: number, length: number, refetch: boolean): void
}

type Emit = <K extends keyof CoreEvents>(name: K, ...args: Parameters<CoreEvents[K]>) => void

const REPAIR_MODE_MESSAGE = 'Cannot commit while repair mode is on'

/** A peer's data message checked against our tree; nothing stored yet. */
export interface VerifiedData {
  /** Our tree grown by the message's upgrade, or null without one. */
  upgrade: TreeBatch | null
  block: { index: number, value: Uint8Array } | null
  /** Every node the message proved. */
  nodes: TreeNode[]
  /** Our length and fork the check was made against. */
  baseLength: number
  baseFork: number
  /** Our epoch (count of truncations and reorgs) the check was made against. */
  epoch: number
}

/** A peer's fork, verified, and where it leaves our tree (see `verifyFork`). */
export interface VerifiedFork {
  point: ForkPoint
  /** Our epoch when the search began: a truncation since makes it stale. */
  epoch: number
}

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

  private constructor (
    readonly storage: CoreStorage,
    opened: OpenedCore,
    private readonly emit: Emit
  ) {
    const { header, tree, bitfield } = opened
    this.header = header
    this.key = header.key
    this.discoveryKey = crypto.discoveryKey(header.key)
    this.#verifier = new Verifier(header.key, opened.manifest)
    this.keyPair = header.keyPair
    this.tree = tree
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
        if (this.contiguous > start) this.contiguous = start
        this.emit('drop', start, length, refetch)
      },
      restored: (start, length) => this.emit('have', start, length)
    })
    this.#writer = new BlockWriter({
      tree,
      storage,
      bitfield,
      mutex: this.mutex,
      reader: this.#reader,
      epoch: () => this.#epoch,
      has: index => this.has(index),
      stored: (start, length) => this.emit('have', start, length)
    })
  }

  static async open (storage: CoreStorage, opts: CoreOpenOptions, emit: Emit): Promise<Core> {
    return new Core(storage, await openCore(storage, opts), emit)
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
          this.storage.writeData(tree.byteLength, blocks.length === 1 ? blocks[0]! : b4a.concat(blocks)),
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

      for (const node of batch.nodes) tree.trust(node)
      tree.setState(batch)
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
      this.contiguous = Math.min(this.contiguous, newLength)

      this.bitfield.truncate(newLength)
      this.#reader.truncate(newLength)
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

  /** Blocks [start, end) are no longer held: bits first, so no reader trusts the bytes after this. */
  private async unhold (start: number, end: number): Promise<void> {
    this.bitfield.setRange(start, end, false)
    this.#reader.unmark(start, end)
    if (this.contiguous > start) this.contiguous = start
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
    const now = this.proofNow(req)
    if (now !== null) return now
    const epoch = this.#epoch
    const tree = this.tree
    const state = tree.state()
    // Only verified nodes go into a proof (a peer must never get rot from
    // us), and only those of the tree as it was when asked.
    const verified = tree.verified
    const asked = { ...state, getNode: (i: number) => inTree(i, state.length) ? verified.getNode(i) : Promise.resolve(null) }
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
   * `proof` of a plain block request from verified nodes at hand, without
   * waiting; null when it takes more (then `proof`). Throws like `proof`.
   */
  proofNow (req: ProofRequest): Proof | null {
    return blockProofNow(this.tree, req)
  }

  // -------------------------------------------------------------------------
  // Verifying and repairing

  /**
   * Verifies a proof that needs nothing local (upgrade from 0) against this
   * core's key. Returns the tree it proves.
   */
  verifyFullyRemote (proof: Proof): TreeBatch {
    return this.#verifier.verifyFullyRemote(proof)
  }

  /**
   * Looks at a fully remote proof a peer sent unasked, as Hypercore 11 does:
   * 'conflict' when it is signed by our signers for a length we hold on our
   * fork, yet proves another tree than ours (the signer signed two trees);
   * 'invalid' when its signature does not verify; 'none' otherwise.
   */
  async checkConflict (proof: Proof): Promise<'conflict' | 'invalid' | 'none'> {
    const tree = this.tree
    if (proof.upgrade === null || proof.fork !== tree.fork || proof.upgrade.length > tree.length) return 'none'
    if (this.manifest === null || this.repairMode) return 'none'
    let batch: TreeBatch
    try {
      batch = this.verifyFullyRemote(proof)
    } catch (err) {
      if (isCoded(err)) return 'invalid'
      throw err
    }
    let ours: Uint8Array
    try {
      ours = await this.treeHash(batch.length)
    } catch (err) {
      if (isCoded(err)) return 'none' // we cannot tell our own tree at that length: nothing to compare
      throw err
    }
    return b4a.equals(ours, batch.hash()) ? 'none' : 'conflict'
  }

  /**
   * Restores tree nodes from a verified proof. Atomic: on any failure the
   * tree file is left as it was. Leaves repair mode once every root is back.
   * Resolves true when the proof's nodes are now part of our tree.
   */
  async repair (proof: Proof): Promise<boolean> {
    await this.mutex.lock()
    this.emit('repairing', proof)
    try {
      const batch = this.verifyFullyRemote(proof)
      if (this.manifest === null && proof.manifest !== null) await this.adoptManifest(proof.manifest)

      const plan = await planRepair({
        length: this.tree.length,
        stored: i => this.storage.getNode(i),
        signs: roots => this.signs(roots)
      }, batch.nodes)
      if (plan.accepted === 0) throw INVALID_PROOF('No node of the proof can be tied to the signed tree')

      if (plan.write.length > 0) await this.writeRepair(plan.write, plan.roots)

      if (this.repairMode) {
        const tree = this.tree
        tree.setState({ roots: plan.roots, length: tree.length, byteLength: sumSizes(plan.roots), fork: tree.fork, signature: tree.signature })
        // Nodes verified against the roots we had in repair mode are checked again against the signed ones.
        tree.forget()
        this.repairMode = false
        if (tree.byteLength !== this.header.tree.byteLength) await this.writeTree(tree)
      }
      this.#reader.unmarkAll(this.tree.length)
      this.emit('repaired', proof)
      return true
    } catch (err) {
      this.emit('repair-failed', err as Error)
      if (!isCoded(err)) throw err
      return false
    } finally {
      this.mutex.unlock()
    }
  }

  private async writeRepair (nodes: TreeNode[], roots: TreeNode[]): Promise<void> {
    const indices = nodes.map(n => n.index)
    const before = await this.storage.getNodes(indices)
    await this.storage.putNodes(nodes)
    this.tree.forget(indices)

    // Read back what the disk now holds and check it against the signature.
    const [after, rootsOnDisk] = await Promise.all([
      this.storage.getNodes(indices),
      this.storage.getNodes(roots.map(r => r.index))
    ])
    const landed = after.every((n, k) => n !== null && b4a.equals(n.hash, nodes[k]!.hash))
    const complete = rootsOnDisk.every(n => n !== null)
    if (landed && (!complete || this.signs(rootsOnDisk as TreeNode[]))) return

    const restore = before.filter((n): n is TreeNode => n !== null)
    const gone = indices.filter((_, k) => before[k] === null)
    await Promise.all([this.storage.putNodes(restore), this.storage.deleteNodes(gone)])
    this.tree.forget(indices)
    throw WRITE_FAILED('Repaired nodes did not read back as written')
  }

  private signs (roots: TreeNode[]): boolean {
    return this.#verifier.signs(roots, this.tree)
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
  // Audit

  /**
   * Checks every held block against its leaf and every stored node against
   * its parent, up to the signed roots. A rotten or lost node whose true value
   * can be recomputed from below it is rewritten; one that cannot is dropped
   * (a dropped root puts the core in repair mode). Corrupt blocks are cleared;
   * blocks that cannot be tied to the roots are marked unverified (not served,
   * fetched again on read). Garbage on disk only ever yields coded errors.
   */
  async audit (): Promise<AuditReport> {
    await this.mutex.lock()
    try {
      const tree = this.tree
      const storage = this.storage
      const report = await auditTree({
        length: tree.length,
        byteLength: tree.byteLength,
        // Out of repair mode the roots in memory are the signed ones, whatever the disk says now.
        roots: this.repairMode ? null : tree.roots,
        readTree: (start, end) => storage.readTreeBytes(start, end),
        readData: (offset, size) => storage.readDataUpTo(offset, size),
        has: i => this.bitfield.get(i),
        firstHeld: i => this.bitfield.firstSet(i),
        signs: roots => this.signs(roots)
      })
      const restored = report.restoredNodes.map(n => ({ index: n.index, size: n.size, hash: b4a.from(n.hash) }))
      if (restored.length > 0) {
        await storage.putNodes(restored)
        tree.forget(restored.map(n => n.index))
        for (const n of restored) tree.trust(n)
      }
      if (report.droppedNodes.length > 0) {
        await storage.deleteNodes(report.droppedNodes)
        tree.forget(report.droppedNodes)
      }
      if (report.corruptBlocks.length > 0) {
        await this.settle()
        for (const i of report.corruptBlocks) this.bitfield.set(i, false)
        this.contiguous = Math.min(this.contiguous, ...report.corruptBlocks)
        await storage.writeBitfield(this.bitfield.takeDirty())
      }
      // The marks are now exactly what this audit could not verify.
      this.#reader.setMarks(report.unverifiedBlocks, tree.length)
      if (report.unverifiedBlocks.length > 0) this.contiguous = Math.min(this.contiguous, report.unverifiedBlocks[0]!)

      if (report.droppedRoots.length > 0) {
        this.repairMode = true
        tree.setState({ ...tree.state(), roots: tree.roots.filter(r => !report.droppedRoots.includes(r.index)) })
        tree.forget()
      } else if (this.repairMode && report.roots !== null) {
        // Every root is back, recomputed from below and checked against the signature.
        const roots = report.roots.map(r => ({ index: r.index, size: r.size, hash: b4a.from(r.hash) }))
        tree.setState({ ...tree.state(), roots, byteLength: sumSizes(roots) })
        tree.forget()
        this.repairMode = false
        if (tree.byteLength !== this.header.tree.byteLength) await this.writeTree(tree)
      }
      for (const [start, length] of runs([...report.corruptBlocks, ...report.unverifiedBlocks])) this.emit('drop', start, length, false)
      return report
    } catch (err) {
      if (isCoded(err)) throw err
      throw STORAGE_CORRUPT('Audit could not read the core: ' + (err instanceof Error ? err.message : String(err)))
    } finally {
      this.mutex.unlock()
    }
  }

  // -------------------------------------------------------------------------
  // Data from peers: verified first, stored after, never the other way round

  /**
   * Checks a peer's data message against our tree and key. Throws a coded
   * error (INVALID_PROOF, INVALID_SIGNATURE, INVALID_OPERATION when it needs
   * a node we lack) and stores nothing.
   */
  async verifyData (data: m.DataMessage): Promise<VerifiedData> {
    const tree = this.tree
    const baseLength = tree.length
    const baseFork = tree.fork
    const epoch = this.#epoch
    if (data.fork !== baseFork) throw INVALID_OPERATION('Data is for fork ' + data.fork + ', we are on ' + baseFork)
    const manifest = this.#verifier.manifestFor(data.manifest)
    if (manifest === null) throw INVALID_PROOF('The manifest of this core is not known yet')

    // Anchored in verified nodes only: a rotten node of ours must not make an
    // honest peer look hostile. In repair mode nothing is checked against the
    // signature yet, so nothing anchors: MISSING_NODE asks for the tree first.
    const batch = await verifyAgainst(this.repairMode ? unanchored(tree) : tree.verified, data as Proof)
    if (data.upgrade !== null) {
      if (!this.#verifier.verify(manifest, batch.hash(), batch.length, batch.fork, batch.signature)) {
        throw INVALID_SIGNATURE('Upgrade signature does not verify')
      }
    }
    if (this.manifest === null) await this.adoptManifest(manifest)
    const block = data.block === null ? null : { index: data.block.index, value: data.block.value }
    return { upgrade: data.upgrade === null ? null : batch, block, nodes: batch.nodes, baseLength, baseFork, epoch }
  }

  /**
   * `verifyData` for the common case, without waiting: a block proof (no
   * upgrade, hash or seek) on our fork whose path ends in a verified node at
   * hand. Null when the proof takes more than that (then `verifyData`);
   * 'unanchored' when its path ends in a node we do not hold (verifyData
   * would throw MISSING_NODE: asked with too few nodes); throws
   * INVALID_PROOF like `verifyData`. Stores nothing.
   */
  verifyBlockNow (data: m.DataMessage): VerifiedData | 'unanchored' | null {
    const tree = this.tree
    if (data.block === null || data.upgrade !== null || data.hash !== null || data.seek !== null) return null
    if (this.repairMode || this.manifest === null || data.fork !== tree.fork) return null
    const nodes: TreeNode[] = []
    const result = { anchored: false }
    // The path must end in a node we trust: one verifyTree compared (it throws on a mismatch).
    verifyTree(data as Proof, nodes, tree.matcher, result)
    if (!result.anchored) return 'unanchored'
    return { upgrade: null, block: data.block, nodes, baseLength: tree.length, baseFork: tree.fork, epoch: this.#epoch }
  }

  /**
   * Stores what `verifyData` checked. Returns false when our tree moved on in
   * between in a way that makes the check stale (then nothing is stored).
   */
  async applyData (v: VerifiedData): Promise<boolean> {
    if (v.epoch !== this.#epoch) return false
    if (v.upgrade !== null) {
      const applied = await this.applyUpgrade(v)
      if (!applied) return false
    } else if (this.tree.fork !== v.baseFork) {
      return false
    }
    if (v.block !== null) return this.storeBlock(v.block.index, v.block.value, v.nodes, v.epoch)
    if (v.upgrade === null && v.nodes.length > 0) return this.storeNodes(v.nodes, v.epoch)
    return true
  }

  /** Keeps the nodes of a hash or seek proof (checked against our tree), so reads and seeks can use them. */
  private async storeNodes (nodes: TreeNode[], epoch: number): Promise<boolean> {
    await this.mutex.lock()
    try {
      if (epoch !== this.#epoch) return false
      const fresh = nodes.filter(n => inTree(n.index, this.tree.length))
      try {
        await this.storage.putNodes(fresh)
      } catch (err) {
        throw wrapWrite(err)
      }
      // Checked against our verified tree before they got here: trusted as such.
      for (const n of fresh) this.tree.trust(n)
      return true
    } finally {
      this.mutex.unlock()
    }
  }

  private async applyUpgrade (v: VerifiedData): Promise<boolean> {
    const batch = v.upgrade!
    await this.mutex.lock()
    try {
      const tree = this.tree
      if (v.epoch !== this.#epoch) return false
      if (tree.fork !== v.baseFork || tree.length !== v.baseLength) {
        // Someone else upgraded us meanwhile: fine if it got us at least as far.
        return tree.fork === batch.fork && tree.length >= batch.length
      }
      if (this.repairMode) return false
      if (batch.length <= tree.length) return true // nothing new
      tree.stage(v.nodes)
      try {
        await this.storage.putNodes(v.nodes)
        await this.writeTree(batch)
      } catch (err) {
        tree.unstage(v.nodes)
        tree.forget(v.nodes.map(n => n.index))
        throw wrapWrite(err)
      }
      tree.setState({ roots: batch.roots, length: batch.length, byteLength: batch.byteLength, fork: batch.fork, signature: batch.signature })
      tree.unstage(v.nodes)
      this.emit('append')
      return true
    } finally {
      this.mutex.unlock()
    }
  }

  /**
   * Queues a verified block for disk. Writes are batched: blocks and nodes of
   * many messages go out together, and the bitfield only after the data.
   * Resolves false when the block was verified against a tree we have left
   * since (`epoch`): then nothing of it is written.
   */
  storeBlock (index: number, value: Uint8Array, nodes: TreeNode[], epoch = this.#epoch): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queueBlock(index, value, nodes, epoch, (err, stored) => err !== null ? reject(err) : resolve(stored))
    })
  }

  /** `storeBlock` with a callback instead of a promise (the download path: one less promise a block). */
  queueBlock (index: number, value: Uint8Array, nodes: TreeNode[], epoch: number, done: StoredCallback): void {
    this.#writer.queue(index, value, nodes, epoch, done)
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

  /**
   * Checks a peer's proof of a higher fork (a signed tree from length 0, as
   * Hypercore 11 asks for it) and starts the search for where it leaves our
   * tree. Throws INVALID_PROOF / INVALID_SIGNATURE for a bad proof; stores
   * nothing but a manifest we lacked (it hashes to our key).
   */
  async verifyFork (data: m.DataMessage): Promise<VerifiedFork> {
    const epoch = this.#epoch
    if (data.fork <= this.tree.fork) throw INVALID_OPERATION('Fork ' + data.fork + ' is not above ours (' + this.tree.fork + ')')
    if (data.upgrade === null || data.upgrade.start !== 0 || data.upgrade.length === 0) {
      throw INVALID_PROOF('A fork proof upgrades from length 0')
    }
    const batch = this.verifyFullyRemote(data as Proof)
    if (this.manifest === null && data.manifest !== null) {
      await this.mutex.run(async () => {
        if (this.manifest === null) await this.adoptManifest(data.manifest!)
      })
    }
    const point = await ForkPoint.start(batch, this.tree.length, i => this.tree.getNode(i))
    return { point, epoch }
  }

  /** Takes a hash proof that carries a fork search further (see `ForkPoint.update`). */
  async continueFork (fork: VerifiedFork, data: m.DataMessage): Promise<void> {
    if (fork.epoch !== this.#epoch) return
    await fork.point.update(data, i => this.tree.getNode(i))
  }

  /**
   * Moves to a verified higher fork: truncates to the common ancestor length
   * and adopts the fork's signed tree, atomically under the mutex. Resolves
   * false, changing nothing, when the search went stale (we truncated or
   * moved meanwhile) or is not finished.
   *
   * Crash order: the bits and nodes past the ancestors go first (under the
   * old header that reads as blocks and nodes gone missing: at worst a
   * reopen in repair mode, never a block of the other fork), then the header
   * of the new fork, then its nodes (a reopen before they land is in repair
   * mode on the new fork, healed from the peers that have it).
   */
  async reorg (fork: VerifiedFork): Promise<boolean> {
    await this.mutex.lock()
    try {
      const { point } = fork
      const batch = point.batch
      const tree = this.tree
      if (fork.epoch !== this.#epoch || !point.finished || batch.fork <= tree.fork) return false

      const oldLength = tree.length
      const ancestors = Math.min(point.ancestors, oldLength, batch.length)
      let dataEnd: number | null = null
      try {
        dataEnd = await tree.verifiedOffset(2 * ancestors)
      } catch {
        // A sparse tree may not know where the block lies: the bytes past it stay, unreferenced.
      }
      if (this.onbeforetruncate !== null) await this.onbeforetruncate(ancestors, oldLength)
      this.leaveTree()
      this.bitfield.truncate(ancestors)
      this.contiguous = Math.min(this.contiguous, ancestors)
      try {
        await Promise.all([
          this.storage.writeBitfield(this.bitfield.takeDirty()),
          this.storage.deleteNodeRange(2 * ancestors, Infinity),
          this.storage.deleteNodes(crossingParents(ancestors, Math.max(oldLength, batch.length)))
        ])
        await this.writeTree(batch)
      } catch (err) {
        tree.forget()
        throw wrapWrite(err)
      }

      tree.stage(batch.nodes)
      tree.setState({ roots: batch.roots, length: batch.length, byteLength: batch.byteLength, fork: batch.fork, signature: batch.signature })
      this.repairMode = false
      try {
        await Promise.all([
          this.storage.putNodes(batch.nodes),
          dataEnd === null ? null : this.storage.truncateData(dataEnd)
        ])
      } catch (err) {
        // The header is on the new fork; without its nodes on disk a reopen repairs them from peers.
        throw wrapWrite(err)
      } finally {
        tree.unstage(batch.nodes)
      }
      this.emit('truncate', ancestors, batch.fork)
      return true
    } finally {
      this.mutex.unlock()
    }
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
