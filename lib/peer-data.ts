/**
 * Data from peers: verified first, stored after, never the other way round.
 * A peer's data message is checked against our tree and key (`verifyData`,
 * or `verifyBlockNow` without waiting for the common block proof), and only
 * what checked out is stored: an upgrade committed under the mutex, a block
 * queued for the block writer, the nodes of a hash or seek proof kept. A
 * proof sent unasked is looked at for a conflict (`checkConflict`).
 * Apart from the core because none of it is the core's own state: it runs
 * against the core's public face plus the few steps of its write order
 * handed over in `PeerDataHost`, and holds no state between calls.
 */
import b4a from 'b4a'
import { inTree } from './flat-tree'
import { verifyAgainst, verifyTree, type Proof } from './proof'
import { unanchored } from './tree-lookups'
import { wrapWrite } from './block-writer'
import { INVALID_OPERATION, INVALID_PROOF, INVALID_SIGNATURE, isCoded } from './errors'
import type { Core } from './core'
import type { Verifier } from './verifier'
import type { TreeBatch, TreeState } from './tree-batch'
import type { TreeNode } from './tree-node'
import type { DataMessage, Manifest } from './messages'

/** A peer's data message checked against our tree; nothing stored yet. */
export interface VerifiedData {
  /** Our tree grown by the message's upgrade, or null without one. */
  upgrade: TreeBatch | null
  block: { index: number, value: Uint8Array } | null
  /** Every node the message proved. */
  nodes: TreeNode[]
  /** Our length and fork the check was made against. */
  baseLength: number
  baseFork: number
  /** Our epoch (count of truncations and reorgs) the check was made against. */
  epoch: number
}

/** What taking in a peer's data needs of its core beyond the core's public face. */
export interface PeerDataHost {
  readonly core: Core
  readonly verifier: Verifier
  /** Writes the header for `state`: the commit point, always written last. */
  commit (state: TreeState): Promise<void>
  /** Makes `manifest` (checked to hash to our key) ours, durably. */
  adoptManifest (manifest: Manifest): Promise<void>
  /** The tree grew (an upgrade was committed). */
  appended (): void
}

/**
 * Checks a peer's data message against our tree and key. Throws a coded
 * error (INVALID_PROOF, INVALID_SIGNATURE, INVALID_OPERATION when it needs
 * a node we lack) and stores nothing.
 */
export async function verifyData (host: PeerDataHost, data: DataMessage): Promise<VerifiedData> {
  const { core, verifier } = host
  const tree = core.tree
  const baseLength = tree.length
  const baseFork = tree.fork
  const epoch = core.epoch
  if (data.fork !== baseFork) throw INVALID_OPERATION('Data is for fork ' + data.fork + ', we are on ' + baseFork)
  const manifest = verifier.manifestFor(data.manifest)
  if (manifest === null) throw INVALID_PROOF('The manifest of this core is not known yet')

  // Anchored in verified nodes only: a rotten node of ours must not make an
  // honest peer look hostile. In repair mode nothing is checked against the
  // signature yet, so nothing anchors: MISSING_NODE asks for the tree first.
  const batch = await verifyAgainst(core.repairMode ? unanchored(tree) : tree.verified, data as Proof)
  if (data.upgrade !== null) {
    if (!verifier.verify(manifest, batch.hash(), batch.length, batch.fork, batch.signature)) {
      throw INVALID_SIGNATURE('Upgrade signature does not verify')
    }
  }
  if (verifier.manifest === null) await host.adoptManifest(manifest)
  const block = data.block === null ? null : { index: data.block.index, value: data.block.value }
  return { upgrade: data.upgrade === null ? null : batch, block, nodes: batch.nodes, baseLength, baseFork, epoch }
}

/**
 * `verifyData` for the common case, without waiting: a block proof (no
 * upgrade, hash or seek) on our fork whose path ends in a verified node at
 * hand. Null when the proof takes more than that (then `verifyData`);
 * 'unanchored' when its path ends in a node we do not hold (verifyData
 * would throw MISSING_NODE: asked with too few nodes); throws
 * INVALID_PROOF like `verifyData`. Stores nothing.
 */
