import { Iterator } from './flat-tree'
import { leafNode, parentNode, treeHash } from './crypto'
import type { TreeNode } from './tree-node'

/** The signed shape of a tree: its roots, and what they add up to. */
export interface TreeState {
  roots: TreeNode[]
  length: number
  byteLength: number
  fork: number
  signature: Uint8Array | null
}

/**
 * A tree being grown, from local appends or from a peer's upgrade proof.
 * It never touches storage: `nodes` collects every node it creates so the
 * caller can write them in one go once the batch is known to be good.
 */
export class TreeBatch implements TreeState {
  roots: TreeNode[]
  length: number
  byteLength: number
  fork: number
  signature: Uint8Array | null
  /** Nodes added by this batch, in creation order. */
  readonly nodes: TreeNode[] = []
  private cachedHash: Uint8Array | null = null

  constructor (from: TreeState) {
    this.roots = from.roots.slice()
    this.length = from.length
    this.byteLength = from.byteLength
    this.fork = from.fork
    this.signature = from.signature
  }

  static empty (fork = 0): TreeBatch {
    return new TreeBatch({ roots: [], length: 0, byteLength: 0, fork, signature: null })
  }

  hash (): Uint8Array {
    if (this.cachedHash === null) this.cachedHash = treeHash(this.roots)
    return this.cachedHash
  }

  append (data: Uint8Array): void {
    const head = 2 * this.length
    this.appendRoot(leafNode(head, data), new Iterator(head))
  }

  /**
   * Adds a complete subtree right after the current roots and merges equal
   * sized neighbours into parents. `ite` must point at `node` and is left
   * pointing at the last root.
   */
  appendRoot (node: TreeNode, ite: Iterator): void {
    this.cachedHash = null
    this.length += ite.factor / 2
    this.byteLength += node.size
    this.roots.push(node)
    this.nodes.push(node)

    while (this.roots.length > 1) {
      const a = this.roots[this.roots.length - 1]!
      const b = this.roots[this.roots.length - 2]!
      if (ite.sibling() !== b.index) {
        ite.sibling()
        break
      }
      const merged = parentNode(ite.parent(), a, b)
      this.nodes.push(merged)
      this.roots.pop()
      this.roots.pop()
      this.roots.push(merged)
    }
  }
}
