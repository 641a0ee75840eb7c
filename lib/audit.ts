/**
 * Auditing what a core holds against what it signed. Trust flows down from
 * the signed roots: a node is good when it hashes, with its sibling, to a good
 * parent; a block is good when it hashes to a good leaf. Where a parent and
 * its children disagree, the child that does not match its own children (or
 * its block) is the rotten one. Pure logic over an `AuditTarget`; the core
 * applies the verdict.
 */
import b4a from 'b4a'
import { Iterator, fullRoots, leftChild, rightChild, countLeaves } from './flat-tree'
import { leafHash, parentHash } from './crypto'
import type { TreeNode } from './tree-node'

export interface AuditTarget {
  length: number
  /** A node as stored on disk, or null. */
  stored (index: number): Promise<TreeNode | null>
  /** Whether block `index` is held (bitfield). */
  has (index: number): boolean
  /** First held block at or after `index`, or -1. */
  firstHeld (index: number): number
  /**
   * A held block's bytes; null if it cannot be read (that is corruption);
   * undefined if it cannot even be located (a tree node it needs is missing,
   * which says nothing about the block). `offset` is where it starts
   * according to trusted sizes (null: the target works it out).
   */
  readBlock (index: number, offset: number | null, size: number): Promise<Uint8Array | null | undefined>
  /** Whether these roots are what our signature signs. */
  signs (roots: TreeNode[]): boolean
}

export interface AuditReport {
  /** Blocks checked. */
  blocks: number
  /** Blocks whose bytes did not match their leaf: to be cleared and fetched again. */
  corruptBlocks: number[]
  /** Tree nodes that did not match: to be dropped and fetched again. */
  droppedNodes: number[]
  /** Roots among the dropped nodes (the core goes into repair mode). */
  droppedRoots: number[]
}

const same = (a: TreeNode, b: TreeNode): boolean => a.size === b.size && b4a.equals(a.hash, b.hash)

export async function audit (target: AuditTarget): Promise<AuditReport> {
  const report: AuditReport = { blocks: 0, corruptBlocks: [], droppedNodes: [], droppedRoots: [] }
  const roots = fullRoots(2 * target.length)
  const stored = await Promise.all(roots.map(r => target.stored(r)))

  // Roots first: the signature vouches for all of them together.
  let trusted: Array<TreeNode | null> = stored
  if (stored.every(r => r !== null) && !target.signs(stored as TreeNode[])) {
    trusted = await Promise.all(stored.map(async r => (await confirmedBelow(target, r!)) === true ? r : null))
    // Every root looks sound from below yet they do not sign: we cannot tell which, so none is kept.
    if (trusted.every(r => r !== null)) trusted = trusted.map(() => null)
  }
  // Byte offsets come only from trusted sizes, so one rotten size cannot
  // make the blocks right of it look corrupt.
  let offset: number | null = 0
  for (let k = 0; k < roots.length; k++) {
    if (stored[k] !== null && trusted[k] === null) {
      report.droppedNodes.push(roots[k]!)
      report.droppedRoots.push(roots[k]!)
    }
    const root = trusted[k] ?? null
    await visit(target, roots[k]!, root, offset, report)
    offset = offset !== null && root !== null ? offset + root.size : null
  }
  return report
}

/**
 * Checks the subtree at `index`. `node` is the trusted value of `index`, or
 * null when nothing above vouches for it (then what lies below is only
 * checked for being consistent with itself).
 */
async function visit (target: AuditTarget, index: number, node: TreeNode | null, offset: number | null, report: AuditReport): Promise<void> {
  if (node === null) offset = null
  if ((index & 1) === 0) {
    await checkBlock(target, index, node, offset, report)
    return
  }
  // Nothing held below and nothing stored here: nothing to check.
  const ite = new Iterator(index)
  const firstBlock = ite.leftSpan() / 2
  const held = target.firstHeld(firstBlock)
  const holdsBlocks = held !== -1 && held < firstBlock + countLeaves(index)

  const l = leftChild(index)
  const r = rightChild(index)
  const [left, right] = await Promise.all([target.stored(l), target.stored(r)])
  if (left === null && right === null && !holdsBlocks) return

  let leftNode: TreeNode | null = left
  let rightNode: TreeNode | null = right
  if (node !== null && left !== null && right !== null) {
    const ok = left.size + right.size === node.size && b4a.equals(parentHash(left, right), node.hash)
    if (!ok) {
      // One of the two is rotten: the one that does not match what lies below it.
      const [lOk, rOk] = await Promise.all([confirmedBelow(target, left), confirmedBelow(target, right)])
      if (lOk !== true) drop(report, l)
      if (rOk !== true) drop(report, r)
      if (lOk === true && rOk === true) {
        drop(report, l)
        drop(report, r)
      }
      leftNode = lOk === true && rOk !== true ? left : null
      rightNode = rOk === true && lOk !== true ? right : null
      // Below a dropped node nothing is vouched for from above; blocks still check against their leaves.
      await visit(target, l, leftNode, leftNode === null ? null : offset, report)
      await visit(target, r, rightNode, offset === null || rightNode === null ? null : offset + node.size - rightNode.size, report)
      return
    }
  }
  await visit(target, l, leftNode, offset, report)
  await visit(target, r, rightNode, offset !== null && leftNode !== null ? offset + leftNode.size : null, report)
}

async function checkBlock (target: AuditTarget, leafIndex: number, leaf: TreeNode | null, offset: number | null, report: AuditReport): Promise<void> {
  const index = leafIndex / 2
  if (!target.has(index)) return
  const stored = leaf ?? await target.stored(leafIndex)
  const data = stored === null ? null : await target.readBlock(index, offset, stored.size)
  if (data === undefined) return // cannot be located now; it is checked once the tree is whole
  report.blocks++
  if (data === null || stored === null || !same(stored, { index: leafIndex, size: data.byteLength, hash: leafHash(data) })) {
    report.corruptBlocks.push(index)
  }
}

/** Whether `node` agrees with what is stored beneath it; null when nothing is. */
async function confirmedBelow (target: AuditTarget, node: TreeNode): Promise<boolean | null> {
  if ((node.index & 1) === 0) {
    const index = node.index / 2
    if (!target.has(index)) return null
    const data = await target.readBlock(index, null, node.size)
    if (data === undefined) return null
    return data !== null && data.byteLength === node.size && b4a.equals(leafHash(data), node.hash)
  }
  const [l, r] = await Promise.all([target.stored(leftChild(node.index)), target.stored(rightChild(node.index))])
  if (l === null || r === null) return null
  return l.size + r.size === node.size && b4a.equals(parentHash(l, r), node.hash)
}

function drop (report: AuditReport, index: number): void {
  report.droppedNodes.push(index)
}
