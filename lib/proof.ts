/**
 * Merkle proofs in Hypercore 11's shape: which nodes prove a block, a tree
 * node, a byte offset or an upgrade to a longer signed tree, and how to check
 * them. Generation reads nodes through `NodeSource`; verification is pure.
 * The node order inside each list is part of the wire format.
 */
import b4a from 'b4a'
import { Iterator, fullRoots, leftSpan, countLeaves } from './flat-tree'
import { leafNode, parentNode } from './crypto'
import { TreeBatch, type TreeState } from './tree-batch'
import { INVALID_OPERATION, INVALID_PROOF, BAD_ARGUMENT, MISSING_NODE } from './errors'
import { sameNode, type TreeNode } from './tree-node'
import type { Manifest } from './messages'

export interface ProofRequest {
  /** Prove block `index`; `nodes` = how many levels the asker already has. */
  block?: { index: number, nodes: number } | null
  /** Prove tree node `index` (it is included in the proof). */
  hash?: { index: number, nodes: number } | null
  /** Prove which block holds byte `bytes`. */
  seek?: { bytes: number, padding?: number } | null
  /** Prove the signed tree of length start + length, given the asker has `start`. */
  upgrade?: { start: number, length: number } | null
}

export interface Proof {
  fork: number
  block: { index: number, value: Uint8Array | null, nodes: TreeNode[] } | null
  hash: { index: number, nodes: TreeNode[] } | null
  seek: { bytes: number, nodes: TreeNode[] } | null
  upgrade: {
    start: number
    length: number
    nodes: TreeNode[]
    additionalNodes: TreeNode[]
    signature: Uint8Array | null
  } | null
  manifest: Manifest | null
}

/** A tree that can hand out its nodes. */
export interface NodeSource extends TreeState {
  getNode (index: number): Promise<TreeNode | null>
}

async function need (src: NodeSource, index: number): Promise<TreeNode> {
  const node = await src.getNode(index)
  if (node === null) throw MISSING_NODE(index)
  return node
}

function needAll (src: NodeSource, indices: number[] | null): Promise<TreeNode[]> | null {
  return indices === null ? null : Promise.all(indices.map(i => need(src, i)))
}

// ---------------------------------------------------------------------------
// Generation

interface Target {
  index: number
  /** A block carries its value, so its own leaf is not sent. */
  isBlock: boolean
  nodes: number
  lastBlock: number
}

interface Plan {
  node: number[] | null
  seek: number[] | null
  upgrade: number[] | null
  additional: number[] | null
}

function pathTo (seekRoot: number, root: number, plan: Plan): void {
  const ite = new Iterator(seekRoot)
  plan.seek = [ite.index]
  while (ite.index !== root) {
    plan.seek.push(ite.sibling())
    ite.parent()
  }
}

function blockAndSeekPath (target: Target | null, seek: boolean, seekRoot: number, root: number, plan: Plan): void {
  if (target === null) {
    pathTo(seekRoot, root, plan)
    return
  }
  const ite = new Iterator(target.index)
  plan.node = []
  if (!target.isBlock) plan.node.push(ite.index)
  while (ite.index !== root) {
    ite.sibling()
    if (seek && ite.contains(seekRoot) && ite.index !== seekRoot) pathTo(seekRoot, ite.index, plan)
    else plan.node.push(ite.index)
    ite.parent()
  }
}

/**
 * Nodes that take a peer holding `from` leaves (2·length) to `to`: the roots
 * it lacks, and for a root it holds part of, the path that completes it.
 * With `target`, the subtree holding the target is proven through it.
 */
