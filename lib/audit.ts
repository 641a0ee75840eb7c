/**
 * Auditing what a core holds against what it signed. Trust flows down from
 * the signed roots: a node is good when it hashes, with its sibling, to a good
 * parent; a block is good when it hashes to a good leaf. Where a parent and
 * its children disagree, the children are recomputed from what lies below
 * them (their own children, or their blocks): a value that hashes to the
 * parent is the true one, and rewrites the rotten or lost stored one. What
 * cannot be tied to the roots is dropped (nodes) or reported unverified
 * (blocks); a block that does not match its good leaf is corrupt. Pure logic
 * over an `AuditTarget`; the core applies the verdict.
 *
 * Speed: tree and blocks are read in large sequential runs, and a subtree of
 * up to CHUNK_LEAVES blocks is first checked in one synchronous pass over
 * them — every stored parent against its children, every held block against
 * its leaf — which settles the common, healthy case with a hash per node and
 * nothing else. Only a subtree that fails it is walked node by node.
 */
import b4a from 'b4a'
import { Iterator, fullRoots, leftChild, rightChild, leftSpan, rightSpan, countLeaves, depth } from './flat-tree'
import { leafHashInto, leafMatchesInPlace, matchesLeaf, parentMatchesAt, parentNode } from './crypto'
import { TREE_NODE_SIZE, decodeNode, storedNodeState } from './storage'
import { equalHashAt, equalHashes, sameNode, type TreeNode } from './tree-node'
import { readU64 } from './uint-le'

export interface AuditTarget {
  length: number
  /** What the blocks add up to, as the header says (locates roots right of a lost one). */
  byteLength: number
  /** Raw stored nodes [start, end), 40 bytes each; shorter where the tree file ends. */
  readTree (start: number, end: number): Promise<Uint8Array>
  /** Up to `size` bytes of block data at `offset`; shorter where the data file ends. */
  readData (offset: number, size: number): Promise<Uint8Array>
  /** Whether block `index` is held (bitfield). */
  has (index: number): boolean
  /** First held block at or after `index`, or -1. */
  firstHeld (index: number): number
  /** The roots, when they are known to be the signed ones (null: check what the disk holds). */
  roots: TreeNode[] | null
  /** Whether these roots are what our signature signs. */
  signs (roots: TreeNode[]): boolean
}

export interface AuditReport {
  /** Held blocks looked at: verified + corrupt + unverified. */
  blocks: number
  /** Held blocks that match a leaf tied to the signed roots. */
  verifiedBlocks: number
  /** Held blocks whose bytes do not match their good leaf, ascending: to be cleared and fetched again. */
  corruptBlocks: number[]
  /** Held blocks that cannot be tied to the roots (a node above them is lost), ascending: not to be served until they are. */
  unverifiedBlocks: number[]
  /** Stored nodes that are rotten and cannot be recomputed here: to be dropped and fetched from peers. */
  droppedNodes: number[]
  /** True values recomputed here for rotten or lost stored nodes: to be written. */
  restoredNodes: TreeNode[]
  /** Roots among the dropped nodes (the core goes into repair mode). */
  droppedRoots: number[]
  /** Every root, checked against the signature, when the audit could do that; else null. */
  roots: TreeNode[] | null
}

/** Subtrees up to this many blocks (and CHUNK_BYTES of data) are checked in one pass. */
const CHUNK_LEAVES = 8192
const CHUNK_BYTES = 8 * 1024 * 1024
/** Blocks are read in runs of at least this many bytes. */
const DATA_WINDOW = 4 * 1024 * 1024
/** Nodes the node-by-node walk reads at once, and how many such windows it keeps. */
const TREE_WINDOW = 256
const MAX_WINDOWS = 1024

function parentMatches (parent: TreeNode, left: TreeNode, right: TreeNode): boolean {
  return left.size + right.size === parent.size && equalHashes(parentNode(parent.index, left, right).hash, parent.hash)
}

/** Stored nodes, from big runs (one pass) or small windows (the walk). */
class NodeReader {
  /** Stored bytes that cannot be a node at all (an impossible size): rot wherever they are. */
  readonly garbage = new Set<number>()
  readonly #target: AuditTarget
  readonly #windows = new Map<number, Uint8Array>()
  #run: { start: number, bytes: Uint8Array } | null = null

  constructor (target: AuditTarget) {
    this.#target = target
  }

