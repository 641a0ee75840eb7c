/** A node of the flat-tree Merkle tree: leaves are even indices, parents odd. */
export interface TreeNode {
  /** Flat-tree index. */
  index: number
  /** Total byte size of the blocks below this node. */
  size: number
  /** 32-byte BLAKE2b hash. */
  hash: Uint8Array
}