function upgradePath (target: Target | null, seek: boolean, from: number, to: number, subTree: number, plan: Plan, key: 'upgrade' | 'additional'): void {
  if (from === 0) plan[key] = []
  const withTarget = key === 'upgrade'

  for (const ite = new Iterator(0); ite.fullRoot(to); ite.nextTree()) {
    if (ite.index + ite.factor / 2 < from) continue // they hold this root

    if (plan[key] === null && ite.contains(from - 2)) {
      const out: number[] = plan[key] = []
      const root = ite.index
      const last = from - 2
      ite.seek(last)
      while (ite.index !== root) {
        ite.sibling()
        if (ite.index > last) {
          if (withTarget && plan.node === null && plan.seek === null && ite.contains(subTree)) {
            blockAndSeekPath(target, seek, subTree, ite.index, plan)
          } else {
            out.push(ite.index)
          }
        }
        ite.parent()
      }
      continue
    }

    const out: number[] = plan[key] ??= []
    if (withTarget && plan.node === null && plan.seek === null && ite.contains(subTree)) {
      blockAndSeekPath(target, seek, subTree, ite.index, plan)
      continue
    }
    out.push(ite.index)
  }
}

function targetOf (req: ProofRequest): Target | null {
  if (req.block) return { index: 2 * req.block.index, isBlock: true, nodes: req.block.nodes, lastBlock: req.block.index }
  if (req.hash) {
    const ite = new Iterator(req.hash.index)
    return { index: req.hash.index, isBlock: false, nodes: req.hash.nodes, lastBlock: ite.rightSpan() / 2 }
  }
  return null
}

function rootAbove (index: number, levels: number, head: number): number {
  const ite = new Iterator(index)
  for (let i = 0; i < levels; i++) {
    ite.parent()
    if (ite.contains(head)) throw INVALID_OPERATION('Nodes is out of bounds')
  }
  return ite.index
}

/** Builds the proof that answers `req` from the tree `src`. */
export async function generateProof (src: NodeSource, req: ProofRequest): Promise<Proof> {
  const { block = null, hash = null, seek = null, upgrade = null } = req
  const proof: Proof = { fork: src.fork, block: null, hash: null, seek: null, upgrade: null, manifest: null }
  const head = 2 * src.length
  if (head === 0) return proof

  const from = upgrade ? 2 * upgrade.start : 0
  const to = upgrade ? from + 2 * upgrade.length : head
  const target = targetOf(req)

  if (from >= to || to > head) throw INVALID_OPERATION('Invalid upgrade')
  if (seek && upgrade && target !== null && target.index >= from) {
    throw INVALID_OPERATION('Cannot both do a seek and block/hash request when upgrading')
  }

  const plan: Plan = { node: null, seek: null, upgrade: null, additional: null }
  const padding = seek?.padding ?? 0
  let subTree = head

  if (target !== null && (!upgrade || target.lastBlock < upgrade.start)) {
    subTree = rootAbove(target.index, target.nodes, to)
    const seekRoot = seek ? await seekUntrusted(src, subTree, seek.bytes, padding) : head
    blockAndSeekPath(target, seek !== null, seekRoot, subTree, plan)
  } else if ((target !== null || seek) && upgrade) {
    subTree = seek ? await seekFromHead(src, to, seek.bytes, padding) : target!.index
  }

  if (upgrade) {
    upgradePath(target, seek !== null, from, to, subTree, plan, 'upgrade')
    if (head > to) upgradePath(null, false, to, head, head, plan, 'additional')
  }

  const [pNode, pSeek, pUpgrade, pAdditional] = await Promise.all([
    needAll(src, plan.node), needAll(src, plan.seek), needAll(src, plan.upgrade), needAll(src, plan.additional)
  ])

  if (block) {
    if (pNode === null) throw INVALID_OPERATION('Invalid block request')
    proof.block = { index: block.index, value: null, nodes: pNode }
  } else if (hash) {
    if (pNode === null) throw INVALID_OPERATION('Invalid hash request')
    proof.hash = { index: hash.index, nodes: pNode }
  }
  if (seek && pSeek !== null) proof.seek = { bytes: seek.bytes, nodes: pSeek }
  if (upgrade) {
    proof.upgrade = {
      start: upgrade.start,
      length: upgrade.length,
      nodes: pUpgrade ?? [],
      additionalNodes: pAdditional ?? [],
      signature: src.signature
    }
  }
  return proof
}

// ---------------------------------------------------------------------------
// Seeking by byte offset

function unpadded (node: TreeNode, padding: number): number {
  return padding === 0 ? node.size : node.size - padding * countLeaves(node.index)
}

