/**
 * Following peers to a higher fork, as Hypercore 11 does. A peer whose sync
 * shows a fork above ours is asked for its signed tree from length 0; its
 * roots are compared with ours and, inside the first that differs, hash
 * proofs narrow down the common ancestor length (`ForkPoint`); then the core
 * truncates to it and adopts the fork in one step (`Core.reorg`).
 *
 * One switch runs at a time, one request at a time, each answer checked
 * before the next question: a peer that cannot or will not prove its fork is
 * remembered (for that fork and length) and not asked again, so nothing here
 * can loop. A proof that does not verify is the only thing held against a peer.
 */
import { isCoded } from './errors'
import type { Core, VerifiedFork } from './core'
import type { Peer, RequestBody } from './peer'
import type { DataMessage } from './messages'

/** What a fork switch needs from the replicator. */
export interface ForkSwitchHost {
  readonly core: Core
  readonly peers: readonly Peer[]
  /** Sends `body` to `peer` as a request against `fork`; returns the request id. */
  request (peer: Peer, body: RequestBody, fork: number): number
  /** The least loaded peer that passes `ok`, or null. */
  pickPeer (ok: (p: Peer) => boolean): Peer | null
  /** `peer` sent a proof that does not verify. */
  hostile (peer: Peer, err: Error): void
}

interface Switch {
  peer: Peer
  fork: number
  /** The request we wait on (0 while checking an answer). */
  id: number
  verified: VerifiedFork | null
}

export class ForkSwitch {
  readonly #host: ForkSwitchHost
  #current: Switch | null = null
  #applying = false
  /** Per peer, the `fork:length` it failed to prove: not asked again until its sync says otherwise. */
  readonly #failed = new WeakMap<Peer, string>()

  constructor (host: ForkSwitchHost) {
    this.#host = host
  }

  /** A switch is under way (asking, checking or applying). */
  get busy (): boolean {
    return this.#current !== null || this.#applying
  }

  /** Some peer is on a higher fork we have not tried to follow yet. */
  get available (): boolean {
    for (const p of this.#host.peers) if (this.#canFollow(p)) return true
    return false
  }

  #canFollow (p: Peer): boolean {
    // An empty fork cannot be proven (Hypercore 11 does not follow one either).
    return p.remoteOpened && !p.removed && p.remoteFork > this.#host.core.fork && p.remoteLength > 0 &&
      this.#failed.get(p) !== p.remoteFork + ':' + p.remoteLength
  }

  /** Starts a switch to the highest fork a peer offers, unless one is under way. */
  next (): void {
    if (this.busy) return
    let top = -1
    for (const p of this.#host.peers) if (this.#canFollow(p) && p.remoteFork > top) top = p.remoteFork
    if (top === -1) return
    const peer = this.#host.pickPeer(p => this.#canFollow(p) && p.remoteFork === top)
    if (peer === null) return
    const core = this.#host.core
    const body: RequestBody = {
      block: null, hash: null, seek: null,
      upgrade: { start: 0, length: peer.remoteLength },
      manifest: core.manifest === null
    }
    this.#current = { peer, fork: peer.remoteFork, id: this.#host.request(peer, body, peer.remoteFork), verified: null }
  }

  /** Whether request `id` is ours. */
  owns (id: number): boolean {
    return this.#current !== null && this.#current.id === id
  }

  /** The answer to request `id`. Never throws: a bad proof drops its peer, anything else ends the switch. */
  async ondata (id: number, data: DataMessage): Promise<void> {
    const cur = this.#current
    if (cur === null || cur.id !== id) return
    cur.id = 0
    const core = this.#host.core
    if (data.fork !== cur.fork) {
      // The peer moved on meanwhile; its next sync says where to.
      this.#current = null
      return
    }
    const epoch = core.epoch
    try {
      if (cur.verified === null) cur.verified = await core.verifyFork(data)
      else await core.continueFork(cur.verified, data)
    } catch (err) {
      if (this.#current === cur) this.#current = null
      if (core.epoch === epoch && (isCoded(err, 'INVALID_PROOF') || isCoded(err, 'INVALID_SIGNATURE'))) {
        this.#host.hostile(cur.peer, err as Error)
      } else {
        this.#fail(cur.peer)
      }
      return
    }
    if (this.#current !== cur) return // given up meanwhile (the peer left, or we moved)
    const verified = cur.verified
    if (verified.epoch !== core.epoch) {
      // We truncated or moved while asking: the comparison is stale, start over.
      this.#current = null
      return
    }
    const probe = verified.point.probe
    if (probe !== null) {
      const leaf = pickLeaf(cur.peer, probe.start, probe.end)
      cur.id = this.#host.request(cur.peer, {
        block: null, hash: { index: 2 * leaf, nodes: probe.nodes }, seek: null, upgrade: null, manifest: false
      }, cur.fork)
      return
    }
    this.#current = null
    this.#applying = true
    try {
      await core.reorg(verified)
    } catch {
      // Our disk failed, not the peer: do not ask it again for this fork right away.
      this.#fail(cur.peer)
    } finally {
      this.#applying = false
    }
  }

  /** Request `id` was refused, timed out, or its peer left. */
  onfailed (id: number): void {
    const cur = this.#current
    if (cur === null || cur.id !== id) return
    this.#current = null
    this.#fail(cur.peer)
  }

  /** Our tree changed shape: a switch to a fork we reached another way is moot. */
  onlocaltruncate (): void {
    const cur = this.#current
    if (cur !== null && cur.fork <= this.#host.core.fork) this.#current = null
  }

  #fail (peer: Peer): void {
    this.#failed.set(peer, peer.remoteFork + ':' + peer.remoteLength)
  }
}

/** A leaf in [start, end) the peer says it has, else the middle one. */
function pickLeaf (peer: Peer, start: number, end: number): number {
  const mid = start + Math.floor((end - start) / 2)
  if (peer.has(mid)) return mid
  for (let i = start; i < end && i < start + 64; i++) if (peer.has(i)) return i
  return mid
}
