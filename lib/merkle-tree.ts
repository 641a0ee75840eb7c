/**
 * The local tree: the signed roots in memory, every other node on disk with
 * bounded caches in front. It answers "what is node i" for the tree as signed
 * now; nodes left on disk by a crash or a truncation are never returned.
 *
 * A node comes in two grades. *Stored*: what the tree file says, which rot
 * may have changed. *Verified*: tied by hashes to the signed roots — nodes we
 * made (appends), nodes a peer proved, and stored nodes that hash up, with
 * their siblings, to a verified node. Whatever is handed on as data (block
 * offsets, a leaf a block is checked against, proofs for peers) comes from
 * verified nodes; a stored node that does not hash up is never trusted.
 */
import { Iterator, fullRoots, inTree, leftSpan, parent } from './flat-tree'
import { isParentOf, parentNode, treeHash } from './crypto'
import { byteOffset, type NodeSource } from './proof'
import type { TreeState } from './tree-batch'
import { sameNode, type TreeNode } from './tree-node'
import { NodeCache, STORED, VERIFIED } from './node-cache'
import { KeyRing } from './key-ring'

export interface NodeStorage {
  getNode (index: number): Promise<TreeNode | null>
  getNodes (indices: number[]): Promise<Array<TreeNode | null>>
}

/** Why a node could not be verified: node `missing` (it, or a sibling on its way up) is lost. */
export interface LostNode {
  missing: number
}

/** A view of the tree through verified nodes only. */
export interface VerifiedSource extends NodeSource {
  /** A verified node at hand without reading the disk, or undefined. */
  peekNode (index: number): TreeNode | undefined
}

/**
 * A leaf is read with its neighbours: the aligned subtree of 16 leaves around
 * it, 31 nodes in one read. Its path to the top of that subtree and every
 * sibling on the way are in it, and so are the leaves of the next reads.
 */
const WINDOW_NODES = 31
const WINDOW_DEPTH = 4
/**
 * A read that follows one just made (serving a download, a read stream)
 * takes the rest of the aligned group of four windows it starts: 127 nodes,
 * 5 KiB, in one read instead of four. Measured on 100,000-block downloads,
 * where the writer's tree does not fit its node cache: see the CHANGELOG.
 */
const GROUP_NODES = 4 * (WINDOW_NODES + 1)

export class MerkleTree implements NodeSource, TreeState {
  roots: TreeNode[]
  length: number
  byteLength: number
  fork: number
  signature: Uint8Array | null
  /** The tree through verified nodes only (offsets, proofs, checking peers' proofs). */
  readonly verified: VerifiedSource
  readonly #storage: NodeStorage
  /** Nodes as the disk holds them, and nodes tied to the signed roots (see NodeCache's grades). */
  readonly #cache: NodeCache
  /**
   * Verified nodes on their way to disk: never evicted until written. A key
   * ring, not a Map: a download stages and unstages a few hundred nodes a
   * batch, and with a Map young collections promoted 20–21 MB per 100,000
   * blocks downloaded (most of it the Map's tables as it grew and shrank),
   * with the ring 0.1 MB (see KeyRing).
   */
  readonly #staged = new KeyRing<TreeNode>()
  /** The first nodes of the last windows read (a few streams at once each find their previous one). */
  readonly #recentWindows: number[] = new Array<number>(8).fill(-1)
  #recentAt = 0
  /** Reads for climbs in flight, by the first node they read: concurrent climbs from one window share one. */
  readonly #reading = new KeyRing<Promise<void>>()

  constructor (storage: NodeStorage, state: TreeState) {
    this.#storage = storage
    this.roots = state.roots
    this.length = state.length
    this.byteLength = state.byteLength
    this.fork = state.fork
    this.signature = state.signature
    this.#cache = new NodeCache(state.length)
    const tree = this
    this.verified = {
      get roots () { return tree.roots },
      get length () { return tree.length },
      get byteLength () { return tree.byteLength },
      get fork () { return tree.fork },
      get signature () { return tree.signature },
      getNode: index => tree.verifiedNode(index),
      peekNode: index => tree.peekNode(index)
    }
  }

  /** Loads the roots for `length`; `missing` lists roots the disk lacks (or holds as rot). */
  static async loadRoots (storage: NodeStorage, length: number): Promise<{ roots: TreeNode[], missing: number[] }> {
    const indices = fullRoots(2 * length)
    const nodes = await storage.getNodes(indices)
    const roots: TreeNode[] = []
    const missing: number[] = []
    nodes.forEach((n, i) => n === null ? missing.push(indices[i]!) : roots.push(n))
    return { roots, missing }
  }

