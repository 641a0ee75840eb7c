/**
 * A bounded cache of tree nodes in front of the tree file, in flat typed
 * arrays: 48 bytes a slot (index, size, hash), no object or Map entry per
 * node, so it costs the same whether it holds ten nodes or a hundred
 * thousand, and nothing for the garbage collector to walk.
 *
 * Direct-mapped: node i lives in slot i mod the slot count, and a node
 * landing on a taken slot replaces what was there. Nodes near each other in
 * the tree (what a read, a proof or a download touches together) take
 * neighbouring slots, so they do not push each other out. Nodes of 16
 * blocks or more (one in 16) have a table of their own: the many low nodes
 * that reads and downloads stream through never push out the few high ones
 * every climb ends on, so a random read reads its 16-leaf window and stops
 * there, instead of reading a sibling for every level up to a root.
 *
 * Each entry has a grade: STORED (as the tree file holds it, which rot may
 * have changed) or VERIFIED (tied by hashes to the signed roots). A lookup
 * asks for a least grade; a verified node is also a good answer to "what is
 * stored". Nodes handed out are copies: a slot reused later never changes a
 * node someone holds.
 */
import { equalHashAt, type TreeNode } from './tree-node'

export const STORED = 1
export const VERIFIED = 2
export type Grade = typeof STORED | typeof VERIFIED

/**
 * Small: a Store opens and closes cores by the thousand, most of them a few
 * blocks long, and every table is allocated zeroed. At 1,024 slots the two
 * tables of every core opened were 100 KB (profiled: 333 ms of a
 * 4,000-core store's first sync); a table grows with its tree (`fit`).
 */
const MIN_SLOTS = 16
/**
 * The low table holds a whole tree of up to 131,072 blocks (262,144 slots
 * of 49 bytes with the grade, 12 MiB), so a writer serving such a core to
 * one reader after another reads and re-verifies no tree node from disk
 * after the first. Measured on `download-100k` (two processes each, best
 * rounds): 92,713 and 88,960 blocks/s with 65,536 slots, 99,423 and 94,621
 * with 262,144; 131,072, which holds two thirds of that tree, gained
 * nothing (direct-mapped, the last third overwrites the first).
 */
const MAX_LOW_SLOTS = 1 << 18
/** High nodes are one in 16: this many cover a tree of 524,288 blocks. */
const MAX_HIGH_SLOTS = 1 << 16

/** At least `count` slots (a power of two), within `[MIN_SLOTS, max]`. */
export function slotsFor (count: number, max: number): number {
  let slots = MIN_SLOTS
  while (slots < count && slots < max) slots *= 2
  return slots
}

/** Nodes of depth 4 or more (16 blocks or more) end in four one-bits. */
function isHigh (index: number): boolean {
  return (index & 15) === 15
}

export class NodeCache {
  readonly #low: Table
  readonly #high: Table

  /** Sized for a tree of `length` blocks (see `fit`). */
  constructor (length = 0) {
    this.#low = new Table(slotsFor(2 * length, MAX_LOW_SLOTS), 1)
    this.#high = new Table(slotsFor(length / 8, MAX_HIGH_SLOTS), 16)
  }

  /** Resizes for a tree of `length` blocks: a slot for every low node, two for every high one (up to the bound). */
  fit (length: number): void {
    this.#low.resize(slotsFor(2 * length, MAX_LOW_SLOTS))
    this.#high.resize(slotsFor(length / 8, MAX_HIGH_SLOTS))
  }