export function verifyBlockNow (core: Core, data: DataMessage): VerifiedData | 'unanchored' | null {
  const tree = core.tree
  if (data.block === null || data.upgrade !== null || data.hash !== null || data.seek !== null) return null
  if (core.repairMode || core.manifest === null || data.fork !== tree.fork) return null
  const nodes: TreeNode[] = []
  const result = { anchored: false }
  // The path must end in a node we trust: one verifyTree compared (it throws on a mismatch).
  verifyTree(data as Proof, nodes, tree, result)
  if (!result.anchored) return 'unanchored'
  return { upgrade: null, block: data.block, nodes, baseLength: tree.length, baseFork: tree.fork, epoch: core.epoch }
}

/**
 * Stores what `verifyData` checked. Returns false when our tree moved on in
 * between in a way that makes the check stale (then nothing is stored).
 */
export async function applyData (host: PeerDataHost, v: VerifiedData): Promise<boolean> {
  const core = host.core
  if (v.epoch !== core.epoch) return false
  if (v.upgrade !== null) {
    const applied = await applyUpgrade(host, v)
    if (!applied) return false
  } else if (core.tree.fork !== v.baseFork) {
    return false
  }
  if (v.block !== null) return storeBlock(core, v.block.index, v.block.value, v.nodes, v.epoch)
  if (v.upgrade === null && v.nodes.length > 0) return storeNodes(core, v.nodes, v.epoch)
  return true
}

/** `Core.queueBlock` as a promise: whether the block was stored (false: its tree went stale). */
function storeBlock (core: Core, index: number, value: Uint8Array, nodes: TreeNode[], epoch: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    core.queueBlock(index, value, nodes, epoch, false, (err, stored) => err !== null ? reject(err) : resolve(stored))
  })
}

/**
 * Looks at a fully remote proof a peer sent unasked, as Hypercore 11 does:
 * 'conflict' when it is signed by our signers for a length we hold on our
 * fork, yet proves another tree than ours (the signer signed two trees);
 * 'invalid' when its signature does not verify; 'none' otherwise.
 */
export async function checkConflict (core: Core, proof: Proof): Promise<'conflict' | 'invalid' | 'none'> {
  const tree = core.tree
  if (proof.upgrade === null || proof.fork !== tree.fork || proof.upgrade.length > tree.length) return 'none'
  if (core.manifest === null || core.repairMode) return 'none'
  let batch: TreeBatch
  try {
    batch = core.verifyFullyRemote(proof)
  } catch (err) {
    if (isCoded(err)) return 'invalid'
    throw err
  }
  let ours: Uint8Array
  try {
    ours = await core.treeHash(batch.length)
  } catch (err) {
    if (isCoded(err)) return 'none' // we cannot tell our own tree at that length: nothing to compare
    throw err
  }
  return b4a.equals(ours, batch.hash()) ? 'none' : 'conflict'
}

/** Keeps the nodes of a hash or seek proof (checked against our tree), so reads and seeks can use them. */
async function storeNodes (core: Core, nodes: TreeNode[], epoch: number): Promise<boolean> {
  await core.mutex.lock()
  try {
    if (epoch !== core.epoch) return false
    const fresh = nodes.filter(n => inTree(n.index, core.tree.length))
    try {
      await core.storage.putNodes(fresh)
    } catch (err) {
      throw wrapWrite(err)
    }
    // Checked against our verified tree before they got here: trusted as such.
    for (const n of fresh) core.tree.trust(n)
    return true
  } finally {
    core.mutex.unlock()
  }
}

async function applyUpgrade (host: PeerDataHost, v: VerifiedData): Promise<boolean> {
  const core = host.core
  const batch = v.upgrade!
  await core.mutex.lock()
  try {
    const tree = core.tree
    if (v.epoch !== core.epoch) return false
    if (tree.fork !== v.baseFork || tree.length !== v.baseLength) {
      // Someone else upgraded us meanwhile: fine if it got us at least as far.
      return tree.fork === batch.fork && tree.length >= batch.length
    }
    if (core.repairMode) return false
    if (batch.length <= tree.length) return true // nothing new
    tree.stage(v.nodes)
    try {
      await core.storage.putNodes(v.nodes)
      await host.commit(batch)
    } catch (err) {
      tree.unstage(v.nodes)
      tree.forget(v.nodes.map(n => n.index))
      throw wrapWrite(err)
    }
    tree.setState({ roots: batch.roots, length: batch.length, byteLength: batch.byteLength, fork: batch.fork, signature: batch.signature })
    tree.unstage(v.nodes)
    host.appended()
    return true
  } finally {
    core.mutex.unlock()
  }
}