  /** Raw nodes [start, end) with one read (or from the last run), kept for `get`. */
  async run (start: number, end: number): Promise<Uint8Array> {
    const last = this.#run
    if (last !== null && start >= last.start && end <= last.start + last.bytes.byteLength / TREE_NODE_SIZE) {
      return last.bytes.subarray((start - last.start) * TREE_NODE_SIZE, (end - last.start) * TREE_NODE_SIZE)
    }
    const bytes = await this.#target.readTree(start, end)
    this.#run = { start, bytes }
    return bytes
  }

  async get (index: number): Promise<TreeNode | null> {
    const last = this.#run
    if (last !== null && index >= last.start && (index - last.start + 1) * TREE_NODE_SIZE <= last.bytes.byteLength) {
      return this.#decode(last.bytes, (index - last.start) * TREE_NODE_SIZE, index)
    }
    const w = Math.floor(index / TREE_WINDOW)
    let bytes = this.#windows.get(w)
    if (bytes === undefined) {
      bytes = await this.#target.readTree(w * TREE_WINDOW, (w + 1) * TREE_WINDOW)
      if (this.#windows.size >= MAX_WINDOWS) this.#windows.clear()
      this.#windows.set(w, bytes)
    }
    const at = (index - w * TREE_WINDOW) * TREE_NODE_SIZE
    return at + TREE_NODE_SIZE <= bytes.byteLength ? this.#decode(bytes, at, index) : null
  }

  #decode (bytes: Uint8Array, at: number, index: number): TreeNode | null {
    if (storedNodeState(bytes, at) === 'rotten') this.garbage.add(index)
    return decodeNode(bytes, at, index)
  }
}

/** Block data in big sequential runs. */
class DataReader {
  readonly #target: AuditTarget
  #start = 0
  #bytes: Uint8Array = b4a.alloc(0)

  constructor (target: AuditTarget) {
    this.#target = target
  }

  /** `size` bytes at `offset`, or null where the data file ends first. */
  async read (offset: number, size: number): Promise<Uint8Array | null> {
    const start = this.#start
    if (offset < start || offset + size > start + this.#bytes.byteLength) {
      this.#bytes = await this.#target.readData(offset, Math.max(size, DATA_WINDOW))
      this.#start = offset
    }
    const at = offset - this.#start
    return at + size <= this.#bytes.byteLength ? this.#bytes.subarray(at, at + size) : null
  }
}

interface Ctx {
  target: AuditTarget
  nodes: NodeReader
  data: DataReader
  report: AuditReport
  /** Indices of the nodes in `report.restoredNodes`. */
  restored: Set<number>
}

export async function audit (target: AuditTarget): Promise<AuditReport> {
  const report: AuditReport = {
    blocks: 0, verifiedBlocks: 0, corruptBlocks: [], unverifiedBlocks: [], droppedNodes: [], restoredNodes: [], droppedRoots: [], roots: null
  }
  const ctx: Ctx = { target, nodes: new NodeReader(target), data: new DataReader(target), report, restored: new Set() }
  const indices = fullRoots(2 * target.length)
  const stored = await Promise.all(indices.map(r => ctx.nodes.get(r)))
  const trusted = await trustRoots(ctx, indices, stored)

  // Byte offsets come only from trusted sizes, so one rotten size cannot make
  // the blocks right of it look corrupt; right of an unknown root they are
  // counted back from the end.
  const offsets: Array<number | null> = indices.map(() => null)
  let left: number | null = 0
  for (let k = 0; k < indices.length; k++) {
    offsets[k] = left
    left = left !== null && trusted[k] !== null ? left + trusted[k]!.size : null
  }
  let right: number | null = target.byteLength
  for (let k = indices.length - 1; k >= 0; k--) {
    right = right !== null && trusted[k] !== null ? right - trusted[k]!.size : null
    if (offsets[k] === null) offsets[k] = right
  }
  for (let k = 0; k < indices.length; k++) await visit(ctx, indices[k]!, trusted[k]!, offsets[k]!)

  for (const g of ctx.nodes.garbage) {
    if (g < 2 * target.length && !ctx.restored.has(g) && !report.droppedNodes.includes(g)) report.droppedNodes.push(g)
  }
  return report
}

/**
 * Which roots to trust. The signature vouches for all of them together; a
 * root that is rotten or lost is recomputed from its children when that makes
 * the set sign. Lacking a root we cannot recompute, the signature cannot be
 * checked: the stored roots that agree with what lies below them are then
 * taken as they are (the best a core in repair mode has).
 */
