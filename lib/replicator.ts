/**
 * One core's replication across all its peers: peers coming and going,
 * local changes told to peers, and the scheduling pass that ties the parts
 * below together. What the answers to our requests (data, noData) mean is
 * in `answers.ts`; what to ask whom for blocks in `block-scheduler.ts`
 * (download ranges in `download-ranges.ts`, proof sizes in
 * `proof-sizing.ts`), upgrades in `upgrades.ts`, requests in flight in
 * `inflight-requests.ts`, healing the tree from peers in
 * `repair-requests.ts`, following a peer to a higher fork in
 * `fork-switch.ts`, seeks that wait for the network in `seeks.ts`, the
 * muxes and channels in `channels.ts`, `settled()` in `settled.ts`. Wire
 * details live in `peer.ts`; verification and storage in `core.ts`.
 */
import type Protomux from 'protomux'
import type { Peer, PeerHost } from './peer'
import { Channels, corked } from './channels'
import { ForkSwitch } from './fork-switch'
import { Seeks, type SeekOptions } from './seeks'
import { InflightRequests, type Request } from './inflight-requests'
import { DownloadRanges, type Download } from './download-ranges'
import { ProofSizing, missingNodeCount } from './proof-sizing'
import { BlockScheduler } from './block-scheduler'
import { RepairRequests } from './repair-requests'
import { Upgrades } from './upgrades'
import { Settled } from './settled'
import { Answers, type AnswersHost } from './answers'
import { afterTurn, schedulePass } from './loop-turns'
import { REQUEST_CANCELLED } from './errors'
import type { Core } from './core'
import type { DataMessage, NoDataMessage } from './messages'

/** Requests in flight to one peer at a time. */
const DEFAULT_MAX_INFLIGHT = 512

export interface ReplicatorEvents {
  'peer-add' (peer: Peer): void
  'peer-remove' (peer: Peer): void
  upload (index: number, byteLength: number, peer: Peer): void
  download (index: number, byteLength: number, peer: Peer): void
  'verification-error' (err: Error, peer: Peer): void
  /** A signer signed two trees at `length` on `fork` (the proof is the other one): the core closes. */
  conflict (length: number, fork: number, proof: DataMessage): void
  /** A peer now holds more blocks contiguously from the start than any before it. */
  'remote-contiguous-length' (length: number): void
}

export type ReplicatorEmit = <K extends keyof ReplicatorEvents>(name: K, ...args: Parameters<ReplicatorEvents[K]>) => void

/**
 * Where the replicator's events go: an object's method, not a closure made
 * per core (see `AnswersHost` for why).
 */
export interface ReplicatorEventSink {
  onreplicatorevent<K extends keyof ReplicatorEvents> (name: K, args: Parameters<ReplicatorEvents[K]>): void
}

export interface ExtensionHandler {
  onmessage (message: Uint8Array, peer: Peer): void
}

export class Replicator implements PeerHost, AnswersHost {
  readonly peers: Peer[] = []
  readonly #channels = new Channels(this)
  readonly #inflight: InflightRequests
  readonly #events: ReplicatorEventSink
  readonly #ranges: DownloadRanges
  readonly #sizing = new ProofSizing()
  readonly #blocks: BlockScheduler
  readonly #repair: RepairRequests
  readonly #upgrades: Upgrades
  readonly #settled: Settled
  readonly #answers: Answers
  private readonly extensions = new Map<string, ExtensionHandler>()
  private updateQueued = false
  /** A block that failed for a node of ours is asked for again after I/O had a turn (see `Answers`). */
  #retryQueued = false
  private destroyed = false
  private remoteContiguous = 0
  readonly #forks: ForkSwitch
  readonly #seeks: Seeks
  /** The core's length as last seen here, to tell peers what a truncation dropped. */
  #knownLength: number
  /** Stored blocks peers have not heard of yet, as start, length pairs (see `onlocalhave`). */
  #unannounced: number[] = []
  /** Some session wants the core replicated: told to peers in sync messages (idle channels may close). */
  downloading = true

