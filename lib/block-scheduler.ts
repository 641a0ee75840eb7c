/**
 * What to ask whom for blocks: the blocks sessions wait for, the download
 * ranges, which peer holds a block and has room, and the block requests
 * themselves (proofs sized by `ProofSizing`). One scheduling pass asks for
 * what is wanted and not yet asked for. Apart from the replicator, which
 * handles the answers, upgrades and peers coming and going, and tells this
 * what changed (a refusal, a rescan); choosing a peer lives here because
 * every kind of request shares one rotation and one limit of requests in flight.
 */
import { HOTSWAP_MS } from './deadlines'
import { KeyRing } from './key-ring'
import { missingNodeCount, type ProofSizing } from './proof-sizing'
import type { Core } from './core'
import type { Peer } from './peer'
import type { InflightRequests } from './inflight-requests'
import type { Asked, BlockAsker, DownloadRanges } from './download-ranges'

/** Blocks a peer said it does not have, remembered per peer (then forgotten). */
const MAX_NOT_AVAILABLE = 4096

/** What block scheduling needs from the replicator. */
export interface BlockSchedulerHost {
  readonly core: Core
  readonly peers: readonly Peer[]
  readonly inflight: InflightRequests
  readonly ranges: DownloadRanges
  readonly sizing: ProofSizing
}

export class BlockScheduler implements BlockAsker {
  readonly #core: Core
  readonly #peers: readonly Peer[]
  readonly #inflight: InflightRequests
  readonly #ranges: DownloadRanges
  readonly #sizing: ProofSizing
  #maxInflight: number
  #rotate = 0
  readonly #wanted = new Map<number, number>()
  /**
   * Wanted blocks not asked for yet (or to be looked at again): a pass looks
   * at these only, not at every block waited for (hundreds, with many `get`s
   * in flight). A rescan puts every wanted block back.
   */
  readonly #unasked = new Set<number>()
  /** Blocks whose answer is being verified or stored. */
  readonly #verifying = new KeyRing<true>()
  #notAvailable = new WeakMap<Peer, Set<number>>()

  constructor (host: BlockSchedulerHost, maxInflight: number) {
    this.#core = host.core
    this.#peers = host.peers
    this.#inflight = host.inflight
    this.#ranges = host.ranges
    this.#sizing = host.sizing
    this.#maxInflight = maxInflight
  }

  /** Requests in flight per peer, at most (a positive integer: SharedCore checks it). */
  setMaxInflight (n: number): void {
    this.#maxInflight = n
  }

  /** Whether a `get` (or other single-block interest) is waiting for block `index`. */
  isWanted (index: number): boolean {
    return this.#wanted.has(index)
  }

