import b4a from 'b4a'

/** A node of the flat-tree Merkle tree: leaves are even indices, parents odd. */
export interface TreeNode {
  /** Flat-tree index. */
  index: number
  /** Total byte size of the blocks below this node. */
  size: number
  /** 32-byte BLAKE2b hash. */
  hash: Uint8Array
}

/**
 * Whether two 32-byte hashes are equal. Unrolled over a fixed length: a
 * loop bounded by `byteLength` of mixed Buffer and Uint8Array arguments runs
 * about 20 times slower in V8 (measured), and this sits on every proof check.
 */
export function equalHashes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== 32 || b.byteLength !== 32) return false
  for (let i = 0; i < 32; i += 4) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2] || a[i + 3] !== b[i + 3]) return false
  }
  return true
}

/** Whether the 32 bytes at `buf[at]` are `hash` (a hash kept inside a larger buffer: a tree run, a cache table). */
export function equalHashAt (buf: Uint8Array, at: number, hash: Uint8Array): boolean {
  if (hash.byteLength !== 32) return false
  for (let k = 0; k < 32; k += 4, at += 4) {
    if (buf[at] !== hash[k] || buf[at + 1] !== hash[k + 1] || buf[at + 2] !== hash[k + 2] || buf[at + 3] !== hash[k + 3]) return false
  }
  return true
}

/** A node of its own: its hash copied out of whatever buffer (a receive chunk, a scratch node) it lies in. */
export function copyNode (node: TreeNode): TreeNode {
  return { index: node.index, size: node.size, hash: b4a.from(node.hash) }
}

/** Whether two nodes have the same size and hash. */
export function sameNode (a: TreeNode, b: TreeNode): boolean {
  return a.size === b.size && equalHashes(a.hash, b.hash)
}
