/**
 * The tree file of a core: node i at byte 40·i, a uint64 LE size then the
 * 32-byte hash; 40 zero bytes = node missing (a fixed contract). The node
 * byte format, and reading, writing and zeroing runs of nodes.
 *
 * Apart from CoreStorage because it is the one file whose layout is indexed
 * arithmetic (runs of adjacent indices become single reads and writes), and
 * the audit reads the same format from raw bytes without a CoreStorage.
 */
import b4a from 'b4a'
import type { RandomAccessStorage } from 'random-access-storage'
import { BAD_ARGUMENT } from '../errors'
import type { TreeNode } from '../tree-node'
import { isBytes, isUint, pSize, pTruncate, pWrite, pWriteSoon, readUpTo, type Ready } from './file-io'
import { readU64, writeU64 } from '../uint-le'

export const TREE_NODE_SIZE = 40

/** Largest single zero-fill write when clearing tree nodes. */
const MAX_ZERO_WRITE = 1024 * 1024

function checkNode (node: TreeNode): void {
  if (typeof node !== 'object' || node === null || !isUint(node.index) || !isUint(node.size) || !isBytes(node.hash, 32)) {
    throw BAD_ARGUMENT('Tree node must be { index, size: non-negative integers, hash: 32 bytes }')
  }
}

function encodeNode (buf: Uint8Array, at: number, node: TreeNode): void {
  writeU64(buf, at, node.size)
  buf.set(node.hash, at + 8)
}

/** What 40 stored bytes hold: a node, nothing (all zero), or rot that cannot be a node. */
export type StoredNodeState = 'node' | 'missing' | 'rotten'

/**
 * Reads the 40 bytes at `at`. A size no core can have (2^53 or more) is rot
 * like a flipped hash bit, only easier to spot: such bytes never decode.
 */
export function storedNodeState (buf: Uint8Array, at: number): StoredNodeState {
  let zero = true
  for (let i = at; i < at + TREE_NODE_SIZE; i++) {
    if (buf[i] !== 0) { zero = false; break }
  }
  if (zero) return 'missing'
  return readU64(buf, at) === -1 ? 'rotten' : 'node'
}

/**
 * Decodes the node in the 40 bytes at `at`: null when all zero, and null when
 * its size is impossible (rotten bytes are no node; the audit drops them).
 */
export function decodeNode (buf: Uint8Array, at: number, index: number): TreeNode | null {
  if (storedNodeState(buf, at) !== 'node') return null
  return { index, size: readU64(buf, at), hash: buf.subarray(at + 8, at + TREE_NODE_SIZE) }
}

export class TreeFile {
  readonly #file: RandomAccessStorage
  readonly #ready: Ready

  constructor (file: RandomAccessStorage, ready: Ready) {
    this.#file = file
    this.#ready = ready
  }

  /** Node `index`, null when past the end of the file or all zero. */
  async getNode (index: number): Promise<TreeNode | null> {
    if (!isUint(index)) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
    const ready = this.#ready()
    if (ready !== null) await ready
    const buf = await readUpTo(this.#file, index * TREE_NODE_SIZE, TREE_NODE_SIZE)
    if (buf.byteLength < TREE_NODE_SIZE) return null
    return decodeNode(buf, 0, index)
  }

  /** Nodes for `indices` (in that order); runs of adjacent indices are read with one read each. */
  async getNodes (indices: number[]): Promise<Array<TreeNode | null>> {
    const out = new Array<TreeNode | null>(indices.length).fill(null)
    if (indices.length === 0) return out
    for (const i of indices) if (!isUint(i)) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
    const ready = this.#ready()
    if (ready !== null) await ready

    const order = indices.map((_, k) => k).sort((a, b) => indices[a] - indices[b])
    const reads: Array<Promise<void>> = []
    let k = 0
    while (k < order.length) {
      const first = indices[order[k]]
      let last = first
      let j = k + 1
      while (j < order.length && indices[order[j]] <= last + 1) last = indices[order[j++]]
      const slice = order.slice(k, j)
      reads.push(readUpTo(this.#file, first * TREE_NODE_SIZE, (last - first + 1) * TREE_NODE_SIZE).then((buf) => {
        for (const pos of slice) {
          const at = (indices[pos] - first) * TREE_NODE_SIZE
          out[pos] = at + TREE_NODE_SIZE <= buf.byteLength ? decodeNode(buf, at, indices[pos]) : null
        }
      }))
      k = j
    }
    await Promise.all(reads)
    return out
  }

