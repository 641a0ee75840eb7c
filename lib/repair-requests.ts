/**
 * Asking peers for the proofs that heal our tree: a proof of our whole
 * length when roots are missing (repair mode), and a proof for each node we
 * ought to hold but lost (found while serving, reading or auditing), tried
 * peer after peer until one answers. Apart from the replicator because it is
 * its own policy (whom to ask, when to ask again) with its own memory; the
 * answers are verified and applied by the core (`Core.repair`).
 */
import { Iterator } from './flat-tree'
import { treeNodeProofRequest } from './fully-remote-proof'
import type { Core } from './core'
import type { Peer } from './peer'
import type { InflightRequests } from './inflight-requests'

/** What repair requests need from the replicator. */
export interface RepairHost {
  readonly core: Core
  readonly peers: readonly Peer[]
  readonly inflight: InflightRequests
  /** The least loaded peer that passes `ok`, or null. */
  pickPeer (ok: (p: Peer) => boolean): Peer | null
}

export class RepairRequests {
  readonly #host: RepairHost
  /** Nodes we ought to hold but lost; asked for again as peers come. */
  readonly #lost = new Set<number>()
  /** Peers already asked for a lost node, so a refusal moves on to the next. */
  readonly #tries = new Map<number, Set<Peer>>()
  /**
   * Lost nodes whose proof arrived and waits for the core's lock: not asked
   * for again meanwhile, or every read that finds the node missing would
   * queue one more proof behind the lock.
   */
  readonly #applying = new Set<number>()

  constructor (host: RepairHost) {
    this.#host = host
  }

  /** Asks every peer for a proof of our length, to restore missing roots. */
  recoverAll (): void {
    for (const peer of this.#host.peers) this.recoverFrom(peer)
  }

  recoverFrom (peer: Peer): void {
    const { core, inflight } = this.#host
    if (!peer.remoteOpened || peer.remoteFork !== core.fork || peer.remoteLength < core.length || core.length === 0) return
    for (const req of inflight.values()) if (req.kind === 'repair' && req.peer === peer) return
    inflight.send(peer, 'repair', -1, { block: null, hash: null, seek: null, upgrade: { start: 0, length: core.length }, manifest: core.manifest === null })
  }

  /** A peer opened or synced: it may have what we lack. */
  onpeer (peer: Peer): void {
    if (this.#host.core.repairMode) this.recoverFrom(peer)
    for (const index of this.#lost) if (!this.#host.inflight.hasNode(index)) this.#ask(index, new Set())
  }

  /**
   * A node we lack turned up while serving or reading. If it is one we ought
   * to hold (we hold a block beneath it or its sibling — a sparse core lacks
   * most nodes by design), fetch a proof for it from a peer and repair.
   */
  onmissingnode (index: number, held: boolean): void {
    const core = this.#host.core
    if (this.#host.inflight.hasNode(index) || this.#applying.has(index) || core.length === 0 || (!held && !this.#shouldHold(index))) return
    this.#lost.add(index)
    this.#ask(index, new Set())
  }

  /** A proof for node `index` arrived and is being applied (until `onanswer`). */
  onapplying (index: number): void {
    this.#applying.add(index)
  }

  /** The proof for node `index` from `peer` repaired it (`ok`), or did not: then the next peer is asked. */
  onanswer (index: number, peer: Peer, ok: boolean): void {
    this.#applying.delete(index)
    if (ok) {
      this.#tries.delete(index)
      this.#lost.delete(index)
    }
    else this.onrefused(index, peer)
  }

  /** `peer` could not prove node `index`: the next peer is asked. */
  onrefused (index: number, peer: Peer): void {
    this.#ask(index, this.#tries.get(index) ?? new Set([peer]))
  }

  #shouldHold (index: number): boolean {
    const ite = new Iterator(index)
    ite.parent()
    const first = ite.leftSpan() / 2
    const last = ite.rightSpan() / 2
    const bit = this.#host.core.bitfield.firstSet(first)
    return bit !== -1 && bit <= last
  }

  #ask (index: number, tried: Set<Peer>): void {
    const core = this.#host.core
    let req
    try {
      req = treeNodeProofRequest(index, core.length)
    } catch {
      return
    }
    const cut = req.upgrade!.length
    // Peers holding every block up to the cut hold the node; then any long enough.
    const ok = (p: Peer): boolean => !tried.has(p) && p.remoteFork === core.fork && p.remoteLength >= cut
    const peer = this.#host.pickPeer(p => ok(p) && p.remoteContiguous >= cut) ?? this.#host.pickPeer(ok)
    if (peer === null) return
    tried.add(peer)
    this.#tries.set(index, tried)
    this.#host.inflight.send(peer, 'node', index, { block: null, hash: req.hash ?? null, seek: null, upgrade: req.upgrade!, manifest: false })
  }
}