  hash (): Uint8Array {
    return treeHash(this.roots)
  }

  /**
   * Node `index` of the current tree, or null when it is missing or outside
   * it: the verified node when there is one, else the stored one.
   */
  async getNode (index: number): Promise<TreeNode | null> {
    if (!inTree(index, this.length)) return null
    return this.peekNode(index) ?? await this.#storedNode(index)
  }

  /**
   * Verified node `index` if it is at hand without reading the disk (staged,
   * cached or a root); undefined when it would take a read to know.
   */
  peekNode (index: number): TreeNode | undefined {
    const hit = this.#staged.get(index) ?? this.#cache.get(index, VERIFIED)
    return hit !== undefined ? hit : this.#rootAt(index)
  }

  /**
   * `peekNode` written into `into` (index, size, and its 32-byte hash
   * overwritten) instead of a fresh copy: false when it is not at hand.
   * For nodes encoded at once and let go, such as the proof of every block
   * a download serves.
   */
  peekNodeInto (index: number, into: TreeNode): boolean {
    const held = this.#staged.get(index)
    if (held === undefined && this.#cache.copyInto(index, VERIFIED, into)) return true
    const node = held ?? this.#rootAt(index)
    if (node === undefined) return false
    into.index = node.index
    into.size = node.size
    into.hash.set(node.hash)
    return true
  }

  /** Whether verified node `index` is at hand (peekNode without making a copy). */
  hasVerified (index: number): boolean {
    return this.#cache.has(index, VERIFIED) || this.#staged.has(index) || this.#rootAt(index) !== undefined
  }

  /**
   * Whether `node` is the verified node at its index, if one is at hand
   * (undefined when none is): how a peer's proof is anchored.
   */
  matchesVerified (node: TreeNode): boolean | undefined {
    const cached = this.#cache.matches(node, VERIFIED)
    if (cached === true) return true
    const held = this.#staged.get(node.index) ?? this.#rootAt(node.index)
    if (held !== undefined) return sameNode(held, node)
    return cached
  }

  /** The root at `index`, if it is one of ours (roots are held apart from the cache: never evicted). */
  #rootAt (index: number): TreeNode | undefined {
    for (const r of this.roots) if (r.index === index) return r
    return undefined
  }

  /** Size of verified node `index` if it is at hand, else -1. */
  verifiedSize (index: number): number {
    const size = this.#cache.size(index, VERIFIED)
    if (size !== -1) return size
    const staged = this.#staged.get(index)
    if (staged !== undefined) return staged.size
    return this.#rootAt(index)?.size ?? -1
  }

  /** Size of node `index` as stored (or verified) if it is at hand, else -1: for `verify: false` reads. */
  storedSize (index: number): number {
    const size = this.verifiedSize(index)
    return size !== -1 ? size : this.#cache.size(index, STORED)
  }

  /** Node `index` tied to the signed roots, or null when that cannot be done. */
  verifiedNode (index: number): Promise<TreeNode | null> {
    // Not async: proofs and offsets ask for many nodes, most of them at hand.
    if (!inTree(index, this.length)) return Promise.resolve(null)
    const known = this.peekNode(index)
    if (known !== undefined) return Promise.resolve(known)
    return this.verifyNode(index).then(v => v === null || 'missing' in v ? null : v)
  }

  /**
   * Node `index` tied to the signed roots; a `LostNode` when a node it takes
   * is lost; null when it is rotten (it does not hash up to what we trust),
   * or outside the tree. A stored node is hashed up with its siblings until a
   * verified node: if they agree, every node on the way is verified (and
   * cached as such) too.
   */
  async verifyNode (index: number): Promise<TreeNode | LostNode | null> {
    const now = this.verifyNodeNow(index)
    if (now !== undefined) return now
    await this.#readAroundOnce(index)
    // Nodes read for this climb are held here as well: the cache may let one
    // go before the climb gets to it. The climb itself never waits, so it
    // checks everything against one state of the tree; each node is read at
    // most once, and a climb that lacks none ends.
    const read = new Map<number, TreeNode>()
    for (;;) {
      const climbed = this.#climb(index, read)
      if (typeof climbed !== 'number') return climbed
      const node = await this.#storedNode(climbed)
      if (node === null) return { missing: climbed }
      read.set(climbed, node)
    }
  }

  /**
   * `verifyNode` from what is in memory, without waiting: undefined when it
   * would take a read (the node or a sibling on the way up is not cached).
   */
  verifyNodeNow (index: number): TreeNode | LostNode | null | undefined {
    const climbed = this.#climb(index)
    return typeof climbed === 'number' ? undefined : climbed
  }