/**
 * Byte offset where the subtree (or block leaf) at `index` starts: the sizes
 * left of it, or failing that (a node on the left is missing) the byte
 * length minus the sizes right of it, so one lost node blocks fewer reads.
 */
export async function byteOffset (src: NodeSource, index: number): Promise<number> {
  if (index === 2 * src.length) return src.byteLength
  if ((index & 1) === 1) index = leftSpan(index)
  const roots = fullRoots(2 * src.length)
  const missing = { index: -1 }
  const fromLeft = await sizesLeftOf(src, roots, index, missing)
  if (fromLeft !== null) return fromLeft
  const fromRight = await sizesFrom(src, roots, index)
  if (fromRight !== null) return src.byteLength - fromRight
  throw MISSING_NODE(missing.index)
}

async function sizesLeftOf (src: NodeSource, roots: number[], index: number, missing: { index: number }): Promise<number | null> {
  let sum = 0
  let start = 0
  for (const root of roots) {
    const end = start + 2 * (root - start + 1)
    if (index >= end) {
      const node = await src.getNode(root)
      if (node === null) {
        missing.index = root
        return null
      }
      sum += node.size
      start = end
      continue
    }
    const ite = new Iterator(root)
    while (ite.index !== index) {
      if (index < ite.index) {
        ite.leftChild()
      } else {
        const left = await src.getNode(ite.leftChild())
        if (left === null) {
          missing.index = ite.index
          return null
        }
        sum += left.size
        ite.sibling()
      }
    }
    return sum
  }
  throw BAD_ARGUMENT('Index ' + index + ' is out of bounds')
}

/** Total size of the blocks from leaf `index` to the end of the tree. */
async function sizesFrom (src: NodeSource, roots: number[], index: number): Promise<number | null> {
  let sum = 0
  let start = 0
  let found = false
  for (const root of roots) {
    const end = start + 2 * (root - start + 1)
    if (found || index < start) {
      const node = await src.getNode(root)
      if (node === null) return null
      sum += node.size
    } else if (index < end) {
      found = true
      const ite = new Iterator(root)
      while (ite.index !== index) {
        if (index > ite.index) {
          ite.rightChild()
        } else {
          const right = await src.getNode(ite.index + (ite.factor / 4))
          if (right === null) return null
          sum += right.size
          ite.leftChild()
        }
      }
      const leaf = await src.getNode(index)
      if (leaf === null) return null
      sum += leaf.size
    }
    start = end
  }
  return found ? sum : null
}

async function seekFromHead (src: NodeSource, head: number, bytes: number, padding: number): Promise<number> {
  for (const root of fullRoots(head)) {
    const size = unpadded(await need(src, root), padding)
    if (bytes === size) return root
    if (bytes > size) {
      bytes -= size
      continue
    }
    return seekTrusted(src, root, bytes, padding)
  }
  return head
}

async function seekTrusted (src: NodeSource, root: number, bytes: number, padding: number): Promise<number> {
  if (!bytes) return root
  const ite = new Iterator(root)
  while ((ite.index & 1) !== 0) {
    const left = await src.getNode(ite.leftChild())
    if (left === null) return ite.parent()
    const size = unpadded(left, padding)
    if (size === bytes) return ite.index
    if (size > bytes) continue
    bytes -= size
    ite.sibling()
  }
  return ite.index
}

async function seekUntrusted (src: NodeSource, root: number, bytes: number, padding: number): Promise<number> {
  const offset = (await byteOffset(src, root)) - (padding ? padding * leftSpan(root) / 2 : 0)
  if (offset > bytes) throw INVALID_OPERATION('Invalid seek')
  if (offset === bytes) return root
  bytes -= offset
  if (unpadded(await need(src, root), padding) <= bytes) throw INVALID_OPERATION('Invalid seek')
  return seekTrusted(src, root, bytes, padding)
}

// ---------------------------------------------------------------------------
// Verification. Everything below handles bytes a peer chose: every expected
// node index is checked, and loops are bounded by the lists they consume.

