/**
 * Checking an imported tree before anything of it counts. Trust flows down
 * from the signed roots: the roots must hash to what the signature signs, a
 * node is good when it and its sibling hash to a good parent, a block is good
 * when it hashes to a good leaf. Nodes with no such chain to a root (a sibling
 * or parent missing) prove nothing and are left out; a node that contradicts
 * its good parent means the source is damaged.
 *
 * The nodes are read back from the core's own tree file (they were written
 * there first), one subtree of at most CHUNK nodes at a time: the walk is a
 * near-sequential pass over the file with bounded memory, whatever the size
 * of the core. It visits leaves left to right, and their byte offsets follow
 * from the verified sizes on the way down.
 */
import b4a from 'b4a'
import { fullRoots, leftChild, rightChild, leftSpan, rightSpan } from '../flat-tree'
import { parentHash, treeHash } from '../crypto'
import * as manifests from '../manifest'
import { INVALID_SIGNATURE, STORAGE_CORRUPT } from '../errors'
import type { Bitfield } from '../bitfield'
import type { Manifest } from '../messages'
import type { TreeNode } from '../tree-node'

/** Subtrees up to this many nodes (320 KiB of tree file) are read and checked in one go. */
const CHUNK = 8191

/** The part of CoreStorage the walk needs. */
export interface NodeFile {
  getNodes (indices: number[]): Promise<Array<TreeNode | null>>
  deleteNodeRange (start: number, end: number): Promise<void>
}

/** A leaf whose chain to a signed root checked out, and where its block goes in the data file. */
export interface VerifiedLeaf {
  block: number
  offset: number
  size: number
  hash: Uint8Array
}

export interface SignedTree {
  key: Uint8Array
  manifest: Manifest | null
  length: number
  fork: number
  /** The tree hash the source recorded with its head, checked too when present. */
  rootHash: Uint8Array | null
  signature: Uint8Array | null
}

/**
 * The roots of `tree.length` from `file`, once they hash to the recorded tree
 * hash and the signature signs them. Throws STORAGE_CORRUPT for a missing or
 * mismatched root, INVALID_SIGNATURE for a signature that does not sign them.
 */
export async function signedRoots (file: NodeFile, tree: SignedTree): Promise<TreeNode[]> {
  if (tree.length === 0) return []
  const indices = fullRoots(2 * tree.length)
  const nodes = await file.getNodes(indices)
  const missing = indices.filter((_, k) => nodes[k] === null)
  if (missing.length > 0) throw STORAGE_CORRUPT(`Root tree node${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing`)
  const roots = nodes as TreeNode[]
  const hash = treeHash(roots)
  if (tree.rootHash !== null && !b4a.equals(hash, tree.rootHash)) {
    throw STORAGE_CORRUPT('The root tree nodes do not hash to the tree hash recorded with the head')
  }
  if (tree.manifest === null) throw STORAGE_CORRUPT('No manifest: the signature cannot be checked')
  if (!manifests.verify(tree.manifest, tree.key, hash, tree.length, tree.fork, tree.signature)) {
    throw INVALID_SIGNATURE(`The signature does not sign the tree at length ${tree.length}, fork ${tree.fork}`)
  }
  return roots
}

/**
 * Walks the tree under signed `roots` once, left to right: `leaf(i)` answers
 * for blocks in increasing order, `finish()` walks whatever is left.
 * Unverifiable nodes are zeroed in the file (and cleared in `stored`, which
 * marks the node indices present in the file) and counted in `dropped`.
 */
export class LeafWalk {
  dropped = 0
  readonly #file: NodeFile
  readonly #stored: Bitfield
  readonly #chunk: number
  readonly #chunks: AsyncGenerator<VerifiedLeaf[]>
  #buffer: VerifiedLeaf[] = []
  #at = 0

  /** `chunk`: subtrees of up to this many nodes are read at once. */
  constructor (file: NodeFile, roots: TreeNode[], stored: Bitfield, chunk = CHUNK) {
    this.#file = file
    this.#stored = stored
    this.#chunk = chunk
    this.#chunks = this.#walk(roots)
  }