async function trustRoots (ctx: Ctx, indices: number[], stored: Array<TreeNode | null>): Promise<Array<TreeNode | null>> {
  const { report, target } = ctx
  if (target.roots !== null) {
    report.roots = target.roots
    target.roots.forEach((r, k) => { if (stored[k] === null || !sameNode(stored[k]!, r)) restore(ctx, r) })
    return target.roots
  }
  if (stored.every(r => r !== null) && target.signs(stored as TreeNode[])) {
    report.roots = stored as TreeNode[]
    return stored
  }
  let at = 0
  const below: Array<TreeNode | null> = []
  for (let k = 0; k < indices.length; k++) {
    below.push(await recompute(ctx, indices[k]!, at, stored[k]?.size ?? null))
    at += stored[k]?.size ?? 0
  }
  const pick = (k: number, useBelow: boolean): TreeNode | null => useBelow ? below[k] ?? stored[k]! : stored[k] ?? below[k]!
  if (indices.every((_, k) => stored[k] !== null || below[k] !== null)) {
    const tries: Array<Array<TreeNode | null>> = [indices.map((_, k) => pick(k, false)), indices.map((_, k) => pick(k, true))]
    for (let j = 0; j < indices.length; j++) {
      if (below[j] !== null && stored[j] !== null && !sameNode(below[j]!, stored[j]!)) tries.push(indices.map((_, k) => pick(k, k === j)))
    }
    for (const roots of tries) {
      if (!target.signs(roots as TreeNode[])) continue
      report.roots = roots as TreeNode[]
      roots.forEach((r, k) => { if (stored[k] === null || !sameNode(stored[k]!, r!)) restore(ctx, r!) })
      return roots
    }
  }
  // The set does not sign (or cannot be checked, lacking a root): a root that
  // disagrees with what lies below it is rotten. The others are kept as they
  // are, the anchors a core in repair mode has until its roots are back. If
  // none disagrees yet a complete set does not sign, nothing tells them apart.
  const rotten = indices.map((_, k) => stored[k] !== null && below[k] !== null && !sameNode(stored[k]!, below[k]!))
  const complete = stored.every(r => r !== null)
  const none = complete && !rotten.some(x => x)
  const trusted = indices.map((_, k) => none || rotten[k] ? null : stored[k]!)
  for (let k = 0; k < indices.length; k++) {
    if (stored[k] !== null && trusted[k] === null) {
      report.droppedNodes.push(indices[k]!)
      report.droppedRoots.push(indices[k]!)
    }
  }
  return trusted
}

/**
 * Checks the subtree at `index`, whose true value is `node` (null when
 * nothing above vouches for it) and which starts at byte `offset`.
 */
async function visit (ctx: Ctx, index: number, node: TreeNode | null, offset: number | null): Promise<void> {
  const ite = new Iterator(index)
  const first = ite.leftSpan() / 2
  const last = ite.rightSpan() / 2
  if (node === null || offset === null) {
    unverifiable(ctx, first, last)
    return
  }
  if ((index & 1) === 0) {
    await checkLeaf(ctx, index, node, offset)
    return
  }
  if (countLeaves(index) <= CHUNK_LEAVES && node.size <= CHUNK_BYTES) {
    const held = await checkWhole(ctx, index, node, offset)
    if (held >= 0) {
      ctx.report.blocks += held
      ctx.report.verifiedBlocks += held
      return
    }
  }
  const l = leftChild(index)
  const r = rightChild(index)
  const [left, right] = await Promise.all([ctx.nodes.get(l), ctx.nodes.get(r)])
  if (left === null && right === null && !holds(ctx, first, last)) return // nothing stored below: nothing to check

  const { l: tl, r: tr } = await resolveChildren(ctx, index, node, left, right, offset)
  await visit(ctx, l, tl, offset)
  await visit(ctx, r, tr, tl !== null ? offset + tl.size : tr !== null ? offset + node.size - tr.size : null)
}

/**
 * The true values of a trusted node's children: the stored ones if they hash
 * to it, else values recomputed from below them that do. Rotten or lost
 * stored children are restored when their true value is found, and dropped
 * when it is not (one of them may then be kept, if it agrees with below it).
 */