  /** Writes nodes, one write (one buffer) per run of contiguous indices. */
  async putNodes (nodes: TreeNode[]): Promise<void> {
    if (nodes.length === 0) return
    let sorted = true
    for (let k = 0; k < nodes.length; k++) {
      checkNode(nodes[k])
      if (k > 0 && nodes[k].index <= nodes[k - 1].index) sorted = false
    }
    const list = sorted ? nodes : nodes.slice().sort((a, b) => a.index - b.index)
    const ready = this.#ready()
    if (ready !== null) await ready

    const writes: Array<Promise<void>> = []
    let k = 0
    while (k < list.length) {
      const first = list[k].index
      let j = k + 1
      while (j < list.length && list[j].index <= list[j - 1].index + 1) j++
      const count = list[j - 1].index - first + 1
      const buf = b4a.allocUnsafe(count * TREE_NODE_SIZE)
      // Duplicated indices: the later one in the (stable-sorted) list wins.
      for (let m = k; m < j; m++) encodeNode(buf, (list[m].index - first) * TREE_NODE_SIZE, list[m])
      writes.push(pWriteSoon(this.#file, first * TREE_NODE_SIZE, buf))
      k = j
    }
    await Promise.all(writes)
  }

  /** Zeroes the given nodes (those past the end of the file are already missing). */
  async deleteNodes (indices: number[]): Promise<void> {
    if (indices.length === 0) return
    for (const i of indices) if (!isUint(i)) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
    const ready = this.#ready()
    if (ready !== null) await ready
    const count = Math.ceil((await pSize(this.#file)) / TREE_NODE_SIZE)
    const list = indices.filter((i) => i < count).sort((a, b) => a - b)
    const writes: Array<Promise<void>> = []
    let k = 0
    while (k < list.length) {
      const first = list[k]
      let j = k + 1
      while (j < list.length && list[j] <= list[j - 1] + 1) j++
      writes.push(this.#zeroNodes(first, list[j - 1] + 1))
      k = j
    }
    await Promise.all(writes)
  }

  /** Zeroes nodes [start, end); truncates the file instead when the range reaches its end. */
  async deleteNodeRange (start: number, end: number): Promise<void> {
    if (!isUint(start) || !(end === Infinity || isUint(end)) || end < start) {
      throw BAD_ARGUMENT('Tree node range must be non-negative integers with start <= end')
    }
    const ready = this.#ready()
    if (ready !== null) await ready
    const size = await pSize(this.#file)
    if (start * TREE_NODE_SIZE >= size || start === end) return
    if (end === Infinity || end * TREE_NODE_SIZE >= size) {
      await pTruncate(this.#file, start * TREE_NODE_SIZE)
      return
    }
    await this.#zeroNodes(start, end)
  }

  async #zeroNodes (start: number, end: number): Promise<void> {
    const bytes = (end - start) * TREE_NODE_SIZE
    const zeros = b4a.alloc(Math.min(bytes, MAX_ZERO_WRITE - (MAX_ZERO_WRITE % TREE_NODE_SIZE)))
    const writes: Array<Promise<void>> = []
    for (let at = 0; at < bytes; at += zeros.byteLength) {
      const n = Math.min(zeros.byteLength, bytes - at)
      writes.push(pWrite(this.#file, start * TREE_NODE_SIZE + at, n === zeros.byteLength ? zeros : zeros.subarray(0, n)))
    }
    await Promise.all(writes)
  }

  /**
   * The raw bytes of nodes [start, end), in one read; shorter when the file
   * ends first. For scans (the audit); decode with `decodeNode`.
   */
  async readTreeBytes (start: number, end: number): Promise<Uint8Array> {
    if (!isUint(start) || !isUint(end) || end < start) throw BAD_ARGUMENT('Tree node range must be non-negative integers with start <= end')
    const ready = this.#ready()
    if (ready !== null) await ready
    const size = Math.min((end - start) * TREE_NODE_SIZE, Math.max(0, (await pSize(this.#file)) - start * TREE_NODE_SIZE))
    return readUpTo(this.#file, start * TREE_NODE_SIZE, size)
  }

  /** Tree file size / 40 (whole nodes). */
  async treeNodeCount (): Promise<number> {
    const ready = this.#ready()
    if (ready !== null) await ready
    return Math.floor((await pSize(this.#file)) / TREE_NODE_SIZE)
  }
}