  /** The verified leaf of block `block`, or null; calls must not go backwards. */
  async leaf (block: number): Promise<VerifiedLeaf | null> {
    for (;;) {
      while (this.#at < this.#buffer.length) {
        const leaf = this.#buffer[this.#at]!
        if (leaf.block > block) return null
        this.#at++
        if (leaf.block === block) return leaf
      }
      const next = await this.#chunks.next()
      if (next.done === true) return null
      this.#buffer = next.value
      this.#at = 0
    }
  }

  /** Walks (and so checks) the rest of the tree. */
  async finish (): Promise<void> {
    while ((await this.#chunks.next()).done !== true) {}
    this.#buffer = []
  }

  async * #walk (roots: TreeNode[]): AsyncGenerator<VerifiedLeaf[]> {
    let offset = 0
    for (const root of roots) {
      yield * this.#subtree(root, offset)
      offset += root.size
    }
  }

  async * #subtree (node: TreeNode, offset: number): AsyncGenerator<VerifiedLeaf[]> {
    if ((node.index & 1) === 0) {
      yield [leafOf(node, offset)]
      return
    }
    const lo = leftSpan(node.index)
    const hi = rightSpan(node.index)
    if (hi - lo + 1 <= this.#chunk) {
      const indices: number[] = []
      for (let i = lo; i <= hi; i++) indices.push(i)
      const nodes = await this.#file.getNodes(indices)
      const leaves: VerifiedLeaf[] = []
      const drops: Array<[number, number]> = []
      visit(nodes, lo, node, offset, leaves, drops)
      for (const [a, b] of drops) await this.#drop(a, b)
      if (leaves.length > 0) yield leaves
      return
    }
    const l = leftChild(node.index)
    const r = rightChild(node.index)
    const [left, right] = await this.#file.getNodes([l, r])
    if (left === null || right === null) {
      await this.#drop(leftSpan(l), rightSpan(l))
      await this.#drop(leftSpan(r), rightSpan(r))
      return
    }
    checkParent(node, left!, right!)
    yield * this.#subtree(left!, offset)
    yield * this.#subtree(right!, offset + left!.size)
  }

  /** Zeroes the nodes in [lo, hi] (a subtree that cannot be verified). */
  async #drop (lo: number, hi: number): Promise<void> {
    const n = this.#stored.count(lo, hi + 1)
    if (n === 0) return
    this.dropped += n
    this.#stored.setRange(lo, hi + 1, false)
    await this.#file.deleteNodeRange(lo, hi + 1)
  }
}

/** The in-memory part of the walk: `nodes[k]` is node `base + k`. */
function visit (nodes: Array<TreeNode | null>, base: number, node: TreeNode, offset: number, leaves: VerifiedLeaf[], drops: Array<[number, number]>): void {
  if ((node.index & 1) === 0) {
    leaves.push(leafOf(node, offset))
    return
  }
  const l = leftChild(node.index)
  const r = rightChild(node.index)
  const left = nodes[l - base] ?? null
  const right = nodes[r - base] ?? null
  if (left === null || right === null) {
    drops.push([leftSpan(l), rightSpan(l)], [leftSpan(r), rightSpan(r)])
    return
  }
  checkParent(node, left, right)
  visit(nodes, base, left, offset, leaves, drops)
  visit(nodes, base, right, offset + left.size, leaves, drops)
}

function checkParent (node: TreeNode, left: TreeNode, right: TreeNode): void {
  if (left.size + right.size !== node.size || !b4a.equals(parentHash(left, right), node.hash)) {
    throw STORAGE_CORRUPT(`Tree node ${node.index} does not match its children ${left.index} and ${right.index}`)
  }
}

function leafOf (node: TreeNode, offset: number): VerifiedLeaf {
  return { block: node.index / 2, offset, size: node.size, hash: node.hash }
}