async function resolveChildren (ctx: Ctx, index: number, node: TreeNode, left: TreeNode | null, right: TreeNode | null, offset: number): Promise<{ l: TreeNode | null, r: TreeNode | null }> {
  if (left !== null && right !== null && parentMatches(node, left, right)) return { l: left, r: right }
  const l = leftChild(index)
  const r = rightChild(index)

  let leftBelow: TreeNode | null = null
  let rightBelow: TreeNode | null = null
  if (depth(index) === 1) {
    // Two leaves: their sizes add up to the parent's, which locates the right block.
    for (const size of new Set([left?.size, right === null ? undefined : node.size - right.size])) {
      if (size === undefined || size < 0 || size > node.size) continue
      const a = left !== null && left.size === size ? left : null
      const aBelow = await recompute(ctx, l, offset, size)
      const b = right !== null && right.size === node.size - size ? right : null
      const bBelow = await recompute(ctx, r, offset + size, node.size - size)
      if (a !== null && aBelow !== null) leftBelow = aBelow
      if (b !== null && bBelow !== null) rightBelow = bBelow
      for (const x of [a, aBelow]) for (const y of [b, bBelow]) if (x !== null && y !== null && parentMatches(node, x, y)) return settle(ctx, x, y, left, right)
    }
  } else {
    leftBelow = await recompute(ctx, l, null, null)
    rightBelow = await recompute(ctx, r, null, null)
    for (const x of [left, leftBelow]) for (const y of [right, rightBelow]) if (x !== null && y !== null && parentMatches(node, x, y)) return settle(ctx, x, y, left, right)
  }

  // Neither stored nor recomputed values hash to the parent: drop what does
  // not agree with below it; when both do (or neither), nothing tells them apart.
  const leftOk = left !== null && leftBelow !== null && sameNode(left, leftBelow)
  const rightOk = right !== null && rightBelow !== null && sameNode(right, rightBelow)
  if (left !== null && (!leftOk || rightOk)) ctx.report.droppedNodes.push(l)
  if (right !== null && (!rightOk || leftOk)) ctx.report.droppedNodes.push(r)
  return { l: null, r: null }
}

function settle (ctx: Ctx, l: TreeNode, r: TreeNode, left: TreeNode | null, right: TreeNode | null): { l: TreeNode, r: TreeNode } {
  restoreIfWrong(ctx, l, left)
  restoreIfWrong(ctx, r, right)
  return { l, r }
}

/**
 * Writes the true value of a node whose stored one is wrong: rotten, garbage,
 * or lost where a block under its parent is held (a sparse core lacks most
 * nodes by design; those stay absent).
 */
function restoreIfWrong (ctx: Ctx, node: TreeNode, stored: TreeNode | null): void {
  const wrong = stored !== null ? !sameNode(stored, node) : ctx.nodes.garbage.has(node.index) || holdsUnder(ctx, node.index)
  if (wrong) restore(ctx, node)
}

/**
 * Node `index` as what lies below it makes it: its stored children hashed, or
 * for a leaf its held block (at `offset`, `size` bytes) hashed. Null when
 * that is not there.
 */
async function recompute (ctx: Ctx, index: number, offset: number | null, size: number | null): Promise<TreeNode | null> {
  if ((index & 1) === 1) {
    const [a, b] = await Promise.all([ctx.nodes.get(leftChild(index)), ctx.nodes.get(rightChild(index))])
    return a !== null && b !== null ? parentNode(index, a, b) : null
  }
  if (offset === null || size === null || !ctx.target.has(index / 2)) return null
  const data = await ctx.data.read(offset, size)
  if (data === null) return null
  const hash = b4a.allocUnsafe(32)
  leafHashInto(hash, data)
  return { index, size, hash }
}

async function checkLeaf (ctx: Ctx, index: number, leaf: TreeNode, offset: number): Promise<void> {
  const { report } = ctx
  const block = index / 2
  restoreIfWrong(ctx, leaf, await ctx.nodes.get(index))
  if (!ctx.target.has(block)) return
  report.blocks++
  const data = await ctx.data.read(offset, leaf.size)
  if (data !== null && matchesLeaf(leaf, data)) report.verifiedBlocks++
  else report.corruptBlocks.push(block)
}

/** Held blocks in [first, last] that nothing above vouches for. */
function unverifiable (ctx: Ctx, first: number, last: number): void {
  for (let i = ctx.target.firstHeld(first); i !== -1 && i <= last; i = ctx.target.firstHeld(i + 1)) {
    ctx.report.blocks++
    ctx.report.unverifiedBlocks.push(i)
  }
}

