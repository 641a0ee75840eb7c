/**
 * Questions the core asks of its local tree that change nothing: where a
 * byte lies, which verified roots a shorter tree has, which parents a
 * truncation cuts off. Pure functions over a `MerkleTree` (or over indices
 * alone), and the read-only views of it that proofs are made from and
 * checked against, apart from the core because they need none of its state.
 */
import { Iterator, countLeaves, fullRoots, inTree } from './flat-tree'
import { ASSERTION, BAD_ARGUMENT, MISSING_NODE } from './errors'
import type { MerkleTree, VerifiedSource } from './merkle-tree'
import type { NodeSource } from './proof'
import type { TreeNode } from './tree-node'
import type { TreeState } from './tree-batch'

/**
 * [block index, offset inside it] of byte `bytes`, counting `padding` bytes
 * of every block as not there (encryption padding, as Hypercore 11 does).
 */
export async function seekBytes (tree: MerkleTree, bytes: number, padding: number): Promise<[number, number]> {
  const total = tree.byteLength - tree.length * padding
  if (bytes === total) return [tree.length, 0]
  if (bytes > total) throw BAD_ARGUMENT('Seek is out of bounds')
  const sizeOf = (n: TreeNode): number => n.size - padding * countLeaves(n.index)
  for (const root of fullRoots(2 * tree.length)) {
    const node = await tree.getNode(root)
    if (node === null) throw MISSING_NODE(root)
    if (bytes >= sizeOf(node)) {
      bytes -= sizeOf(node)
      continue
    }
    const ite = new Iterator(root)
    while ((ite.index & 1) === 1) {
      const left = await tree.getNode(ite.leftChild())
      if (left === null) throw MISSING_NODE(ite.index)
      if (bytes >= sizeOf(left)) {
        bytes -= sizeOf(left)
        ite.sibling()
      }
    }
    return [ite.index / 2, bytes]
  }
  throw ASSERTION('Seek fell off the tree')
}

/**
 * The roots of the tree at `length` (not above ours), verified only: a
 * rotten node must never be signed or hashed into a tree we vouch for.
 * `missing` makes the error for a root missing or not verifying.
 */
export function verifiedRoots (tree: MerkleTree, length: number, missing: (index: number) => Error): Promise<TreeNode[]> {
  return Promise.all(fullRoots(2 * length).map(async i => {
    const node = await tree.verifiedNode(i)
    if (node === null) throw missing(i)
    return node
  }))
}

export function sumSizes (nodes: readonly TreeNode[]): number {
  let s = 0
  for (const n of nodes) s += n.size
  return s
}

/** Parents left of the new head whose span crosses it: no longer in the tree. */
export function crossingParents (newLength: number, oldLength: number): number[] {
  const head = 2 * newLength
  const out: number[] = []
  if (newLength === 0) return out
  const ite = new Iterator(head - 2)
  for (let level = 0; level < 64; level++) {
    ite.parent()
    if (ite.rightSpan() >= 2 * oldLength) break
    if (ite.contains(head) && ite.index < head && !inTree(ite.index, newLength)) out.push(ite.index)
  }
  return out
}

/**
 * The tree as it was when a proof was asked for: its state then, and only
 * verified nodes inside it (a peer must never get rot from us). A class
 * rather than a spread of the state plus `getNode`: in optimised code V8 gave
 * every such spread object a hidden class of its own, so each proof made a
 * new one and every property site of the proof code went megamorphic.
 */
export class TreeAsAsked implements NodeSource {
  readonly roots: TreeNode[]
  readonly length: number
  readonly byteLength: number
  readonly fork: number
  readonly signature: Uint8Array | null
  readonly #verified: VerifiedSource

  constructor (state: TreeState, verified: VerifiedSource) {
    this.roots = state.roots
    this.length = state.length
    this.byteLength = state.byteLength
    this.fork = state.fork
    this.signature = state.signature
    this.#verified = verified
  }

  getNode (index: number): Promise<TreeNode | null> {
    return inTree(index, this.length) ? this.#verified.getNode(index) : Promise.resolve(null)
  }
}

/** The tree with no node to anchor a peer's proof in (repair mode). */
export function unanchored (tree: MerkleTree): NodeSource & { peekNode (index: number): TreeNode | undefined } {
  return {
    get roots () { return tree.roots },
    get length () { return tree.length },
    get byteLength () { return tree.byteLength },
    get fork () { return tree.fork },
    get signature () { return tree.signature },
    getNode: async () => null,
    peekNode: () => undefined
  }
}
