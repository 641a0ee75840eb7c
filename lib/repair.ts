/**
 * Deciding which tree nodes a peer's proof may put back into our tree.
 *
 * A proof is verified against the *sender's* signature, which may be for
 * another length or another fork than ours. So a node from it is only taken
 * when it hashes up, through nodes we hold or the proof holds, to a root set
 * that our own signature signs. That makes a repair safe from any peer and
 * able to restore any node: roots, subtree roots and inner nodes alike.
 */
import b4a from 'b4a'
import { fullRoots, inTree, sibling, parent } from './flat-tree'
import { parentNode } from './crypto'
import { INVALID_PROOF } from './errors'
import type { TreeNode } from './tree-node'

export interface RepairTarget {
  length: number
  /** Reads a node from disk, ignoring any cache: the disk is what we fix. */
  stored (index: number): Promise<TreeNode | null>
  /** Whether these roots are the ones our signature signs. */
  signs (roots: TreeNode[]): boolean
}

export interface RepairPlan {
  /** Verified nodes the disk lacks or holds wrongly. */
  write: TreeNode[]
  /** Verified nodes from the proof that belong to our tree (written or not). */
  accepted: number
  /** Our complete, signature-checked roots. */
  roots: TreeNode[]
}

/**
 * Plans a repair from `candidates` (every node a verified proof vouches for).
 * Throws INVALID_PROOF when the proof contradicts our signed tree; returns a
 * plan with nothing accepted when none of it can be tied to our roots.
 */
export async function planRepair (target: RepairTarget, candidates: readonly TreeNode[]): Promise<RepairPlan> {
  const cand = new Map<number, TreeNode>()
  for (const n of candidates) if (inTree(n.index, target.length)) cand.set(n.index, n)

  const rootIndices = fullRoots(2 * target.length)
  const storedRoots = await Promise.all(rootIndices.map(i => target.stored(i)))
  const roots = trustedRoots(rootIndices, storedRoots, cand, target)
  if (roots === null) throw INVALID_PROOF('Proof does not match the signed roots of this core')

  const byRoot = new Map(roots.map(r => [r.index, r]))
  const accepted = new Map<number, TreeNode>()
  for (const r of roots) if (cand.has(r.index)) accepted.set(r.index, r)

  for (const node of cand.values()) {
    if (accepted.has(node.index)) continue
    const chain = await chainToRoot(node, cand, byRoot, target)
    if (chain === null) continue
    for (const n of chain) accepted.set(n.index, n)
  }

  const write: TreeNode[] = []
  const indices = [...accepted.keys()]
  const onDisk = await Promise.all(indices.map(i => target.stored(i)))
  indices.forEach((index, k) => {
    const disk = onDisk[k]
    const good = accepted.get(index)!
    if (disk === null || disk === undefined || disk.size !== good.size || !b4a.equals(disk.hash, good.hash)) write.push(good)
  })
  for (let k = 0; k < rootIndices.length; k++) {
    const disk = storedRoots[k]
    const good = roots[k]!
    if (!accepted.has(good.index) && (disk === null || disk === undefined || !b4a.equals(disk.hash, good.hash))) write.push(good)
  }

  return { write, accepted: accepted.size, roots }
}

function trustedRoots (indices: number[], stored: Array<TreeNode | null>, cand: Map<number, TreeNode>, target: RepairTarget): TreeNode[] | null {
  const tries = [
    indices.map((i, k) => stored[k] ?? null),
    indices.map((i, k) => cand.get(i) ?? stored[k] ?? null),
    indices.map((i, k) => stored[k] ?? cand.get(i) ?? null)
  ]
  for (const roots of tries) {
    if (roots.every(r => r !== null) && target.signs(roots as TreeNode[])) return roots as TreeNode[]
  }
  return null
}

/**
 * Hashes `node` up to its root with siblings from the proof or the disk.
 * Returns the node and every parent on the way when that lands on our root;
 * null when a sibling is nowhere to be had. Landing on a different root hash
 * means the proof is for another tree: that throws, unless a sibling came
 * from our disk, which may be the rotten part.
 */
async function chainToRoot (node: TreeNode, cand: Map<number, TreeNode>, roots: Map<number, TreeNode>, target: RepairTarget): Promise<TreeNode[] | null> {
  const chain: TreeNode[] = [node]
  let cur = node
  let fromDisk = false
  // A tree of 2^53 leaves is 54 levels deep; a longer walk is a bug.
  for (let level = 0; level < 64; level++) {
    const root = roots.get(cur.index)
    if (root !== undefined) {
      if (cur.size === root.size && b4a.equals(cur.hash, root.hash)) return chain
      // A rotten sibling on our disk can cause this as well as a bad proof.
      if (fromDisk) return null
      throw INVALID_PROOF('Node ' + node.index + ' does not hash to the signed root ' + root.index)
    }
    const sibIndex = sibling(cur.index)
    let sib = cand.get(sibIndex) ?? null
    if (sib === null) {
      sib = await target.stored(sibIndex)
      if (sib === null) return null
      fromDisk = true
    }
    cur = parentNode(parent(cur.index), cur, sib)
    chain.push(cur)
  }
  return null
}
