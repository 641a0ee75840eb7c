/**
 * The proof of a plain block request (no hash, seek or upgrade) made from
 * the nodes at hand, without waiting: what serving a download answers
 * nearly every request with. The same nodes in the same order as
 * `generateProof` (proof.ts) gives, which the server falls back to when a
 * node is not at hand or the request asks for more.
 */
import { INVALID_OPERATION } from './errors'
import type { Proof, ProofRequest } from './proof'
import type { TreeState } from './tree-batch'
import type { TreeNode } from './tree-node'

/** The proof, or null when a node it takes is not at hand or the request is not that simple. */
export function blockProofNow (src: TreeState & { peekNode (index: number): TreeNode | undefined }, req: ProofRequest): Proof | null {
  const nodes = blockProofNodesNow(src, req)
  if (nodes === null) return null
  return { fork: src.fork, block: { index: req.block!.index, value: null, nodes }, hash: null, seek: null, upgrade: null, manifest: null }
}

/**
 * The nodes of `blockProofNow`: the sibling at each level on the way up.
 * What serving a download does for every block, so the climb is index
 * arithmetic (no iterators), into an array of the exact length. Throws like
 * `generateProof` when the levels reach past our length's roots.
 */
export function blockProofNodesNow (src: { readonly length: number, peekNode (index: number): TreeNode | undefined }, req: ProofRequest): TreeNode[] | null {
  const block = req.block
  if (!block || req.hash || req.seek || req.upgrade) return null
  const { index, nodes: levels } = block
  const head = 2 * src.length
  if (2 * index >= head) return null
  // The ancestor `levels` up spans the nodes [2·first, 2·(first + width) − 2]: reaching the head
  // is climbing past a root (and any ancestor below it that did, it does too).
  if (levels >= 53) throw INVALID_OPERATION('Nodes is out of bounds')
  const width = 2 ** levels
  if (levels > 0 && head <= 2 * (Math.floor(index / width) * width + width) - 2) throw INVALID_OPERATION('Nodes is out of bounds')
  const nodes = new Array<TreeNode>(levels)
  // At depth d: node `i`, `off` its offset among the nodes of its depth, `span` = 2^(d+1) its distance to its sibling.
  let i = 2 * index
  let off = index
  let span = 2
  for (let k = 0; k < levels; k++) {
    const left = (off & 1) === 0
    const node = src.peekNode(left ? i + span : i - span)
    if (node === undefined) return null
    nodes[k] = node
    i = left ? i + span / 2 : i - span / 2
    off = Math.floor(off / 2)
    span *= 2
  }
  return nodes
}

/** A tree that copies its verified nodes at hand into nodes it is given (`MerkleTree.peekNodeInto`). */
export interface NodesInto {
  readonly length: number
  peekNodeInto (index: number, into: TreeNode): boolean
}

/**
 * The proof nodes of the blocks a peer is served, in nodes reused from one
 * answer to the next rather than a fresh copy of each (two or three per
 * block of a download: the largest allocation of serving one). The nodes an
 * answer gets are good until the next answer is made, so it is encoded
 * first.
 */
export class ProofScratch {
  readonly #tree: NodesInto
  readonly #nodes: TreeNode[] = []
  #used = 0

  constructor (tree: NodesInto) {
    this.#tree = tree
  }

  get length (): number {
    return this.#tree.length
  }

  /** The next scratch node, holding node `index`; undefined when that is not at hand. */
  peekNode (index: number): TreeNode | undefined {
    let node = this.#nodes[this.#used]
    if (node === undefined) this.#nodes.push(node = { index: 0, size: 0, hash: new Uint8Array(32) })
    if (!this.#tree.peekNodeInto(index, node)) return undefined
    this.#used++
    return node
  }

  /** `blockProofNodesNow` into the scratch nodes (the last answer's are overwritten). */
  nodesFor (req: ProofRequest): TreeNode[] | null {
    this.#used = 0
    return blockProofNodesNow(this, req)
  }
}