class NodeQueue {
  private i = 0
  length: number
  /** One kept alive, for the reason `Iterator` keeps one: each proof check makes its own. */
  static readonly #shape = new NodeQueue([])

  constructor (private readonly nodes: readonly TreeNode[], public extra: TreeNode | null = null) {
    this.length = nodes.length + (extra === null ? 0 : 1)
  }

  shift (index: number): TreeNode {
    if (this.extra !== null && this.extra.index === index) {
      const node = this.extra
      this.extra = null
      this.length--
      return node
    }
    const node = this.nodes[this.i++]
    if (node === undefined) throw INVALID_PROOF('Expected node ' + index + ', proof has no more nodes')
    if (node.index !== index) throw INVALID_PROOF('Expected node ' + index + ', got node ' + node.index)
    this.length--
    return node
  }
}

/**
 * What a proof is anchored in. `matchesVerified(node)`: true when we trust
 * that very node already, false when we trust another one at its index,
 * undefined when we hold none there. An object with a method rather than a
 * callback: a closure per tree would be a different function for every
 * core, which the optimised verification of every block would be tied to.
 */
export interface NodeMatcher {
  matchesVerified (node: TreeNode): boolean | undefined
}

/**
 * Hashes the block/hash/seek part of a proof up to the highest node it
 * reaches and returns that node (null when the proof has no such part).
 * Every node taken from or derived by the proof is pushed to `out`.
 */
export function verifyTree (proof: Pick<Proof, 'block' | 'hash' | 'seek'>, out: TreeNode[], known?: NodeMatcher, result?: { anchored: boolean }): TreeNode | null {
  const { block, hash, seek } = proof
  const untrusted = block
    ? { index: 2 * block.index, value: block.value, nodes: block.nodes }
    : hash ? { index: hash.index, value: null, nodes: hash.nodes } : null

  if (untrusted === null && (!seek || seek.nodes.length === 0)) return null

  let root: TreeNode | null = null

  if (seek && seek.nodes.length > 0) {
    const ite = new Iterator(seek.nodes[0]!.index)
    const q = new NodeQueue(seek.nodes)
    root = q.shift(ite.index)
    out.push(root)
    while (q.length > 0) {
      const node = q.shift(ite.sibling())
      root = parentNode(ite.parent(), root, node)
      out.push(node, root)
    }
  }

  if (untrusted === null) return root

  const ite = new Iterator(untrusted.index)
  const q = new NodeQueue(untrusted.nodes, root)
  root = untrusted.value ? leafNode(ite.index, untrusted.value) : q.shift(ite.index)
  // With `known` (trusted local nodes at hand), stop at the first node we
  // already hold: it anchors the proof, and the rest of the path is ours.
  // `result.anchored` says whether it did.
  if (known !== undefined && anchored(root, known)) {
    if (result !== undefined) result.anchored = true
    return root
  }
  out.push(root)
  while (q.length > 0) {
    const node = q.shift(ite.sibling())
    root = parentNode(ite.parent(), root, node)
    if (known !== undefined && anchored(root, known)) {
      out.push(node)
      if (result !== undefined) result.anchored = true
      return root
    }
    out.push(node, root)
  }
  return root
}

/** True when we hold `node` already; throws when we hold a different one. */
function anchored (node: TreeNode, known: NodeMatcher): boolean {
  const same = known.matchesVerified(node)
  if (same === undefined) return false
  if (!same) throw INVALID_PROOF('Proof does not match node ' + node.index)
  return true
}

/**
 * Grows `batch` with the upgrade part of a proof. Returns true when
 * `blockRoot` (the top of verifyTree) was consumed as one of the new nodes,
 * i.e. the block/hash part is anchored in the upgraded tree.
 */
