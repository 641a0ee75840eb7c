/**
 * What `info` reports about a core, and the one word for its state. The
 * state is the cautious reading: a copy is "healthy" only when its tree is
 * whole and nobody told us of a longer signed length it failed to reach.
 */
import type { Hypercore } from '../../lib/hypercore'
import { hex, z32 } from './core'
import { treeHealth, describeHealth, type TreeHealth } from './health'
import { knownRemoteLength } from './remote'

/**
 * - healthy: the tree is whole, every block held (or a writer's own core);
 * - partial: the tree is whole over the blocks held, some blocks not fetched (a sparse copy);
 * - behind: a peer announced a longer length than this copy could verify;
 * - empty: a copy that has verified nothing yet;
 * - damaged: repair mode, or tree nodes missing.
 */
export type CoreState = 'healthy' | 'partial' | 'behind' | 'empty' | 'damaged'

export interface CoreInfo {
  key: string
  /** The key as Hypercore's `id` (z-base-32). */
  id: string
  discoveryKey: string
  length: number
  byteLength: number
  contiguousLength: number
  fork: number
  writable: boolean
  repairMode: boolean
  blocks: number
  tree: {
    roots: number
    rootsPresent: number
    missingRoots: number[]
    expectedNodes: number
    missingNodes: number
    missing: number[]
  }
  /** The longest length a peer announced (unverified), or null when none is known. */
  remoteLength: number | null
  remoteLengthFrom: string | null
  state: CoreState
  /** True for 'healthy' and 'partial' only. */
  healthy: boolean
  /** The pid of the `nomadcore serve` this was asked of, or null when read from disk here. */
  servedBy: number | null
  /** Peers replicating with the serving process right now (0 when read from disk). */
  peers: number
  /** The tree summary line ("1/1 roots present, …"). */
  treeSummary: string
}

export function coreState (h: TreeHealth, repairMode: boolean, writable: boolean, remoteLength: number | null): CoreState {
  if (repairMode || h.missingNodes > 0) return 'damaged'
  if (remoteLength !== null && remoteLength > h.length) return 'behind'
  if (h.length === 0 && !writable) return 'empty'
  if (h.blocks < h.length) return 'partial'
  return 'healthy'
}

export async function collectInfo (core: Hypercore, dir: string, servedBy: number | null): Promise<CoreInfo> {
  const info = await core.info()
  const health = await treeHealth(core, dir)
  // The writer holds the secret key; `core.writable` also depends on how this process opened it.
  const writable = (core.keyPair?.secretKey ?? null) !== null
  const remote = knownRemoteLength(core, dir)
  const state = coreState(health, info.repairMode, writable, remote?.length ?? null)
  return {
    key: hex(info.key),
    id: z32(info.key),
    discoveryKey: hex(info.discoveryKey),
    length: info.length,
    byteLength: info.byteLength,
    contiguousLength: info.contiguousLength,
    fork: info.fork,
    writable,
    repairMode: info.repairMode,
    blocks: health.blocks,
    tree: {
      roots: health.roots.length,
      rootsPresent: health.roots.length - health.missingRoots.length,
      missingRoots: health.missingRoots,
      expectedNodes: health.expectedNodes,
      missingNodes: health.missingNodes,
      missing: health.missing
    },
    remoteLength: remote?.length ?? null,
    remoteLengthFrom: remote?.from ?? null,
    state,
    healthy: state === 'healthy' || state === 'partial',
    servedBy,
    peers: core.peers.length,
    treeSummary: describeHealth(health)
  }
}

/** The health line of `info`: the state, and what to do about it. */
export function describeState (i: CoreInfo, dir: string): string {
  switch (i.state) {
    case 'healthy':
      return 'healthy'
    case 'partial':
      return `healthy (a partial copy: ${i.blocks} of ${i.length} blocks)`
    case 'behind':
      return `BEHIND: ${i.remoteLengthFrom ?? 'a peer'} announced ${i.remoteLength} blocks, this copy verified ${i.length}: ` +
        `clone again from a peer that can prove its length (\`nomadcore clone ${i.key} ${dir} --connect HOST:PORT\`)`
    case 'empty':
      return `EMPTY: a copy with no verified blocks yet: \`nomadcore clone ${i.key} ${dir} --connect HOST:PORT\``
    case 'damaged':
      return `DAMAGED: run \`nomadcore repair ${dir} --connect HOST:PORT\` (or --proof FILE)`
  }
}
