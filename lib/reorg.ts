/**
 * Following a peer to a higher fork, the core's side: the fork's signed tree
 * verified, the search for the common ancestors carried on (`ForkPoint`),
 * then our tree cut to them and the fork's adopted in one step under the
 * mutex. Which peer to ask and when is `fork-switch`'s business. Apart from
 * the core because it holds no state of its own and runs against the
 * core's public face plus the steps of its write order in `ReorgHost`.
 */
import { ForkPoint } from './fork-point'
import { crossingParents } from './tree-lookups'
import { wrapWrite } from './block-writer'
import { INVALID_OPERATION, INVALID_PROOF } from './errors'
import type { Core } from './core'
import type { Proof } from './proof'
import type { TreeState } from './tree-batch'
import type { DataMessage, Manifest } from './messages'

/** A peer's fork, verified, and where it leaves our tree (see `verifyFork`). */
export interface VerifiedFork {
  point: ForkPoint
  /** Our epoch when the search began: a truncation since makes it stale. */
  epoch: number
}

/** What a reorg needs of its core beyond the core's public face. */
export interface ReorgHost {
  readonly core: Core
  /** Writes the header for `state`: the commit point. */
  commit (state: TreeState): Promise<void>
  /** Makes `manifest` (checked to hash to our key) ours, durably. */
  adoptManifest (manifest: Manifest): Promise<void>
  /** Under the mutex, before the tree changes shape: what was checked against it goes stale. */
  leaveTree (): void
  /** Blocks from `length` on are no longer held (in memory: the caller writes the bits). */
  cutHeld (length: number): void
  /** The tree was cut to `length` and moved to `fork`. */
  truncated (length: number, fork: number): void
}

/**
 * Checks a peer's proof of a higher fork (a signed tree from length 0, as
 * Hypercore 11 asks for it) and starts the search for where it leaves our
 * tree. Throws INVALID_PROOF / INVALID_SIGNATURE for a bad proof; stores
 * nothing but a manifest we lacked (it hashes to our key).
 */
export async function verifyFork (host: ReorgHost, data: DataMessage): Promise<VerifiedFork> {
  const core = host.core
  const epoch = core.epoch
  if (data.fork <= core.tree.fork) throw INVALID_OPERATION('Fork ' + data.fork + ' is not above ours (' + core.tree.fork + ')')
  if (data.upgrade === null || data.upgrade.start !== 0 || data.upgrade.length === 0) {
    throw INVALID_PROOF('A fork proof upgrades from length 0')
  }
  const batch = core.verifyFullyRemote(data as Proof)
  if (core.manifest === null && data.manifest !== null) {
    await core.mutex.run(async () => {
      if (core.manifest === null) await host.adoptManifest(data.manifest!)
    })
  }
  const point = await ForkPoint.start(batch, core.tree.length, i => core.tree.getNode(i))
  return { point, epoch }
}

/** Takes a hash proof that carries a fork search further (see `ForkPoint.update`). */
export async function continueFork (core: Core, fork: VerifiedFork, data: DataMessage): Promise<void> {
  if (fork.epoch !== core.epoch) return
  await fork.point.update(data, i => core.tree.getNode(i))
}

/**
 * Moves to a verified higher fork: truncates to the common ancestor length
 * and adopts the fork's signed tree, atomically under the mutex. Resolves
 * false, changing nothing, when the search went stale (we truncated or
 * moved meanwhile) or is not finished.
 *
 * Crash order: the bits and nodes past the ancestors go first (under the
 * old header that reads as blocks and nodes gone missing: at worst a
 * reopen in repair mode, never a block of the other fork), then the header
 * of the new fork, then its nodes (a reopen before they land is in repair
 * mode on the new fork, healed from the peers that have it).
 */
export async function reorg (host: ReorgHost, fork: VerifiedFork): Promise<boolean> {
  const core = host.core
  const { tree, storage, bitfield } = core
  await core.mutex.lock()
  try {
    const { point } = fork
    const batch = point.batch
    if (fork.epoch !== core.epoch || !point.finished || batch.fork <= tree.fork) return false

    const oldLength = tree.length
    const ancestors = Math.min(point.ancestors, oldLength, batch.length)
    let dataEnd: number | null = null
    try {
      dataEnd = await tree.verifiedOffset(2 * ancestors)
    } catch {
      // A sparse tree may not know where the block lies: the bytes past it stay, unreferenced.
    }
    if (core.onbeforetruncate !== null) await core.onbeforetruncate(ancestors, oldLength)
    host.leaveTree()
    host.cutHeld(ancestors)
    try {
      await Promise.all([
        storage.writeBitfield(bitfield.takeDirty()),
        storage.deleteNodeRange(2 * ancestors, Infinity),
        storage.deleteNodes(crossingParents(ancestors, Math.max(oldLength, batch.length)))
      ])
      await host.commit(batch)
    } catch (err) {
      tree.forget()
      throw wrapWrite(err)
    }

    tree.stage(batch.nodes)
    tree.setState({ roots: batch.roots, length: batch.length, byteLength: batch.byteLength, fork: batch.fork, signature: batch.signature })
    core.repairMode = false
    try {
      await Promise.all([
        storage.putNodes(batch.nodes),
        dataEnd === null ? null : storage.truncateData(dataEnd)
      ])
    } catch (err) {
      // The header is on the new fork; without its nodes on disk a reopen repairs them from peers.
      throw wrapWrite(err)
    } finally {
      tree.unstage(batch.nodes)
    }
    host.truncated(ancestors, batch.fork)
    return true
  } finally {
    core.mutex.unlock()
  }
}