export function verifyUpgrade (proof: Pick<Proof, 'fork' | 'upgrade'>, blockRoot: TreeNode | null, batch: TreeBatch, prologue: { hash: Uint8Array, length: number } | null = null): boolean {
  const upgrade = proof.upgrade
  if (upgrade === null) throw INVALID_PROOF('Expected an upgrade')

  if (prologue) {
    const { start, length } = upgrade
    if (start < prologue.length && (start !== 0 || length < prologue.length)) {
      throw INVALID_PROOF('Upgrade does not satisfy prologue')
    }
  }

  const q = new NodeQueue(upgrade.nodes, blockRoot)
  const to = 2 * (upgrade.start + upgrade.length)
  if (!Number.isSafeInteger(to)) throw INVALID_PROOF('Upgrade is out of bounds')
  let grow = batch.roots.length > 0
  let i = 0

  const ite = new Iterator(0)
  for (; ite.fullRoot(to); ite.nextTree()) {
    if (i < batch.roots.length && batch.roots[i]!.index === ite.index) {
      i++
      continue
    }
    if (grow) {
      grow = false
      const root = ite.index
      if (i < batch.roots.length) {
        ite.seek(batch.roots[batch.roots.length - 1]!.index)
        while (ite.index !== root) batch.appendRoot(q.shift(ite.sibling()), ite)
        continue
      }
    }
    batch.appendRoot(q.shift(ite.index), ite)
  }

  if (prologue && batch.length === prologue.length && !b4a.equals(prologue.hash, batch.hash())) {
    throw INVALID_PROOF('Tree does not match the prologue')
  }

  const extra = upgrade.additionalNodes
  if (extra.length > 0) {
    if (batch.roots.length === 0) throw INVALID_PROOF('Additional nodes without a tree')
    ite.seek(batch.roots[batch.roots.length - 1]!.index)
    let j = 0
    while (j < extra.length && extra[j]!.index === ite.sibling()) batch.appendRoot(extra[j++]!, ite)
    while (j < extra.length) {
      const node = extra[j++]!
      while (node.index !== ite.index) {
        if (ite.factor === 2) throw INVALID_PROOF('Unexpected node ' + node.index)
        ite.leftChild()
      }
      batch.appendRoot(node, ite)
      ite.sibling()
    }
  }

  batch.signature = upgrade.signature
  batch.fork = proof.fork
  return q.extra === null
}

/**
 * Checks a proof that carries everything needed to check it: an upgrade from
 * length 0, so the roots it rebuilds can be checked against the signature.
 * Returns the rebuilt tree; `nodes` holds every node the proof vouches for.
 */
export function verifyFullyRemote (proof: Proof): TreeBatch {
  if (proof.upgrade === null) throw INVALID_PROOF('A fully remote proof needs an upgrade')
  if (proof.upgrade.start !== 0) throw INVALID_PROOF('A fully remote proof upgrades from length 0')
  const batch = TreeBatch.empty(proof.fork)
  const nodes: TreeNode[] = []
  const top = verifyTree(proof, nodes)
  const anchored = verifyUpgrade(proof, top, batch)
  if (top !== null && !anchored) throw INVALID_PROOF('Proof part is not anchored in the upgrade')
  for (const n of nodes) batch.nodes.push(n)
  return batch
}

/**
 * Checks a proof against a local tree: the block/hash/seek part must end in a
 * node the upgrade adds or a node `local` already trusts.
 */
export async function verifyAgainst (local: NodeSource & { peekNode?: (index: number) => TreeNode | undefined }, proof: Proof): Promise<TreeBatch> {
  const batch = new TreeBatch(local)
  const nodes: TreeNode[] = []
  // Without an upgrade or seek, the path can stop at the first node we hold.
  const peek = proof.upgrade === null && proof.seek === null ? local.peekNode : undefined
  const known: NodeMatcher | undefined = peek === undefined
    ? undefined
    : {
        matchesVerified (node) {
          const held = peek(node.index)
          return held === undefined ? undefined : sameNode(held, node)
        }
      }
  let top = verifyTree(proof, nodes, known)
  if (proof.upgrade && verifyUpgrade(proof, top, batch)) top = null
  if (top !== null) {
    const trusted = await local.getNode(top.index)
    if (trusted === null) throw MISSING_NODE(top.index)
    if (!b4a.equals(trusted.hash, top.hash)) throw INVALID_PROOF('Proof does not match node ' + top.index)
  }
  for (const n of nodes) batch.nodes.push(n)
  return batch
}