  has (index: number, grade: Grade): boolean {
    return (isHigh(index) ? this.#high : this.#low).has(index, grade)
  }

  size (index: number, grade: Grade): number {
    return (isHigh(index) ? this.#high : this.#low).size(index, grade)
  }

  get (index: number, grade: Grade): TreeNode | undefined {
    return (isHigh(index) ? this.#high : this.#low).get(index, grade)
  }

  /** `get` written into `into` (its hash overwritten) instead of a fresh node; false when not cached. */
  copyInto (index: number, grade: Grade, into: TreeNode): boolean {
    return (isHigh(index) ? this.#high : this.#low).copyInto(index, grade, into)
  }

  matches (node: TreeNode, grade: Grade): boolean | undefined {
    return (isHigh(node.index) ? this.#high : this.#low).matches(node, grade)
  }

  set (node: TreeNode, grade: Grade): void {
    (isHigh(node.index) ? this.#high : this.#low).set(node, grade)
  }

  delete (index: number): void {
    (isHigh(index) ? this.#high : this.#low).delete(index)
  }

  clear (): void {
    this.#low.clear()
    this.#high.clear()
  }
}

/** One direct-mapped table: node i in slot floor(i / spread) mod the slot count. */
class Table {
  #mask = 0
  /** index + 1 of the node in each slot; 0 = empty. */
  #keys = new Float64Array(0)
  #sizes = new Float64Array(0)
  #grades = new Uint8Array(0)
  #hashes = new Uint8Array(0)

  /** `spread`: the distance between indices the table holds (16 for high nodes: one index in 16 is one). */
  constructor (slots: number, private readonly spread: number) {
    this.resize(slots)
  }

  get slots (): number {
    return this.#keys.length
  }

  /** Changes the slot count (a power of two), keeping what fits. */
  resize (slots: number): void {
    if (slots === this.#keys.length) return
    const { keys, sizes, grades, hashes } = { keys: this.#keys, sizes: this.#sizes, grades: this.#grades, hashes: this.#hashes }
    this.#mask = slots - 1
    this.#keys = new Float64Array(slots)
    this.#sizes = new Float64Array(slots)
    this.#grades = new Uint8Array(slots)
    this.#hashes = new Uint8Array(32 * slots)
    for (let s = 0; s < keys.length; s++) {
      if (keys[s] === 0) continue
      const to = this.#slotOf(keys[s]! - 1)
      this.#keys[to] = keys[s]!
      this.#sizes[to] = sizes[s]!
      this.#grades[to] = grades[s]!
      this.#hashes.set(hashes.subarray(32 * s, 32 * s + 32), 32 * to)
    }
  }

  #slotOf (index: number): number {
    // `&` keeps the low 32 bits of an index past 2^32, which is all the mask looks at.
    return (this.spread === 1 ? index : Math.floor(index / this.spread)) & this.#mask
  }

  #slot (index: number, grade: Grade): number {
    const s = this.#slotOf(index)
    return this.#keys[s] === index + 1 && this.#grades[s]! >= grade ? s : -1
  }

  has (index: number, grade: Grade): boolean {
    return this.#slot(index, grade) !== -1
  }

  /** Size of the cached node, or -1. */
  size (index: number, grade: Grade): number {
    const s = this.#slot(index, grade)
    return s === -1 ? -1 : this.#sizes[s]!
  }

  /** A copy of the cached node, or undefined. */
  get (index: number, grade: Grade): TreeNode | undefined {
    const s = this.#slot(index, grade)
    if (s === -1) return undefined
    const node = { index, size: 0, hash: new Uint8Array(32) }
    this.#copy(s, node)
    return node
  }

  copyInto (index: number, grade: Grade, into: TreeNode): boolean {
    const s = this.#slot(index, grade)
    if (s === -1) return false
    into.index = index
    this.#copy(s, into)
    return true
  }

  /** Slot `s`'s size and hash into `node`. Byte by byte: slice() of a typed array costs several times more in V8. */
  #copy (s: number, node: TreeNode): void {
    const hash = node.hash
    const h = this.#hashes
    for (let k = 0, at = 32 * s; k < 32; k++, at++) hash[k] = h[at]!
    node.size = this.#sizes[s]!
  }

  /** Whether the cached node (of at least `grade`) is `node`; undefined when none is cached. */
  matches (node: TreeNode, grade: Grade): boolean | undefined {
    const s = this.#slot(node.index, grade)
    if (s === -1) return undefined
    return this.#sizes[s] === node.size && equalHashAt(this.#hashes, 32 * s, node.hash)
  }

  set (node: TreeNode, grade: Grade): void {
    const s = this.#slotOf(node.index)
    // Reading a node back from disk does not make a verified one unverified.
    if (grade === STORED && this.#keys[s] === node.index + 1 && this.#grades[s] === VERIFIED) return
    this.#keys[s] = node.index + 1
    this.#sizes[s] = node.size
    this.#grades[s] = grade
    this.#hashes.set(node.hash, 32 * s)
  }

  delete (index: number): void {
    const s = this.#slotOf(index)
    if (this.#keys[s] === index + 1) this.#keys[s] = 0
  }

  clear (): void {
    this.#keys.fill(0)
  }
}
