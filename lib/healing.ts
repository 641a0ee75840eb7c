/**
 * Healing a core: tree nodes put back from a peer's proof (`repair`), and
 * what an audit of the disk found applied (`audit`): rotten nodes rewritten
 * or dropped, rotten blocks cleared, blocks that cannot be tied to the
 * roots marked. Both enter and leave repair mode. Which nodes a proof may
 * restore is `repair.ts`'s call and what an audit finds is `audit.ts`'s;
 * this is the part that changes the core. Apart from the core because it
 * holds no state of its own and runs against the core's public face plus
 * the steps of its write order in `HealingHost`.
 */
import b4a from 'b4a'
import { planRepair } from './repair'
import { audit as auditTree, type AuditReport } from './audit'
import { runs, type BlockReader } from './block-reader'
import { INVALID_PROOF, STORAGE_CORRUPT, WRITE_FAILED, isCoded } from './errors'
import type { Core } from './core'
import type { Emit } from './core-events'
import type { Verifier } from './verifier'
import type { Proof } from './proof'
import type { Manifest } from './messages'
import { copyNode, type TreeNode } from './tree-node'

/** What healing needs of its core beyond the core's public face. */
export interface HealingHost {
  readonly core: Core
  readonly verifier: Verifier
  readonly reader: BlockReader
  readonly emit: Emit
  /** Makes `manifest` (checked to hash to our key) ours, durably. */
  adoptManifest (manifest: Manifest): Promise<void>
  /** Leaves repair mode with `roots`, checked against our signature, as the tree's. */
  restoreRoots (roots: TreeNode[]): Promise<void>
  /** After this, nothing needs checking on the next open (blocks may be cleared). */
  settle (): Promise<void>
  /** Block `index` is not held (or not good): the contiguous length stops there. */
  lowerContiguous (index: number): void
}

/**
 * Restores tree nodes from a verified proof. Atomic: on any failure the
 * tree file is left as it was. Leaves repair mode once every root is back.
 * Resolves true when the proof's nodes are now part of our tree.
 */
export async function repair (host: HealingHost, proof: Proof): Promise<boolean> {
  const { core, verifier } = host
  await core.mutex.lock()
  host.emit('repairing', proof)
  try {
    const batch = verifier.verifyFullyRemote(proof)
    if (core.manifest === null && proof.manifest !== null) await host.adoptManifest(proof.manifest)

    const plan = await planRepair({
      length: core.tree.length,
      stored: i => core.storage.getNode(i),
      signs: roots => verifier.signs(roots, core.tree)
    }, batch.nodes)
    if (plan.accepted === 0) throw INVALID_PROOF('No node of the proof can be tied to the signed tree')

    if (plan.write.length > 0) await writeRepair(host, plan.write, plan.roots)

    if (core.repairMode) await host.restoreRoots(plan.roots)
    host.reader.unmarkAll(core.tree.length)
    host.emit('repaired', proof)
    return true
  } catch (err) {
    host.emit('repair-failed', err as Error)
    if (!isCoded(err)) throw err
    return false
  } finally {
    core.mutex.unlock()
  }
}

async function writeRepair (host: HealingHost, nodes: TreeNode[], roots: TreeNode[]): Promise<void> {
  const { storage, tree } = host.core
  const indices = nodes.map(n => n.index)
  const before = await storage.getNodes(indices)
  await storage.putNodes(nodes)
  tree.forget(indices)

  // Read back what the disk now holds and check it against the signature.
  const [after, rootsOnDisk] = await Promise.all([
    storage.getNodes(indices),
    storage.getNodes(roots.map(r => r.index))
  ])
  const landed = after.every((n, k) => n !== null && b4a.equals(n.hash, nodes[k]!.hash))
  const complete = rootsOnDisk.every(n => n !== null)
  if (landed && (!complete || host.verifier.signs(rootsOnDisk as TreeNode[], tree))) return

  const restore = before.filter((n): n is TreeNode => n !== null)
  const gone = indices.filter((_, k) => before[k] === null)
  await Promise.all([storage.putNodes(restore), storage.deleteNodes(gone)])
  tree.forget(indices)
  throw WRITE_FAILED('Repaired nodes did not read back as written')
}

/**
 * Checks every held block against its leaf and every stored node against
 * its parent, up to the signed roots. A rotten or lost node whose true value
 * can be recomputed from below it is rewritten; one that cannot is dropped
 * (a dropped root puts the core in repair mode). Corrupt blocks are cleared;
 * blocks that cannot be tied to the roots are marked unverified (not served,
 * fetched again on read). Garbage on disk only ever yields coded errors.
 */
export async function audit (host: HealingHost): Promise<AuditReport> {
  const { core, verifier } = host
  const { tree, storage, bitfield } = core
  await core.mutex.lock()
  try {
    const report = await auditTree({
      length: tree.length,
      byteLength: tree.byteLength,
      // Out of repair mode the roots in memory are the signed ones, whatever the disk says now.
      roots: core.repairMode ? null : tree.roots,
      readTree: (start, end) => storage.readTreeBytes(start, end),
      readData: (offset, size) => storage.readDataUpTo(offset, size),
      has: i => bitfield.get(i),
      firstHeld: i => bitfield.firstSet(i),
      signs: roots => verifier.signs(roots, tree)
    })
    const restored = report.restoredNodes.map(copyNode)
    if (restored.length > 0) {
      await storage.putNodes(restored)
      // trust() replaces whatever the cache held for these nodes.
      for (const n of restored) tree.trust(n)
    }
    if (report.droppedNodes.length > 0) {
      await storage.deleteNodes(report.droppedNodes)
      tree.forget(report.droppedNodes)
    }
    if (report.corruptBlocks.length > 0) {
      await host.settle()
      for (const i of report.corruptBlocks) bitfield.set(i, false)
      host.lowerContiguous(report.corruptBlocks[0]!)
      await storage.writeBitfield(bitfield.takeDirty())
    }
    // The marks are now exactly what this audit could not verify.
    host.reader.setMarks(report.unverifiedBlocks, tree.length)
    if (report.unverifiedBlocks.length > 0) host.lowerContiguous(report.unverifiedBlocks[0]!)

    if (report.droppedRoots.length > 0) {
      core.repairMode = true
      tree.setState({ ...tree.state(), roots: tree.roots.filter(r => !report.droppedRoots.includes(r.index)) })
      tree.forget()
    } else if (core.repairMode && report.roots !== null) {
      // Every root is back, recomputed from below and checked against the signature.
      await host.restoreRoots(report.roots.map(copyNode))
    }
    for (const [start, length] of runs([...report.corruptBlocks, ...report.unverifiedBlocks])) host.emit('drop', start, length, false)
    return report
  } catch (err) {
    if (isCoded(err)) throw err
    throw STORAGE_CORRUPT('Audit could not read the core: ' + (err instanceof Error ? err.message : String(err)))
  } finally {
    core.mutex.unlock()
  }
}
