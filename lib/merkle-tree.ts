/**
 * The local tree: the signed roots in memory, every other node on disk with a
 * bounded cache in front. It answers "what is node i" for the tree as signed
 * now; nodes left on disk by a crash or a truncation are never returned.
 */
import { fullRoots, inTree } from './flat-tree'
import { treeHash } from './crypto'
import type { NodeSource } from './proof'
import type { TreeState } from './tree-batch'
import type { TreeNode } from './tree-node'

export interface NodeStorage {
  getNode (index: number): Promise<TreeNode | null>
  getNodes (indices: number[]): Promise<Array<TreeNode | null>>
}

/** Per generation: the two together hold the whole tree of a ~100k block core. */
const CACHE_SIZE = 1 << 17

export class MerkleTree implements NodeSource, TreeState {
  roots: TreeNode[]
  length: number
  byteLength: number
  fork: number
  signature: Uint8Array | null
  /** Two generations: a full young one becomes the old one and the old one is dropped (O(1), unlike evicting from a Map one by one). */
  private cache = new Map<number, TreeNode>()
  private oldCache = new Map<number, TreeNode>()
  /** Verified nodes on their way to disk: never evicted until written. */
  private readonly staged = new Map<number, TreeNode>()

  constructor (private readonly storage: NodeStorage, state: TreeState) {
    this.roots = state.roots
    this.length = state.length
    this.byteLength = state.byteLength
    this.fork = state.fork
    this.signature = state.signature
  }

  /** Loads the roots for `length`; `missing` lists roots the disk lacks. */
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

  /** Node `index` of the current tree, or null when it is missing or outside it. */
  async getNode (index: number): Promise<TreeNode | null> {
    if (!inTree(index, this.length)) return null
    const hit = this.peekCached(index)
    if (hit !== undefined) return hit
    const node = await this.storage.getNode(index)
    if (node !== null) this.remember(node)
    return node
  }

  /**
   * Node `index` if it is at hand without reading the disk (staged, cached
   * or a root); undefined when it would take a read to know.
   */
  peekNode (index: number): TreeNode | undefined {
    const hit = this.peekCached(index)
    if (hit !== undefined) return hit
    for (const r of this.roots) if (r.index === index) return r
    return undefined
  }

  private peekCached (index: number): TreeNode | undefined {
    const hit = this.staged.get(index) ?? this.cache.get(index)
    if (hit !== undefined) return hit
    const old = this.oldCache.get(index)
    if (old !== undefined) this.remember(old) // still in use: keep it young
    return old
  }

  remember (node: TreeNode): void {
    if (this.cache.size >= CACHE_SIZE) {
      this.oldCache = this.cache
      this.cache = new Map()
    }
    this.cache.set(node.index, node)
  }

  /** Holds verified nodes in memory until `unstage`, so proofs can build on them. */
  stage (nodes: readonly TreeNode[]): void {
    for (const n of nodes) this.staged.set(n.index, n)
  }

  /** The nodes are on disk now: they become ordinary cache entries. */
  unstage (nodes: readonly TreeNode[]): void {
    for (const n of nodes) {
      this.staged.delete(n.index)
      this.remember(n)
    }
  }

  /** Drops every staged node unwritten: they belong to a tree we just left (a truncation or a reorg). */
  clearStaged (): void {
    this.staged.clear()
  }

  /** Forget cached nodes, all or those at the given indices. */
  forget (indices?: Iterable<number>): void {
    if (indices === undefined) {
      this.cache.clear()
      this.oldCache.clear()
    } else {
      for (const i of indices) {
        this.cache.delete(i)
        this.oldCache.delete(i)
      }
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
  }

  state (): TreeState {
    return { roots: this.roots, length: this.length, byteLength: this.byteLength, fork: this.fork, signature: this.signature }
  }
}