  /**
   * The climb of `verifyNode` through the nodes in memory (and `read`), or
   * the index of the first stored node it lacks.
   */
  #climb (index: number, read?: Map<number, TreeNode>): TreeNode | LostNode | null | number {
    if (!inTree(index, this.length)) return null
    const known = this.peekNode(index)
    if (known !== undefined) return known
    const start = read?.get(index) ?? this.#cache.get(index, STORED)
    if (start === undefined) return index
    const length = this.length
    const climbed: TreeNode[] = [start]
    let node = start
    const ite = new Iterator(index)
    for (;;) {
      const up = parent(ite.index)
      // `node` sits where a root of our length is, and that root we lack.
      if (!inTree(up, length)) return { missing: ite.index }
      const sib = ite.sibling()
      const sibling = this.peekNode(sib) ?? read?.get(sib) ?? this.#cache.get(sib, STORED)
      if (sibling === undefined) return sib
      ite.parent()
      node = sib > node.index ? parentNode(up, node, sibling) : parentNode(up, sibling, node)
      climbed.push(sibling)
      const anchored = this.matchesVerified(node)
      if (anchored !== undefined) {
        if (!anchored) return null
        break
      }
      climbed.push(node)
    }
    for (const n of climbed) this.#cache.set(n, VERIFIED)
    return start
  }

  /**
   * Byte offset of leaf (or subtree) `index`, from verified sizes only: a
   * rotten size never moves a block. Throws MISSING_NODE (INVALID_OPERATION)
   * when a size it needs cannot be verified.
   */
  verifiedOffset (index: number): Promise<number> {
    const quick = this.peekOffset(index)
    return quick !== -1 ? Promise.resolve(quick) : byteOffset(this.verified, index)
  }

  /** The offset from verified nodes at hand (no reads), or -1. */
  peekOffset (index: number): number {
    if (index === 2 * this.length) return this.byteLength
    if ((index & 1) === 1) index = leftSpan(index)
    let sum = 0
    let start = 0
    // The roots by position, not `this.roots`: in repair mode that lacks the lost ones.
    for (const root of fullRoots(2 * this.length)) {
      const end = start + 2 * (root - start + 1)
      if (index >= end) {
        const size = this.verifiedSize(root)
        if (size === -1) return -1
        sum += size
        start = end
        continue
      }
      const ite = new Iterator(root)
      while (ite.index !== index) {
        if (index < ite.index) {
          ite.leftChild()
        } else {
          const left = this.verifiedSize(ite.leftChild())
          if (left === -1) return -1
          sum += left
          ite.sibling()
        }
      }
      return sum
    }
    return -1
  }

  async #storedNode (index: number): Promise<TreeNode | null> {
    const hit = this.#cache.get(index, STORED)
    if (hit !== undefined) return hit
    const node = await this.#storage.getNode(index)
    if (node !== null && inTree(index, this.length)) this.#cache.set(node, STORED)
    return node
  }

  #readAroundOnce (index: number): Promise<void> {
    const ite = new Iterator(index)
    const key = ite.factor <= 2 ** (WINDOW_DEPTH + 1) ? windowOf(ite.leftSpan()) : index
    let reading = this.#reading.get(key)
    if (reading === undefined) {
      reading = this.#readAround(index).finally(() => this.#reading.delete(key))
      this.#reading.set(key, reading)
    }
    return reading
  }

  /**
   * Reads what climbing from `index` takes, at once, into the cache of stored
   * nodes: the 16-leaf subtree around a low node (one read), and the
   * siblings above it up to the first verified ancestor (reads in parallel).
   */
  async #readAround (index: number): Promise<void> {
    const indices: number[] = []
    const ite = new Iterator(index)
    let window = -1
    let span = 0
    let streaming = false
    if (ite.factor <= 2 ** (WINDOW_DEPTH + 1) && !this.#cache.has(index, STORED)) {
      window = windowOf(ite.leftSpan())
      streaming = this.#follows(window)
      // Streaming: on to the end of the group, or of the tree; the nodes between windows come with them.
      const end = streaming ? Math.min(window - (window % GROUP_NODES) + GROUP_NODES - 1, 2 * this.length) : window + WINDOW_NODES
      for (let i = window; i < end; i++) indices.push(i)
      span = end - window
      this.#remember(windowOf(end - 1))
      while (ite.factor < 2 ** (WINDOW_DEPTH + 1)) ite.parent()
    }
    const head = 2 * this.length
    for (;;) {
      const sib = ite.sibling()
      const up = ite.parent()
      if (ite.contains(head)) break // past a root
      if (!this.hasVerified(sib) && !this.#cache.has(sib, STORED)) indices.push(sib)
      if (this.hasVerified(up)) break
    }
    if (indices.length === 0) return
    const nodes = await this.#storage.getNodes(indices)
    for (const n of nodes) if (n !== null && inTree(n.index, this.length)) this.#cache.set(n, STORED)
    if (!streaming) return
    // In order: each window's top is verified by the climb of the one before, or by its own.
    for (let at = 0; at + WINDOW_NODES <= span; at += WINDOW_NODES + 1) this.#trustWindow(window + at, nodes.slice(at, at + WINDOW_NODES))
  }

  /**
   * Whether the window at `first` follows one read lately: reads streaming
   * through the tree (serving a download, a read stream) read ahead and
   * verify each window whole, the one whose leaves they will all want; a
   * random read wants one leaf, and its climb (4 hashes up a window, not
   * 15) costs less.
   */
  #follows (first: number): boolean {
    return this.#recentWindows.includes(first - (WINDOW_NODES + 1))
  }

  /** Notes the last window a read took, for `#follows`. */
  #remember (first: number): void {
    this.#recentWindows[this.#recentAt] = first
    this.#recentAt = (this.#recentAt + 1) % this.#recentWindows.length
  }

  /**
   * Verifies a 16-leaf window just read (`nodes` from its first node on) in
   * one go, when every parent in it is its children's parent and its top is
   * verified (at hand, or climbing from the siblings read with it): every
   * node in it is then tied to the signed roots, as the climbs from its 16
   * leaves would find, one by one, with the same 15 parent hashes and a node
   * object or two for each. A window not whole in the tree, missing a node,
   * or not agreeing with itself is left to those climbs (which find what is
   * lost or rotten).
   */
  #trustWindow (first: number, nodes: ReadonlyArray<TreeNode | null>): void {
    if (first / 2 + (WINDOW_NODES + 1) / 2 > this.length || nodes.length < WINDOW_NODES) return
    for (let k = 0; k < WINDOW_NODES; k++) if (nodes[k] === null || nodes[k]!.index !== first + k) return
    // Offset k in the window (first is a multiple of 32) has depth = its trailing one-bits; its children are k ± 2^(depth-1).
    for (let depth = 1; depth <= WINDOW_DEPTH; depth++) {
      const half = 1 << (depth - 1)
      for (let k = (1 << depth) - 1; k < WINDOW_NODES; k += 1 << (depth + 1)) {
        if (!isParentOf(nodes[k]!, nodes[k - half]!, nodes[k + half]!)) return
      }
    }
    const top = this.verifyNodeNow(first + (WINDOW_NODES >> 1))
    if (top === undefined || top === null || 'missing' in top || !sameNode(top, nodes[WINDOW_NODES >> 1]!)) return
    for (let k = 0; k < WINDOW_NODES; k++) this.#cache.set(nodes[k]!, VERIFIED)
  }

  /** Records nodes as verified (we made them, or a peer proved them). */
  trust (node: TreeNode): void {
    this.#cache.set(node, VERIFIED)
  }

  /** Holds verified nodes in memory until `unstage`, so proofs can build on them. */
  stage (nodes: readonly TreeNode[]): void {
    for (const n of nodes) this.#staged.set(n.index, n)
  }

  /** The nodes are on disk now: they become ordinary verified cache entries. */
  unstage (nodes: readonly TreeNode[]): void {
    for (const n of nodes) {
      this.#staged.delete(n.index)
      this.#cache.set(n, VERIFIED)
    }
  }

  /** Drops every staged node unwritten: they belong to a tree we just left (a truncation or a reorg). */
  clearStaged (): void {
    this.#staged.clear()
  }

  /** Forget cached nodes (stored and verified), all or those at the given indices. */
  forget (indices?: Iterable<number>): void {
    if (indices === undefined) {
      this.#cache.clear()
    } else {
      for (const i of indices) this.#cache.delete(i)
    }
  }

  /** Adopts a new signed state (after append, truncate, upgrade or repair). */
  setState (state: TreeState): void {
    if (state.length < this.length || state.fork !== this.fork) this.forget()
    this.roots = state.roots
    this.length = state.length
    this.byteLength = state.byteLength
    this.fork = state.fork
    this.signature = state.signature
    this.#cache.fit(state.length)
  }

  state (): TreeState {
    return { roots: this.roots, length: this.length, byteLength: this.byteLength, fork: this.fork, signature: this.signature }
  }
}

/** The first node of the window `index` is in (a low node's 16-leaf subtree). */
function windowOf (index: number): number {
  return index - (index % (WINDOW_NODES + 1))
}
