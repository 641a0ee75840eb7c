/**
 * Asking peers on our fork for a longer tree: one upgrade request at a time,
 * to the least loaded peer that offers more than we hold, with the first
 * block we will want after it when the peer can take that. A peer that
 * failed to upgrade us (refused, timed out, sent no upgrade) is not asked
 * again until its length moves. Apart from the replicator because this
 * memory and the rule for whom to ask are their own; the replicator hands
 * over the answers' outcomes and asks whether an upgrade is under way.
 */
import type { Core } from './core'
import type { Peer } from './peer'
import type { InflightRequests, Request } from './inflight-requests'
import type { BlockScheduler } from './block-scheduler'

/** What upgrades need from the replicator. */
export interface UpgradeHost {
  readonly core: Core
  readonly inflight: InflightRequests
  readonly blocks: BlockScheduler
}

export class Upgrades {
  readonly #host: UpgradeHost
  /** Upgrade answers being verified and applied: no other is asked for meanwhile. */
  #applying = 0
  /** Peers that refused an upgrade asked for with a block (see `#blockWith`). */
  readonly #plain = new WeakSet<Peer>()
  /** Per peer, the length it failed to upgrade us to. */
  readonly #failed = new WeakMap<Peer, number>()

  constructor (host: UpgradeHost) {
    this.#host = host
  }

  /** An upgrade is asked for or being applied. */
  get busy (): boolean {
    return this.#host.inflight.upgrade !== null || this.#applying > 0
  }

  /** `p` is on our fork with a longer tree, which it has not failed to give us. */
  offers (p: Peer): boolean {
    const core = this.#host.core
    return p.remoteFork === core.fork && p.remoteLength > core.length && (this.#failed.get(p) ?? -1) < p.remoteLength
  }

  /** Asks a peer that offers a longer tree for it, unless one is asked for or being applied already. */
  ask (): void {
    const { core, inflight, blocks } = this.#host
    if (this.busy || core.repairMode) return
    const peer = blocks.pickPeer(p => this.offers(p))
    if (peer === null) return
    const block = this.#blockWith(peer)
    inflight.send(peer, 'upgrade', block, {
      block: block === -1 ? null : { index: block, nodes: 0 },
      hash: null, seek: null,
      upgrade: { start: core.length, length: peer.remoteLength - core.length },
      manifest: core.manifest === null
    })
  }

  /**
   * The first new block we will want once an upgrade from `peer` lands, to
   * ask for with the upgrade in one request (as Hypercore 11 can): one
   * message each way instead of two, and the block's proof shares the
   * upgrade's nodes. -1 when none is wanted, the peer may not hold it, or it
   * refused such a request before (then upgrades are asked for alone).
   */
  #blockWith (peer: Peer): number {
    if (this.#plain.has(peer) || peer.remoteContiguous <= this.#host.core.length) return -1
    return this.#host.blocks.firstWanted(peer.remoteContiguous)
  }

  /** An answer with an upgrade is being verified and applied (until `onapplied`). */
  onapplying (): void {
    this.#applying++
  }

  onapplied (): void {
    this.#applying--
  }

  /** `peer` did not upgrade us (timed out, or answered without one): not asked again until its length moves. */
  failed (peer: Peer): void {
    this.#failed.set(peer, peer.remoteLength)
  }

  /** `peer` answered noData to upgrade request `req`. */
  onrefused (peer: Peer, req: Request): void {
    // Refused with a block attached: ask that peer for upgrades alone from now on.
    if (req.index !== -1) this.#plain.add(peer)
    else this.failed(peer)
  }
}