  constructor (readonly core: Core, events: ReplicatorEventSink, maxInflight = DEFAULT_MAX_INFLIGHT) {
    this.#events = events
    this.#knownLength = core.length
    const inflight = this.#inflight = new InflightRequests(core, (timedOut, hotswap) => this.expired(timedOut, hotswap))
    const ranges = this.#ranges = new DownloadRanges(core)
    this.#blocks = new BlockScheduler({ core, peers: this.peers, inflight, ranges, sizing: this.#sizing }, maxInflight)
    const pickPeer = (ok: (p: Peer) => boolean): Peer | null => this.#blocks.pickPeer(ok)
    this.#repair = new RepairRequests({ core, peers: this.peers, inflight, pickPeer })
    this.#upgrades = new Upgrades({ core, inflight, blocks: this.#blocks })
    this.#forks = new ForkSwitch({
      core,
      peers: this.peers,
      request: (peer, body, fork) => inflight.send(peer, 'fork', -1, body, fork).id,
      pickPeer,
      hostile: (peer, err) => this.hostile(peer, err)
    })
    this.#settled = new Settled({ peers: this.peers, channels: this.#channels, upgrades: this.#upgrades, forks: this.#forks })
    this.#seeks = new Seeks({
      core,
      peers: this.peers,
      pickPeer,
      request: (peer, body) => inflight.send(peer, 'seek', -1, body).id
    })
    this.#answers = new Answers(this, {
      inflight,
      blocks: this.#blocks,
      sizing: this.#sizing,
      upgrades: this.#upgrades,
      repair: this.#repair,
      forks: this.#forks
    })
  }

  /** Tells every session of the core, through its sink. */
  emit<K extends keyof ReplicatorEvents> (name: K, ...args: Parameters<ReplicatorEvents[K]>): void {
    this.#events.onreplicatorevent(name, args)
  }

  /** Whether sessions want the core replicated: peers hear it with the next sync. */
  setDownloading (downloading: boolean): void {
    if (this.downloading === downloading) return
    this.downloading = downloading
    for (const peer of this.peers) peer.sendSync()
  }

  /** Requests in flight per peer, at most (Hypercore's setInflightRange sets its upper bound). */
  setMaxInflight (n: number): void {
    this.#blocks.setMaxInflight(n)
    this.scheduleUpdate()
  }

  // -------------------------------------------------------------------------
  // Connections

  /** Replicates over `mux` (one channel for this core; other cores share the mux). */
  attach (mux: Protomux): void {
    this.#channels.attach(mux)
  }

  destroy (): void {
    if (this.destroyed) return
    this.destroyed = true
    this.#settled.close()
    this.#inflight.destroy()
    this.#channels.destroy(this.peers)
    this.#ranges.clear(cancelledByClose)
    this.#seeks.destroy()
    this.#settled.wake()
  }

  onopen (peer: Peer): void {
    this.#channels.answered(peer)
    // What was stored before it opened, it heard of as it opened (our contiguous
    // length, then wants): announcements still pending are for the others only.
    this.#announce()
    this.peers.push(peer)
    this.emit('peer-add', peer)
    this.#repair.onpeer(peer)
    this.#seeks.onpeers()
    this.scheduleUpdate()
  }

  onclose (peer: Peer): void {
    this.#channels.answered(peer)
    const i = this.peers.indexOf(peer)
    if (i === -1) {
      this.#settled.wake()
      return
    }
    this.peers.splice(i, 1)
    // Whatever it owed us goes back in the queue for the others.
    for (const req of [...this.#inflight.values()]) if (req.peer === peer) this.giveUp(req)
    this.#blocks.rescan()
    this.emit('peer-remove', peer)
    this.scheduleUpdate()
  }

  onsync (peer: Peer): void {
    // What it could not give us before it may give now (it may have healed).
    this.#blocks.forgive(peer)
    this.#repair.onpeer(peer)
    this.#seeks.onpeers()
    this.#blocks.rescan()
    this.scheduleUpdate()
  }

  onhave (peer: Peer): void {
    this.updateRemoteContiguous()
    this.#seeks.nudge()
    // It announced blocks: what it once answered noData for, it may have again (fetched back after rot).
    this.#blocks.forgive(peer)
    this.#blocks.rescan()
    this.scheduleUpdate()
  }

  /** A peer's contiguous blocks count once our length covers them, so look again when either moves. */
  private updateRemoteContiguous (): void {
    let best = this.remoteContiguous
    for (const p of this.peers) best = Math.max(best, Math.min(p.remoteContiguous, this.core.length))
    if (best <= this.remoteContiguous) return
    this.remoteContiguous = best
    this.emit('remote-contiguous-length', best)
  }

  /** The most blocks a peer has held contiguously from the start, up to our length. */
  get remoteContiguousLength (): number {
    return Math.min(this.remoteContiguous, this.core.length)
  }

  isFindingPeers (): boolean {
    return this.#settled.finding
  }

  onupload (peer: Peer, index: number, byteLength: number): void {
    this.emit('upload', index, byteLength, peer)
  }

  // -------------------------------------------------------------------------
  // Local changes

  /** Our length or fork changed (append, upgrade, truncate, repair). */
  onupgrade (): void {
    this.updateRemoteContiguous()
    this.#knownLength = this.core.length
    // Our tree changed (grew, forked or healed): what peers refused before may be asked again.
    this.#blocks.forgiveAll()
    for (const peer of this.peers) peer.sendSync()
    this.#seeks.nudge()
    this.scheduleUpdate()
  }

  /**
   * Our blocks from `length` on are gone (a local truncation, or a reorg to
   * a peer's fork). What was asked for the tree we left is given up, peers
   * hear which blocks we dropped (as Hypercore 11 tells them), and ranges go
   * back to fetch the new fork's blocks. Called before `onupgrade`.
   */
  ontruncate (length: number): void {
    const core = this.core
    const dropped = this.#knownLength - length
    this.#knownLength = core.length
    this.#forks.onlocaltruncate()
    for (const req of [...this.#inflight.values()]) {
      if (req.kind === 'fork' || req.epoch === core.epoch) continue
      this.giveUp(req)
      req.peer.sendCancel(req.id)
    }
    this.#blocks.forgiveAll()
    this.#announceDrop(length, dropped)
    this.#ranges.ontruncate(length)
  }

  /**
   * Blocks [start, start + length) are now stored here. Peers hear of them in
   * the pass this schedules, in the frame that carries its requests: told at
   * once, every batch a download stores cost a frame of its own (half the
   * frames a download sent; over TCP, a system call each).
   */
  onlocalhave (start: number, length: number): void {
    const held = this.#unannounced
    const last = held.length - 1
    if (last > 0 && held[last - 1]! + held[last]! === start) held[last] = held[last]! + length
    else held.push(start, length)
    this.#ranges.checkSoon()
    this.#seeks.nudge()
    this.scheduleUpdate()
  }

  /** Tells peers of the blocks stored since the last time (before any drop: see `#announceDrop`). */
  #announce (): void {
    const held = this.#unannounced
    if (held.length === 0) return
    this.#unannounced = []
    for (let k = 0; k < held.length; k += 2) {
      for (const peer of this.peers) peer.announce(held[k]!, held[k + 1]!)
    }
  }

  /**
   * Blocks [start, start + length) are no longer served from here (cleared,
   * or found rotten): peers are told, and with `refetch` they are fetched again.
   */
  onlocaldrop (start: number, length: number, refetch: boolean): void {
    this.#announceDrop(start, length)
    if (refetch) this.download(start, start + length, null)
  }

  /** Tells peers blocks [start, start + length) are gone, after what was stored before (so a drop is never overtaken). */
  #announceDrop (start: number, length: number): void {
    this.#announce()
    for (const peer of this.peers) peer.announceDrop(start, length)
  }

  // -------------------------------------------------------------------------
  // What we want

  /** Registers interest in one block; returns the release. */
  want (index: number): () => void {
    const release = this.#blocks.want(index)
    this.scheduleUpdate()
    return release
  }

  /** Downloads [start, end) or the listed blocks; end Infinity follows appends. */
  download (start: number, end: number, blocks: number[] | null): Download {
    const download = this.#ranges.add(start, end, blocks)
    this.#ranges.check()
    this.scheduleUpdate()
    return download
  }

  /** A session is finding peers: `settled()` waits for one until the release is called. */
  findingPeers (): () => void {
    return this.#settled.findingPeers()
  }

  /**
   * [block index, offset inside it] of byte `bytes`: from local nodes when
   * they suffice, else with a seek proof from a peer (see `seeks.ts`).
   */
  seek (bytes: number, opts: SeekOptions = {}): Promise<[number, number] | null> {
    return this.#seeks.seek(bytes, opts)
  }

  /**
   * Resolves once no peer offers a longer tree or a higher fork than ours
   * that we have not tried (so `update()` knows whether anything came of it).
   */
  settled (): Promise<void> {
    return this.#settled.wait()
  }

  // -------------------------------------------------------------------------
  // Repair from peers

  /** Asks every peer for a proof of our length, to restore missing roots. */
  recoverTreeNodeFromPeers (): void {
    this.#repair.recoverAll()
  }

  /**
   * A node we lack turned up while serving or reading (`held`: one we know
   * we held): repaired from peers if it is one we ought to hold.
   */
  onmissingnode (index: number, held = false): void {
    this.#repair.onmissingnode(index, held)
  }

  // -------------------------------------------------------------------------
  // Answers (their meaning is in answers.ts; the methods below serve it too)

  ondata (peer: Peer, data: DataMessage): void {
    this.#answers.ondata(peer, data)
  }

  onnodata (peer: Peer, msg: NoDataMessage): void {
    this.#answers.onnodata(peer, msg)
  }

  hostile (peer: Peer, err: Error): void {
    this.emit('verification-error', err, peer)
    peer.close()
  }

  /** A request of the fork switch or of a seek ended: tell its owner. */
  settleSide (req: Request): void {
    if (req.kind === 'seek') this.#seeks.onsettled(req.id)
    else if (req.kind === 'fork') this.#forks.onfailed(req.id)
  }

  /** Gives up on a request (its peer left, it timed out, the tree changed). */
  giveUp (req: Request): void {
    this.finish(req)
    this.settleSide(req)
  }

  // -------------------------------------------------------------------------
  // Extensions

  registerExtension (name: string, handler: ExtensionHandler): void {
    this.extensions.set(name, handler)
  }

  unregisterExtension (name: string): void {
    this.extensions.delete(name)
  }

  onextension (peer: Peer, name: string, message: Uint8Array): void {
    this.extensions.get(name)?.onmessage(message, peer)
  }

  // -------------------------------------------------------------------------
  // Scheduling

  /** Whether a retry after I/O is due (see `retryAfterIo`). */
  get retryQueued (): boolean {
    return this.#retryQueued
  }

  retryAfterIo (): void {
    if (this.#retryQueued) return
    this.#retryQueued = true
    afterTurn(() => {
      this.#retryQueued = false
      if (this.destroyed) return
      this.#blocks.rescan()
      this.scheduleUpdate()
    })
  }

  scheduleUpdate (): void {
    if (this.updateQueued || this.destroyed) return
    this.updateQueued = true
    schedulePass(this.#scheduled)
  }

  /** The queued pass (a field: one function for every call). */
  readonly #scheduled = (): void => {
    this.updateQueued = false
    this.update()
  }

  private update (): void {
    if (this.destroyed) return
    // Every request of this pass leaves in one frame per connection.
    corked(this.peers, this.#pass)
  }

  /** One pass: whatever can be asked for now is (a field, so each pass hands `corked` the same function). */
  readonly #pass = (): void => {
    this.#answers.unpark()
    this.#announce()
    this.#forks.next()
    this.#upgrades.ask()
    this.#blocks.pass()
    this.#answers.passed()
    this.#settled.wake()
  }

  /** How many nodes from leaf `leaf` up we lack (what a block proof must include), at most `limit`. */
  missingNodeCount (leaf: number, limit = Infinity): number {
    return missingNodeCount(this.core.tree, leaf, limit)
  }

  /**
   * Gives up on requests a peer sat on (a silent peer cannot stall us), and
   * after HOTSWAP_MS lets another peer be asked for a block too.
   */
  private expired (timedOut: Request[], hotswap: boolean): void {
    for (const req of timedOut) {
      this.giveUp(req)
      req.peer.sendCancel(req.id)
      if (req.kind === 'upgrade') this.#upgrades.failed(req.peer)
    }
    if (timedOut.length > 0 || hotswap) {
      this.#blocks.rescan()
      this.scheduleUpdate()
    }
  }

  finish (req: Request): void {
    if (!this.#inflight.remove(req)) return
    // Answered or not, a wanted block is looked at again: it may not be here yet.
    if (req.kind === 'block') this.#blocks.requeue(req.index)
    this.#settled.wake()
  }
}

function cancelledByClose (): Error {
  return REQUEST_CANCELLED('The core was closed')
}