function holds (ctx: Ctx, first: number, last: number): boolean {
  const i = ctx.target.firstHeld(first)
  return i !== -1 && i <= last
}

/** Whether a block is held under the parent of `index` (so the node belongs on disk, not just to the tree). */
function holdsUnder (ctx: Ctx, index: number): boolean {
  const ite = new Iterator(index)
  ite.parent()
  return holds(ctx, ite.leftSpan() / 2, ite.rightSpan() / 2)
}

function restore (ctx: Ctx, node: TreeNode): void {
  if (ctx.restored.has(node.index)) return
  ctx.restored.add(node.index)
  ctx.report.restoredNodes.push(node)
}

// ---------------------------------------------------------------------------
// The one-pass check

/**
 * Checks the whole subtree at `index` in one pass over its stored nodes and
 * its data, read with one read each. Returns how many held blocks it
 * verified, or -1 when anything is missing or does not match (then the walk
 * finds what).
 */
async function checkWhole (ctx: Ctx, index: number, node: TreeNode, offset: number): Promise<number> {
  const lo = leftSpan(index)
  const hi = rightSpan(index)
  const tree = await ctx.nodes.run(lo, hi + 1)
  if (tree.byteLength < (hi - lo + 1) * TREE_NODE_SIZE) return -1
  let data: Uint8Array | null = null
  if (holds(ctx, lo / 2, hi / 2)) {
    data = await ctx.data.read(offset, node.size)
    if (data === null) return -1
  }
  return checkRun(ctx.target, tree, lo, hi, node, data)
}

function checkRun (target: AuditTarget, tree: Uint8Array, lo: number, hi: number, node: TreeNode, data: Uint8Array | null): number {
  const count = hi - lo + 1
  const sizes = sizesOf(tree, count)
  if (sizes === null) return -1
  const top = (count - 1) / 2
  if (sizes[top] !== node.size || !equalHashAt(tree, top * TREE_NODE_SIZE + 8, node.hash)) return -1
  const held = leavesMatch(target, tree, lo, sizes, data)
  return held !== -1 && parentsMatch(tree, sizes) ? held : -1
}

// The three passes are functions of their own so that each loop is compiled
// with what it has seen: one function holding all three was compiled while
// the later loops had not run yet, then thrown out when they did and
// compiled again, on every audit after a full garbage collection.

/** The stored sizes of `count` nodes, or null where one is missing or cannot be a node. */
function sizesOf (tree: Uint8Array, count: number): Float64Array | null {
  const sizes = new Float64Array(count)
  for (let k = 0; k < count; k++) {
    const size = sizeAt(tree, k * TREE_NODE_SIZE)
    if (size < 0) return null
    sizes[k] = size
  }
  return sizes
}

/** How many held blocks of the run match their stored leaves; -1 when one does not. */
function leavesMatch (target: AuditTarget, tree: Uint8Array, lo: number, sizes: Float64Array, data: Uint8Array | null): number {
  const count = sizes.length
  let held = 0
  let at = 0
  for (let k = 0; k < count; k += 2) {
    const size = sizes[k]!
    if (target.has((lo + k) / 2)) {
      if (data === null || at + size > data.byteLength) return -1
      if (!leafMatchesInPlace(data, at, size, tree, k * TREE_NODE_SIZE + 8)) return -1
      held++
    }
    at += size
  }
  return held
}

/** Whether every stored parent of the run is its stored children's parent. */
function parentsMatch (tree: Uint8Array, sizes: Float64Array): boolean {
  const count = sizes.length
  for (let half = 1; 2 * half - 1 < count; half *= 2) {
    for (let k = 2 * half - 1; k < count; k += 4 * half) {
      const size = sizes[k]!
      if (sizes[k - half]! + sizes[k + half]! !== size) return false
      if (!parentMatchesAt(tree, size, (k - half) * TREE_NODE_SIZE + 8, (k + half) * TREE_NODE_SIZE + 8, k * TREE_NODE_SIZE + 8)) return false
    }
  }
  return true
}

/** Size of the stored node at byte `p`; -1 when it is missing or cannot be a node. */
function sizeAt (tree: Uint8Array, p: number): number {
  const size = readU64(tree, p)
  return size === 0 && storedNodeState(tree, p) === 'missing' ? -1 : size
}