  /** Registers interest in one block; returns the release. */
  want (index: number): () => void {
    this.#wanted.set(index, (this.#wanted.get(index) ?? 0) + 1)
    this.#unasked.add(index)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.#wanted.get(index) ?? 1) - 1
      if (n <= 0) {
        this.#wanted.delete(index)
        this.#unasked.delete(index)
      } else {
        this.#wanted.set(index, n)
      }
    }
  }

  /** A request for block `index` ended, answered or not: if wanted, it is looked at again (it may not be here yet). */
  requeue (index: number): void {
    if (this.#wanted.has(index)) this.#unasked.add(index)
  }

  /** An answer for block `index` is being verified or stored: not asked for again meanwhile. */
  onverifying (index: number): void {
    this.#verifying.set(index, true)
  }

  /**
   * The answer for block `index` was stored or not. A pass meanwhile found it
   * being verified and let it go: if it is still wanted, it is looked at again
   * (an answer that was not stored would otherwise leave its `get` waiting).
   */
  onverified (index: number): void {
    this.#verifying.delete(index)
    if (this.#wanted.has(index)) this.#unasked.add(index)
  }

  /** `peer` answered that it does not have block `index`: not asked of it again until forgiven. */
  refused (peer: Peer, index: number): void {
    let set = this.#notAvailable.get(peer)
    if (set === undefined) this.#notAvailable.set(peer, set = new Set())
    if (set.size >= MAX_NOT_AVAILABLE) set.clear()
    set.add(index)
  }

  /** What `peer` refused before it may give now (it synced, announced blocks, or our tree changed). */
  forgive (peer: Peer): void {
    this.#notAvailable.delete(peer)
  }

  forgiveAll (): void {
    this.#notAvailable = new WeakMap()
  }

  /** A request failed or a peer left: the next pass rescans every range from its cursor, and every wanted block. */
  rescan (): void {
    for (const index of this.#wanted.keys()) this.#unasked.add(index)
    this.#ranges.rescan()
  }

  /** One scheduling pass: asks for wanted blocks, then for what the ranges lack. */
  pass (): void {
    for (const index of this.#unasked) {
      const r = this.#requestBlock(index)
      // Asked, or here: looked at again only after a rescan (a failure, a hotswap, a new peer).
      if (r !== 'busy' && r !== 'nobody') this.#unasked.delete(index)
    }
    this.#ranges.fill(this)
  }

  /** The first block at or past our length that a range or a session wants, below `below`; -1 if none. */
  firstWanted (below: number): number {
    const length = this.#core.length
    const next = this.#ranges.firstFrom(length, below)
    if (next !== -1) return next
    let first = -1
    for (const index of this.#wanted.keys()) {
      if (index >= length && index < below && (first === -1 || index < first)) first = index
    }
    return first
  }

  /** The least loaded open peer that passes `ok` and has room, or null. */
  pickPeer (ok: (p: Peer) => boolean): Peer | null {
    let best: Peer | null = null
    const peers = this.#peers
    const n = peers.length
    for (let k = 0; k < n; k++) {
      const p = peers[(this.#rotate + k) % n]!
      if (!p.remoteOpened || p.removed || p.inflight >= this.#maxInflight || !ok(p)) continue
      if (best === null || p.inflight < best.inflight) best = p
    }
    this.#rotate++
    return best
  }

  /** Asks a peer for block `index` (`BlockAsker`, for the download ranges). */
  askBlock (index: number): Asked {
    return this.#requestBlock(index)
  }

  /** Sends a request for block `index` if it is needed and someone has it. */
  #requestBlock (index: number): Asked {
    const core = this.#core
    if (core.has(index) || core.isStoring(index) || this.#verifying.has(index)) return 'have'
    const inflight = this.#inflight.block(index)
    // A slow peer does not hold a block hostage: after a while, ask another too.
    if (inflight !== undefined && Date.now() - inflight.sent < HOTSWAP_MS) return 'inflight'
    if (index >= core.length) return 'nobody' // after the upgrade
    const peer = this.#pickHolder(index, inflight?.peer ?? null)
    if (peer === null && inflight !== undefined) return 'inflight'
    if (peer === null) {
      let holders = 0
      for (const p of this.#peers) {
        if (!this.#mayGive(p, index)) continue
        if (p.has(index)) holders++
        else if (p.remoteLength > index) p.wantAround(index)
      }
      return holders > 0 ? 'busy' : 'nobody'
    }
    const sized = this.#sizing.nodes(peer, index)
    const missing = missingNodeCount(core.tree, 2 * index, sized + 1)
    const nodes = Math.min(missing, sized)
    const req = this.#inflight.send(peer, 'block', index, {
      block: { index, nodes },
      hash: null, seek: null, upgrade: null, manifest: false
    })
    // Sized short of what we lack: an answer that does not reach a node we hold means ask again in full.
    if (nodes < missing) {
      req.sized = true
      req.after = peer.lastBlockAsked
    }
    peer.lastBlockAsked = index
    return 'sent'
  }

  /** Whether block `index` will be asked for: wanted, not here, and some peer has it to give, now or once it has room. */
  willAsk (index: number): boolean {
    const core = this.#core
    if (core.has(index) || core.isStoring(index) || !(this.#wanted.has(index) || this.#ranges.wants(index))) return false
    for (const p of this.#peers) if (!p.removed && this.#mayGive(p, index) && p.has(index)) return true
    return false
  }

  /** `p` is on our fork and did not refuse block `index`. */
  #mayGive (p: Peer, index: number): boolean {
    return p.remoteFork === this.#core.fork && this.#notAvailable.get(p)?.has(index) !== true
  }

  /** pickPeer for block `index`: an open peer on our fork that has it, did not refuse it, and is not `not`. */
  #pickHolder (index: number, not: Peer | null): Peer | null {
    let best: Peer | null = null
    const peers = this.#peers
    const n = peers.length
    for (let k = 0; k < n; k++) {
      const p = peers[(this.#rotate + k) % n]!
      if (!p.remoteOpened || p.removed || p.inflight >= this.#maxInflight || p === not) continue
      if (!p.has(index) || (best !== null && p.inflight >= best.inflight)) continue
      if (!this.#mayGive(p, index)) continue
      best = p
    }
    this.#rotate++
    return best
  }
}
