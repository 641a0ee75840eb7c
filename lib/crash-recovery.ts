/**
 * What a reopen does after a crash. An append writes its blocks, tree nodes,
 * bitfield bits and the new header all at once (one round trip to the disk,
 * not two), and the header says which blocks were in flight with it
 * (`hints.appendedFrom`). If the process died mid-append, the header may have
 * landed while some of the rest did not; so on open those blocks are hashed
 * and replayed into the tree, and only a tail that checks out completely is
 * kept. Otherwise the other header slot — the state before that append, whose
 * writes had all completed — is used.
 */
import b4a from 'b4a'
import { TreeBatch } from './tree-batch'
import { MerkleTree } from './merkle-tree'
import * as manifests from './manifest'
import type { CoreStorage, Header } from './storage'
import type { Manifest } from './messages'

export type TailVerdict = 'whole' | 'torn' | 'unknown'

/** True when this header was written alongside blocks a crash may have cut. */
export function hasOpenTail (h: Header): boolean {
  return h.hints !== undefined && h.hints.appendedFrom < h.tree.length
}

/**
 * Checks the blocks [appendedFrom, length) of `h` against its signature.
 * 'unknown' when the check cannot be made for reasons a crash does not cause
 * (tree nodes before the tail missing, no manifest): the header is kept.
 */
export async function checkTail (storage: CoreStorage, h: Header, manifest: Manifest | null): Promise<TailVerdict> {
  if (!hasOpenTail(h)) return 'whole'
  if (manifest === null) return 'unknown'
  const from = h.hints!.appendedFrom
  const { length, fork, byteLength, signature } = h.tree

  const before = await MerkleTree.loadRoots(storage, from)
  if (before.missing.length > 0) return 'unknown'
  const batch = new TreeBatch({ roots: before.roots, length: from, byteLength: 0, fork, signature: null })
  batch.byteLength = before.roots.reduce((s, r) => s + r.size, 0)

  const leafIndices: number[] = []
  for (let i = from; i < length; i++) leafIndices.push(2 * i)
  const leaves = await storage.getNodes(leafIndices)
  if (leaves.some(l => l === null)) return 'torn'
  const total = leaves.reduce((s, l) => s + l!.size, 0)
  if (batch.byteLength + total !== byteLength) return 'torn'

  let data: Uint8Array
  try {
    data = await storage.readData(batch.byteLength, total)
  } catch {
    return 'torn'
  }
  let at = 0
  for (const leaf of leaves) {
    batch.append(data.subarray(at, at + leaf!.size))
    at += leaf!.size
  }

  const stored = await storage.getNodes(batch.nodes.map(n => n.index))
  for (let k = 0; k < batch.nodes.length; k++) {
    const disk = stored[k]
    const want = batch.nodes[k]!
    if (disk === null || disk === undefined || disk.size !== want.size || !b4a.equals(disk.hash, want.hash)) return 'torn'
  }
  return manifests.verify(manifest, h.key, batch.hash(), length, fork, signature) ? 'whole' : 'torn'
}
