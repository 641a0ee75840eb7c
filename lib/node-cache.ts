/**
 * A bounded cache of tree nodes in front of the tree file, in flat typed
 * arrays: 48 bytes a slot (index, size, hash), no object or Map entry per
 * node, so it costs the same whether it holds ten nodes or a hundred
 * thousand, and nothing for the garbage collector to walk.
 *
 * Direct-mapped: node i lives in slot i mod the slot count, and a node
 * landing on a taken slot replaces what was there. Nodes near each other in
 * the tree (what a read, a proof or a download touches together) take
 * neighbouring slots, so they do not push each other out.
 *
 * Each entry has a grade: STORED (as the tree file holds it, which rot may
 * have changed) or VERIFIED (tied by hashes to the signed roots). A lookup
 * asks for a least grade; a verified node is also a good answer to "what is
 * stored". Nodes handed out are copies: a slot reused later never changes a
 * node someone holds.
 */
import type { TreeNode } from './tree-node'

export const STORED = 1
export const VERIFIED = 2
export type Grade = typeof STORED | typeof VERIFIED

const MIN_SLOTS = 1024
const MAX_SLOTS = 1 << 16

/** Slots for a tree of `length` blocks: about one per block (half its nodes), within bounds. */
export function slotsFor (length: number): number {
  let slots = MIN_SLOTS
  while (slots < length && slots < MAX_SLOTS) slots *= 2
  return slots
}

export class NodeCache {
  #mask = 0
  /** index + 1 of the node in each slot; 0 = empty. */
  #keys = new Float64Array(0)
  #sizes = new Float64Array(0)
  #grades = new Uint8Array(0)
  #hashes = new Uint8Array(0)

  constructor (slots = MIN_SLOTS) {
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
      const to = (keys[s]! - 1) & this.#mask
      this.#keys[to] = keys[s]!
      this.#sizes[to] = sizes[s]!
      this.#grades[to] = grades[s]!
      this.#hashes.set(hashes.subarray(32 * s, 32 * s + 32), 32 * to)
    }
  }

  #slot (index: number, grade: Grade): number {
    const s = index & this.#mask
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
    return { index, size: this.#sizes[s]!, hash: this.#hashes.slice(32 * s, 32 * s + 32) }
  }

  /** Whether the cached node (of at least `grade`) is `node`; undefined when none is cached. */
  matches (node: TreeNode, grade: Grade): boolean | undefined {
    const s = this.#slot(node.index, grade)
    if (s === -1) return undefined
    if (this.#sizes[s] !== node.size) return false
    const h = this.#hashes
    const x = node.hash
    const at = 32 * s
    for (let k = 0; k < 32; k++) if (h[at + k] !== x[k]) return false
    return true
  }

  set (node: TreeNode, grade: Grade): void {
    const s = node.index & this.#mask
    // Reading a node back from disk does not make a verified one unverified.
    if (grade === STORED && this.#keys[s] === node.index + 1 && this.#grades[s] === VERIFIED) return
    this.#keys[s] = node.index + 1
    this.#sizes[s] = node.size
    this.#grades[s] = grade
    this.#hashes.set(node.hash, 32 * s)
  }

  delete (index: number): void {
    const s = index & this.#mask
    if (this.#keys[s] === index + 1) this.#keys[s] = 0
  }

  clear (): void {
    this.#keys.fill(0)
  }
}
