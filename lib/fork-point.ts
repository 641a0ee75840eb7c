/**
 * Where a peer's fork leaves our tree: the common ancestor length, the
 * longest prefix of blocks both trees share. The new tree's roots come from a
 * signed, fully remote proof; each root is compared with our node at the same
 * index, and inside the first root that differs the search walks down one
 * path: a left child that matches ours sends it right, one that does not (or
 * that we lack) sends it left. When the proof in hand does not reach deep
 * enough, `want` names a leaf range to ask a hash proof for, and `update`
 * takes the answer. Nothing here touches storage or peers.
 */
import b4a from 'b4a'
import { Iterator, depth, leftSpan, rightSpan } from './flat-tree'
import { verifyTree, type Proof } from './proof'
import { INVALID_PROOF } from './errors'
import type { TreeBatch } from './tree-batch'
import type { TreeNode } from './tree-node'

/** Our side of the comparison: a node of our current tree, or null. */
export type LocalNode = (index: number) => Promise<TreeNode | null>

/** A hash proof that would take the search further: any leaf in [start, end), `nodes` levels up. */
export interface ForkProbe {
  start: number
  end: number
  nodes: number
  /** The node the answer must hash up to. */
  top: number
}

export class ForkPoint {
  /** The verified tree of the fork we move to (its `nodes` grow with each probe). */
  readonly batch: TreeBatch
  /** Our length when the search began. */
  readonly localLength: number
  #ancestors = 0
  /** The highest node of the new tree known to differ from ours. */
  #diff: TreeNode | null = null
  #probe: ForkProbe | null = null
  /** Every node of the new tree we hold, by index: roots, proof nodes, probe answers. */
  readonly #known = new Map<number, TreeNode>()

  private constructor (batch: TreeBatch, localLength: number) {
    this.batch = batch
    this.localLength = localLength
    for (const n of batch.roots) this.#known.set(n.index, n)
    for (const n of batch.nodes) this.#known.set(n.index, n)
  }

  /** Starts the search for `batch` (a verified tree) against our tree of `localLength` blocks. */
  static async start (batch: TreeBatch, localLength: number, local: LocalNode): Promise<ForkPoint> {
    const fp = new ForkPoint(batch, localLength)
    for (const root of batch.roots) {
      if (same(root, await local(root.index))) continue
      fp.#narrow(root)
      await fp.#descend(local)
      return fp
    }
    // Every root is one of ours: the new tree is a prefix of our tree.
    fp.#ancestors = batch.length
    return fp
  }

  /** Blocks below this are the same in both trees. Final once `finished`. */
  get ancestors (): number {
    return this.#ancestors
  }

  get finished (): boolean {
    return this.#probe === null
  }

  /** What to ask for next, or null when the search is over. */
  get probe (): ForkProbe | null {
    return this.#probe
  }

  /**
   * Takes a hash proof answering `probe`. Throws INVALID_PROOF when it does
   * not hash up to the node it must (the peer proved something else).
   */
  async update (proof: Pick<Proof, 'block' | 'hash' | 'seek'>, local: LocalNode): Promise<void> {
    const probe = this.#probe
    if (probe === null) return
    const nodes: TreeNode[] = []
    const top = verifyTree(proof, nodes)
    const expected = this.#known.get(probe.top)!
    if (top === null || top.index !== expected.index || !same(top, expected)) {
      throw INVALID_PROOF('Fork proof does not hash up to node ' + probe.top)
    }
    for (const n of nodes) {
      if (this.#known.has(n.index)) continue
      this.#known.set(n.index, n)
      this.batch.nodes.push(n)
    }
    await this.#descend(local)
  }

  /** Walks down from the current difference as far as known nodes allow. */
  async #descend (local: LocalNode): Promise<void> {
    let diff = this.#diff!
    const ite = new Iterator(diff.index)
    while ((ite.index & 1) === 1) {
      const left = this.#known.get(ite.leftChild())
      if (left === undefined) break
      if (!same(left, await local(left.index))) {
        diff = left
        continue
      }
      const right = this.#known.get(ite.sibling())
      if (right === undefined) break
      diff = right
    }
    this.#narrow(diff)
  }

  #narrow (diff: TreeNode): void {
    this.#diff = diff
    const start = leftSpan(diff.index) / 2
    const end = Math.min(this.localLength, rightSpan(diff.index) / 2 + 1)
    this.#ancestors = Math.min(start, this.localLength)
    // A leaf, or a subtree wholly past what we hold: nothing below it to keep.
    if ((diff.index & 1) === 0 || start >= end) {
      this.#probe = null
      return
    }
    this.#probe = { start, end, nodes: depth(diff.index), top: diff.index }
  }
}

function same (a: TreeNode, b: TreeNode | null): boolean {
  return b !== null && a.index === b.index && a.size === b.size && b4a.equals(a.hash, b.hash)
}
