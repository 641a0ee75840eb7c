/**
 * Taking what a received message leaves behind for long out of the buffer
 * it arrived in (Hypercore 11 calls this unslabbing): a 32-byte view keeps
 * the whole receive chunk (kilobytes) alive as long as it lives.
 */
import b4a from 'b4a'
import type { DataMessage } from './messages'
import type { TreeNode } from './tree-node'

/**
 * Copies what a data message leaves behind for long (upgrade roots, the
 * signature, every node hash, which the tree may keep as roots) out of the
 * receive buffer, in one allocation, so they do not pin the buffer they
 * arrived in. Block bytes are written to disk and let go; they stay views.
 */
export function unslabProof (data: DataMessage): void {
  const lists: TreeNode[][] = []
  if (data.block !== null) lists.push(data.block.nodes)
  if (data.hash !== null) lists.push(data.hash.nodes)
  if (data.seek !== null) lists.push(data.seek.nodes)
  if (data.upgrade !== null) lists.push(data.upgrade.nodes, data.upgrade.additionalNodes)
  let size = data.upgrade?.signature?.byteLength ?? 0
  for (const list of lists) size += 32 * list.length
  if (size === 0) return
  const copy = b4a.allocUnsafeSlow(size)
  let at = 0
  for (const list of lists) {
    for (const node of list) {
      copy.set(node.hash, at)
      node.hash = copy.subarray(at, at += 32)
    }
  }
  const signature = data.upgrade?.signature ?? null
  if (signature !== null) {
    copy.set(signature, at)
    data.upgrade!.signature = copy.subarray(at, at + signature.byteLength)
  }
}
