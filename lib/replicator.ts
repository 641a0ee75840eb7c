/**
 * Request scheduling for one core across all its peers: which blocks and
 * upgrades we want, which peer to ask, what to do with the answers, and when
 * to heal the tree from peers. Following a peer to a higher fork is in
 * `fork-switch.ts`, seeks that wait for the network in `seeks.ts`. Wire
 * details live in `peer.ts`; verification and storage in `core.ts`.
 */
import type Protomux from 'protomux'
import { Peer, PROTOCOL, type PeerHost, type RequestBody } from './peer'
import { Deadlines, HOTSWAP_MS } from './deadlines'
import { unslabProof } from './unslab'
import { Iterator, parent } from './flat-tree'
import { treeNodeProofRequest } from './fully-remote-proof'
import { ForkSwitch } from './fork-switch'
import { Seeks, type SeekOptions } from './seeks'
import { REQUEST_CANCELLED, isCoded, missingNodeOf } from './errors'
import type { Core, VerifiedData } from './core'
import type { DataMessage, NoDataMessage } from './messages'
import type { Proof } from './proof'

/** Requests in flight to one peer at a time. */
const DEFAULT_MAX_INFLIGHT = 512
/** Blocks looked at per range per scheduling pass, so a pass stays short. */
const MAX_SCAN = 4096
/** Blocks a peer said it does not have, remembered per peer (then forgotten). */
const MAX_NOT_AVAILABLE = 4096

type RequestKind = 'block' | 'upgrade' | 'repair' | 'node' | 'fork' | 'seek'

interface Request {
  id: number
  peer: Peer
  sent: number
  kind: RequestKind
  /** Block index ('block'; for 'upgrade', the block asked for with it, or -1) or tree node index ('node'). */
  index: number
  /** The fork asked about (ours, except when following a peer to its fork). */
  fork: number
  /** The core's epoch when asked: an answer from before a truncation is stale. */
  epoch: number
  /** A block request whose proof was sized to what earlier answers of its peer will bring (see `proofNodes`). */
  sized: boolean
  /** Neighbours in the list of requests in flight, oldest first (see `Deadlines`). */
  older: Request | null
  newer: Request | null
}

interface Range {
  start: number
  /** Exclusive; Infinity follows the core as it grows. */
  end: number
  blocks: number[] | null
  /** Everything before this is stored. */
  cursor: number
  /** Everything before this is stored or asked for: where the next pass looks. */
  scanFrom: number
  resolve (): void
  reject (err: Error): void
  done: Promise<void>
}

/** A download in progress, as `core.download()` returns it. */
export class Download {
  constructor (private readonly replicator: Replicator, private readonly range: Range) {}

  /** Resolves when every block of the range is stored locally. */
  done (): Promise<void> {
    return this.range.done
  }

  /** Stops downloading; `done()` rejects with REQUEST_CANCELLED. */
  destroy (): void {
    this.replicator.removeRange(this.range, REQUEST_CANCELLED('Download was destroyed'))
  }
}

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

type Emit = <K extends keyof ReplicatorEvents>(name: K, ...args: Parameters<ReplicatorEvents[K]>) => void

export interface ExtensionHandler {
  onmessage (message: Uint8Array, peer: Peer): void
}

export class Replicator implements PeerHost {
  readonly peers: Peer[] = []
  private readonly muxes = new Map<Protomux, () => void>()
  /** Channels we opened whose remote side has not answered yet. */
  private readonly opening = new Set<Peer>()
  private nextId = 1
  private readonly requests = new Map<number, Request>()
  private readonly blockRequests = new Map<number, Request>()
  private readonly nodeRequests = new Map<number, Request>()
  /** Peers already asked for a lost node, so a refusal moves on to the next. */
  private readonly nodeTries = new Map<number, Set<Peer>>()
  /** Nodes we ought to hold but lost; asked for again as peers come. */
  private readonly lost = new Set<number>()
  private upgradeRequest: Request | null = null
  /** An upgrade answer is being verified and applied: do not ask for another meanwhile. */
  private applyingUpgrade = 0
  private readonly wantedBlocks = new Map<number, number>()
  /**
   * Wanted blocks not asked for yet (or to be looked at again): a pass looks
   * at these only, not at every block waited for (hundreds, with many `get`s
   * in flight). A rescan puts every wanted block back.
   */
  readonly #unasked = new Set<number>()
  /** Blocks whose answer is being verified. */
  private readonly verifying = new Set<number>()
  /** Blocks whose sized proof came short: asked for again with every node we lack. */
  private readonly fullProofs = new Set<number>()
  /** Peers that refused an upgrade asked for with a block (see `blockWithUpgrade`). */
  readonly #plainUpgrades = new WeakSet<Peer>()
  private readonly ranges = new Set<Range>()
  private notAvailable = new WeakMap<Peer, Set<number>>()
  private readonly upgradeFailed = new WeakMap<Peer, number>()
  private readonly settleWaiters: Array<() => void> = []
  private readonly extensions = new Map<string, ExtensionHandler>()
  private findingPeersCount = 0
  private rangeCheckQueued = false
  readonly #deadlines = new Deadlines<Request>((timedOut, hotswap) => this.expired(timedOut, hotswap))
  private updateQueued = false
  private destroyed = false
  private rotate = 0
  private remoteContiguous = 0
  private maxInflight: number
  readonly #forks: ForkSwitch
  readonly #seeks: Seeks
  /** The core's length as last seen here, to tell peers what a truncation dropped. */
  #knownLength: number
  /** Some session wants the core replicated: told to peers in sync messages (idle channels may close). */
  downloading = true

  constructor (readonly core: Core, private readonly emit: Emit, maxInflight = DEFAULT_MAX_INFLIGHT) {
    this.maxInflight = maxInflight
    this.#knownLength = core.length
    this.#forks = new ForkSwitch({
      core,
      peers: this.peers,
      request: (peer, body, fork) => this.send(peer, 'fork', -1, body, fork),
      pickPeer: ok => this.pickPeer(ok),
      hostile: (peer, err) => this.hostile(peer, err)
    })
    this.#seeks = new Seeks({
      core,
      peers: this.peers,
      pickPeer: ok => this.pickPeer(ok),
      request: (peer, body) => this.send(peer, 'seek', -1, body)
    })
  }

  /** Whether sessions want the core replicated: peers hear it with the next sync. */
  setDownloading (downloading: boolean): void {
    if (this.downloading === downloading) return
    this.downloading = downloading
    for (const peer of this.peers) peer.sendSync()
  }

  /** Requests in flight per peer, at most (Hypercore's setInflightRange sets its upper bound). */
  setMaxInflight (n: number): void {
    if (Number.isSafeInteger(n) && n > 0) this.maxInflight = n
    this.scheduleUpdate()
  }

  // -------------------------------------------------------------------------
  // Connections

  /** Replicates over `mux` (one channel for this core; other cores share the mux). */
  attach (mux: Protomux): void {
    if (this.destroyed) return
    if (this.muxes.has(mux)) {
      // Attached before and its channel closed since (a Store closes idle channels): open it again.
      if (mux.stream.handshakeHash !== null && !mux.opened({ protocol: PROTOCOL, id: this.core.discoveryKey })) {
        const peer = Peer.open(this, mux)
        if (peer !== null) this.opening.add(peer)
      }
      return
    }
    const open = (): void => {
      if (this.destroyed || !this.muxes.has(mux)) return
      const peer = Peer.open(this, mux)
      if (peer !== null) this.opening.add(peer)
    }
    const onclose = (): void => this.detach(mux)
    this.muxes.set(mux, onclose)
    mux.pair({ protocol: PROTOCOL, id: this.core.discoveryKey }, open)
    mux.stream.setMaxListeners?.(0)
    mux.stream.on('close', onclose)
    // Already connected: open now, so a remote channel waiting on us is taken up.
    if (mux.stream.handshakeHash !== null) open()
    else mux.stream.opened.then(opened => { if (opened) open() }, noop)
  }

  private detach (mux: Protomux): void {
    const onclose = this.muxes.get(mux)
    if (onclose === undefined) return
    this.muxes.delete(mux)
    mux.stream.removeListener('close', onclose)
    mux.unpair({ protocol: PROTOCOL, id: this.core.discoveryKey })
  }

  attached (mux: Protomux): boolean {
    return this.muxes.has(mux)
  }

  destroy (): void {
    if (this.destroyed) return
    this.destroyed = true
    this.#deadlines.destroy()
    // Channels the remote has not answered yet close too: a later instance of the core must be able to open its own.
    for (const peer of [...this.peers, ...this.opening]) peer.close()
    for (const mux of [...this.muxes.keys()]) this.detach(mux)
    for (const range of [...this.ranges]) this.removeRange(range, REQUEST_CANCELLED('The core was closed'))
    this.#seeks.destroy()
    this.wakeSettled()
  }

  onopen (peer: Peer): void {
    this.opening.delete(peer)
    this.peers.push(peer)
    this.emit('peer-add', peer)
    if (this.core.repairMode) this.recoverFrom(peer)
    for (const index of this.lost) if (!this.nodeRequests.has(index)) this.askForNode(index, new Set())
    this.#seeks.onpeers()
    this.scheduleUpdate()
  }

  onclose (peer: Peer): void {
    this.opening.delete(peer)
    const i = this.peers.indexOf(peer)
    if (i === -1) {
      this.wakeSettled()
      return
    }
    this.peers.splice(i, 1)
    // Whatever it owed us goes back in the queue for the others.
    for (const req of [...this.requests.values()]) if (req.peer === peer) this.giveUp(req)
    this.rescan()
    this.emit('peer-remove', peer)
    this.scheduleUpdate()
  }

  onsync (peer: Peer): void {
    // What it could not give us before it may give now (it may have healed).
    this.notAvailable.delete(peer)
    if (this.core.repairMode) this.recoverFrom(peer)
    for (const index of this.lost) if (!this.nodeRequests.has(index)) this.askForNode(index, new Set())
    this.#seeks.onpeers()
    this.rescan()
    this.scheduleUpdate()
  }

  onhave (peer: Peer): void {
    this.updateRemoteContiguous()
    this.#seeks.nudge()
    // It announced blocks: what it once answered noData for, it may have again (fetched back after rot).
    this.notAvailable.delete(peer)
    this.rescan()
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
    return this.findingPeersCount > 0
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
    for (const peer of this.peers) this.notAvailable.delete(peer)
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
    for (const req of [...this.requests.values()]) {
      if (req.kind === 'fork' || req.epoch === core.epoch) continue
      this.giveUp(req)
      req.peer.sendCancel(req.id)
    }
    this.notAvailable = new WeakMap()
    for (const peer of this.peers) peer.announceDrop(length, dropped)
    for (const range of this.ranges) {
      if (range.blocks === null) range.cursor = Math.max(range.start, Math.min(range.cursor, length))
      else range.cursor = Math.min(range.cursor, lowerBound(range.blocks, length))
      range.scanFrom = range.cursor
    }
  }

  /** Blocks [start, start + length) are now stored here. */
  onlocalhave (start: number, length: number): void {
    for (const peer of this.peers) peer.announce(start, length)
    // After the `download` events of these blocks, which follow in microtasks:
    // a range's done() must not resolve ahead of them (as in Hypercore 11).
    if (!this.rangeCheckQueued) {
      this.rangeCheckQueued = true
      setImmediate(() => {
        this.rangeCheckQueued = false
        this.checkRanges()
      })
    }
    this.#seeks.nudge()
    this.scheduleUpdate()
  }

  /**
   * Blocks [start, start + length) are no longer served from here (cleared,
   * or found rotten): peers are told, and with `refetch` they are fetched again.
   */
  onlocaldrop (start: number, length: number, refetch: boolean): void {
    for (const peer of this.peers) peer.announceDrop(start, length)
    if (refetch) this.download(start, start + length, null)
  }

  // -------------------------------------------------------------------------
  // What we want

  /** Registers interest in one block; returns the release. */
  want (index: number): () => void {
    this.wantedBlocks.set(index, (this.wantedBlocks.get(index) ?? 0) + 1)
    this.#unasked.add(index)
    this.scheduleUpdate()
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.wantedBlocks.get(index) ?? 1) - 1
      if (n <= 0) {
        this.wantedBlocks.delete(index)
        this.#unasked.delete(index)
      } else {
        this.wantedBlocks.set(index, n)
      }
    }
  }

  /** Downloads [start, end) or the listed blocks; end Infinity follows appends. */
  download (start: number, end: number, blocks: number[] | null): Download {
    let resolve!: () => void
    let reject!: (err: Error) => void
    const done = new Promise<void>((res, rej) => { resolve = res; reject = rej })
    done.catch(noop)
    const cursor = blocks === null ? start : 0
    const range: Range = { start, end, blocks: blocks === null ? null : [...blocks].sort((a, b) => a - b), cursor, scanFrom: cursor, resolve, reject, done }
    this.ranges.add(range)
    this.checkRanges()
    this.scheduleUpdate()
    return new Download(this, range)
  }

  removeRange (range: Range, err: Error): void {
    if (!this.ranges.delete(range)) return
    range.reject(err)
  }

  findingPeers (): () => void {
    this.findingPeersCount++
    let done = false
    return () => {
      if (done) return
      done = true
      this.findingPeersCount--
      this.wakeSettled()
    }
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
    if (this.isSettled()) return Promise.resolve()
    return new Promise(resolve => this.settleWaiters.push(resolve))
  }

  private isSettled (): boolean {
    if (this.destroyed) return true
    if (this.findingPeersCount > 0 && this.peers.length === 0) return false
    if (this.opening.size > 0 || this.anyHandshaking()) return false
    if (this.upgradeRequest !== null || this.applyingUpgrade > 0) return false
    if (this.#forks.busy || this.#forks.available) return false
    const core = this.core
    for (const p of this.peers) {
      if (!p.remoteSynced) return false
      if (p.remoteFork === core.fork && p.remoteLength > core.length && (this.upgradeFailed.get(p) ?? -1) < p.remoteLength) return false
    }
    return true
  }

  private anyHandshaking (): boolean {
    for (const mux of this.muxes.keys()) if (!mux.stream.destroyed && mux.stream.handshakeHash === null) return true
    return false
  }

  private wakeSettled (): void {
    if (this.settleWaiters.length === 0 || !this.isSettled()) return
    for (const w of this.settleWaiters.splice(0)) w()
  }

  // -------------------------------------------------------------------------
  // Repair from peers

  /** Asks every peer for a proof of our length, to restore missing roots. */
  recoverTreeNodeFromPeers (): void {
    for (const peer of this.peers) this.recoverFrom(peer)
  }

  private recoverFrom (peer: Peer): void {
    const core = this.core
    if (!peer.remoteOpened || peer.remoteFork !== core.fork || peer.remoteLength < core.length || core.length === 0) return
    for (const req of this.requests.values()) if (req.kind === 'repair' && req.peer === peer) return
    this.send(peer, 'repair', -1, { block: null, hash: null, seek: null, upgrade: { start: 0, length: core.length }, manifest: core.manifest === null })
  }

  /**
   * A node we lack turned up while serving or reading. If it is one we ought
   * to hold (we hold a block beneath it or its sibling — a sparse core lacks
   * most nodes by design), fetch a proof for it from a peer and repair.
   */
  onmissingnode (index: number, held = false): void {
    const core = this.core
    if (this.nodeRequests.has(index) || core.length === 0 || (!held && !this.shouldHold(index))) return
    this.lost.add(index)
    this.askForNode(index, new Set())
  }

  private shouldHold (index: number): boolean {
    const ite = new Iterator(index)
    ite.parent()
    const first = ite.leftSpan() / 2
    const last = ite.rightSpan() / 2
    const bit = this.core.bitfield.firstSet(first)
    return bit !== -1 && bit <= last
  }

  private askForNode (index: number, tried: Set<Peer>): void {
    const core = this.core
    let req
    try {
      req = treeNodeProofRequest(index, core.length)
    } catch {
      return
    }
    const cut = req.upgrade!.length
    // Peers holding every block up to the cut hold the node; then any long enough.
    const ok = (p: Peer): boolean => !tried.has(p) && p.remoteFork === core.fork && p.remoteLength >= cut
    const peer = this.pickPeer(p => ok(p) && p.remoteContiguous >= cut) ?? this.pickPeer(ok)
    if (peer === null) return
    tried.add(peer)
    this.nodeTries.set(index, tried)
    this.send(peer, 'node', index, { block: null, hash: req.hash ?? null, seek: null, upgrade: req.upgrade!, manifest: false })
  }

  // -------------------------------------------------------------------------
  // Answers

  /**
   * A data message. The common one, a block on our tree whose proof ends in
   * a node at hand, is checked at once and queued for disk with no promise
   * of its own; anything else takes `handleData`.
   */
  ondata (peer: Peer, data: DataMessage): void {
    const req = data.request !== 0 ? this.requests.get(data.request) ?? null : null
    if (req !== null && req.kind === 'block' && req.peer === peer && req.epoch === this.core.epoch && data.block?.index === req.index) {
      let verified
      try {
        verified = this.core.verifyBlockNow(data)
      } catch (err) {
        this.finish(req)
        if (!isCoded(err)) throw err
        this.rescan()
        this.hostile(peer, err)
        return
      }
      if (req.sized) {
        peer.sizedProofs++
        if (verified === 'unanchored') {
          this.finish(req)
          this.shortProof(peer, req)
          return
        }
      }
      if (verified !== null && verified !== 'unanchored') {
        this.finish(req)
        this.fullProofs.delete(req.index)
        this.storeVerified(peer, verified)
        return
      }
    }
    // Long-lived parts (roots, signature, manifest) must not pin the receive buffer.
    unslabProof(data)
    this.handleData(peer, data).catch(err => {
      // Nothing a peer sends may take us down: drop it instead.
      this.hostile(peer, err as Error)
    })
  }

  /** Queues a verified block for disk; `download` when it is there. */
  private storeVerified (peer: Peer, verified: VerifiedData): void {
    const index = verified.block!.index
    const byteLength = verified.block!.value.byteLength
    // Answered but not stored yet: not asked for again meanwhile.
    this.verifying.add(index)
    this.core.queueBlock(index, verified.block!.value, verified.nodes, verified.epoch, (err, stored) => {
      this.verifying.delete(index)
      // A failed write is our disk's fault, not the peer's: ask again later.
      if (err !== null || !stored) this.rescan()
      else this.emit('download', index, byteLength, peer)
      this.scheduleUpdate()
    })
  }

  private hostile (peer: Peer, err: Error): void {
    this.emit('verification-error', err, peer)
    peer.close()
  }

  private async handleData (peer: Peer, data: DataMessage): Promise<void> {
    const req = data.request !== 0 ? this.requests.get(data.request) ?? null : null
    if (req !== null && req.peer !== peer) return
    if (req !== null) this.finish(req)
    const core = this.core

    if (req !== null && req.kind === 'fork') {
      await this.#forks.ondata(req.id, data)
      this.scheduleUpdate()
      return
    }
    if (data.fork !== core.fork || (req !== null && req.epoch !== core.epoch)) {
      // Made for a tree we are not on (we moved, or the peer did): stale, not hostile.
      if (req !== null) this.settleSide(req)
      this.rescan()
      this.scheduleUpdate()
      return
    }

    const fullyRemote = data.upgrade !== null && data.upgrade.start === 0
    // As Hypercore 11: a fully remote proof sent unasked may show the signer signed two trees.
    if (data.request === 0 && fullyRemote && !core.repairMode) {
      const verdict = await core.checkConflict(data as Proof)
      if (verdict === 'conflict') await this.onconflict(data)
      if (verdict !== 'none') return
    }
    if (req?.kind === 'repair' || req?.kind === 'node' || (data.request === 0 && fullyRemote && core.repairMode)) {
      const ok = fullyRemote && await core.repair(data as Proof)
      if (req?.kind === 'node') {
        if (ok) {
          this.nodeTries.delete(req.index)
          this.lost.delete(req.index)
        }
        else this.askForNode(req.index, this.nodeTries.get(req.index) ?? new Set([peer]))
      }
      this.afterRepair(ok)
      return
    }
    if (req === null) return // unsolicited, or answered after we gave up on it

    if (core.repairMode && data.upgrade !== null) {
      // Our roots are missing, so an upgrade cannot be checked: heal first.
      const ok = fullyRemote && await core.repair(data as Proof)
      if (!fullyRemote) this.recoverFrom(peer)
      this.afterRepair(ok)
      return
    }

    if (data.upgrade !== null) this.applyingUpgrade++
    // Answered but not stored yet: not asked for again meanwhile (a sync arriving with it would).
    const block = data.block?.index ?? -1
    if (block !== -1) this.verifying.add(block)
    try {
      await this.verifyAndApply(peer, req, data)
    } finally {
      if (data.upgrade !== null) this.applyingUpgrade--
      if (block !== -1) this.verifying.delete(block)
    }
    this.scheduleUpdate()
  }

  private async verifyAndApply (peer: Peer, req: Request, data: DataMessage): Promise<void> {
    try {
      await this.checkAndStore(peer, req, data)
    } finally {
      this.settleSide(req)
    }
  }

  private async checkAndStore (peer: Peer, req: Request, data: DataMessage): Promise<void> {
    const core = this.core
    const epoch = core.epoch
    let verified
    try {
      verified = await core.verifyData(data)
    } catch (err) {
      const missing = missingNodeOf(err)
      if (missing !== null) {
        // A node of ours is gone (or, in repair mode, not yet checked): that
        // calls for a repair, not a conflict. The block was not stored: ask again.
        this.onmissingnode(missing)
        this.rescan()
        this.scheduleUpdate()
        return
      }
      if (!isCoded(err)) throw err
      this.rescan()
      // Checked against a tree we left while checking: not the peer's fault.
      if (core.epoch !== epoch) return
      this.hostile(peer, err)
      return
    }
    if (req.kind === 'upgrade' && verified.upgrade === null) this.upgradeFailed.set(peer, peer.remoteLength)
    let stored
    try {
      stored = await core.applyData(verified)
    } catch (err) {
      // Our disk failed us, not the peer: keep it, and ask again later.
      if (!isCoded(err)) throw err
      this.rescan()
      return
    }
    if (!stored) {
      this.rescan()
      return
    }
    if (verified.block !== null) this.emit('download', verified.block.index, verified.block.value.byteLength, peer)
  }

  /** A request of the fork switch or of a seek ended: tell its owner. */
  private settleSide (req: Request): void {
    if (req.kind === 'seek') this.#seeks.onsettled(req.id)
    else if (req.kind === 'fork') this.#forks.onfailed(req.id)
  }

  /** Gives up on a request (its peer left, it timed out, the tree changed). */
  private giveUp (req: Request): void {
    this.finish(req)
    this.settleSide(req)
  }

  onnodata (peer: Peer, msg: NoDataMessage): void {
    const req = this.requests.get(msg.request)
    if (req === undefined || req.peer !== peer) return
    this.giveUp(req)
    this.rescan()
    if (req.kind === 'block') {
      let set = this.notAvailable.get(peer)
      if (set === undefined) this.notAvailable.set(peer, set = new Set())
      if (set.size >= MAX_NOT_AVAILABLE) set.clear()
      set.add(req.index)
    } else if (req.kind === 'upgrade') {
      // Refused with a block attached: ask that peer for upgrades alone from now on.
      if (req.index !== -1) this.#plainUpgrades.add(peer)
      else this.upgradeFailed.set(peer, peer.remoteLength)
    } else if (req.kind === 'node') {
      this.askForNode(req.index, this.nodeTries.get(req.index) ?? new Set([peer]))
    }
    this.scheduleUpdate()
  }

  /**
   * Two signed trees at one length and fork: every peer gets our proof (so
   * it finds out too), the sessions hear `conflict`, and the channels close.
   */
  private async onconflict (theirs: DataMessage): Promise<void> {
    const length = theirs.upgrade!.length
    for (const peer of [...this.peers]) {
      try {
        const proof = await this.core.proof({ block: null, hash: null, seek: null, upgrade: { start: 0, length } })
        peer.sendUnsolicited({ request: 0, fork: proof.fork, block: null, hash: null, seek: null, upgrade: proof.upgrade, manifest: this.core.manifest })
      } catch {
        // Our own proof could not be built: the peer still hears of the conflict when we close.
      }
      peer.close()
    }
    this.emit('conflict', length, theirs.fork, theirs)
  }

  /**
   * After a repair: tell peers, who may have been refused blocks we can prove
   * now (a sync makes them ask again), even if it says what the last one
   * said. Only after one that worked: each is progress, so this cannot loop.
   */
  private afterRepair (repaired: boolean): void {
    if (repaired) for (const p of this.peers) p.sendSync(true)
    this.scheduleUpdate()
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

  scheduleUpdate (): void {
    if (this.updateQueued || this.destroyed) return
    this.updateQueued = true
    queueMicrotask(() => {
      this.updateQueued = false
      this.update()
    })
  }

  private update (): void {
    if (this.destroyed) return
    // Every request of this pass leaves in one frame per connection.
    const corked: Protomux[] = []
    for (const p of this.peers) {
      if (corked.includes(p.mux)) continue
      p.mux.cork()
      corked.push(p.mux)
    }
    try {
      this.schedule()
    } finally {
      for (const mux of corked) mux.uncork()
    }
  }

  private schedule (): void {
    const core = this.core
    this.#forks.next()
    if (this.upgradeRequest === null && this.applyingUpgrade === 0 && !core.repairMode) {
      const peer = this.pickPeer(p => p.remoteFork === core.fork && p.remoteLength > core.length &&
        (this.upgradeFailed.get(p) ?? -1) < p.remoteLength)
      if (peer !== null) {
        const block = this.blockWithUpgrade(peer)
        this.send(peer, 'upgrade', block, {
          block: block === -1 ? null : { index: block, nodes: 0 },
          hash: null, seek: null,
          upgrade: { start: core.length, length: peer.remoteLength - core.length },
          manifest: core.manifest === null
        })
      }
    }
    for (const index of this.#unasked) {
      const r = this.requestBlock(index)
      // Asked, or here: looked at again only after a rescan (a failure, a hotswap, a new peer).
      if (r !== 'busy' && r !== 'nobody') this.#unasked.delete(index)
    }
    for (const range of this.ranges) this.fillRange(range)
    this.wakeSettled()
  }

  private fillRange (range: Range): void {
    const core = this.core
    let i = Math.max(range.cursor, range.scanFrom)
    let pending = false
    if (range.blocks !== null) {
      for (let scanned = 0; i < range.blocks.length && scanned < MAX_SCAN; i++, scanned++) {
        const r = this.requestBlock(range.blocks[i]!)
        if (r === 'busy') break
        if (r === 'nobody') pending = true
        if (!pending) range.scanFrom = i + 1
      }
      return
    }
    const end = Math.min(range.end, core.length)
    for (let scanned = 0; i < end && scanned < MAX_SCAN; scanned++) {
      i = core.bitfield.firstUnset(i)
      if (i >= end) break
      const r = this.requestBlock(i)
      if (r === 'busy') break
      // Blocks nobody has yet must be looked at again on the next pass.
      if (r === 'nobody') pending = true
      i++
      if (!pending) range.scanFrom = i
    }
  }

  /**
   * The first new block we will want once an upgrade from `peer` lands, to
   * ask for with the upgrade in one request (as Hypercore 11 can): one
   * message each way instead of two, and the block's proof shares the
   * upgrade's nodes. -1 when none is wanted, the peer may not hold it, or it
   * refused such a request before (then upgrades are asked for alone).
   */
  private blockWithUpgrade (peer: Peer): number {
    const length = this.core.length
    if (this.#plainUpgrades.has(peer) || peer.remoteContiguous <= length) return -1
    for (const range of this.ranges) {
      if (range.blocks === null && range.end > length) return length
      if (range.blocks !== null) {
        const next = range.blocks[lowerBound(range.blocks, length)]
        if (next !== undefined && next < peer.remoteContiguous) return next
      }
    }
    let first = -1
    for (const index of this.wantedBlocks.keys()) {
      if (index >= length && index < peer.remoteContiguous && (first === -1 || index < first)) first = index
    }
    return first
  }

  /** A request failed or a peer left: the next pass rescans every range from its cursor, and every wanted block. */
  private rescan (): void {
    for (const index of this.wantedBlocks.keys()) this.#unasked.add(index)
    for (const range of this.ranges) range.scanFrom = range.cursor
  }

  /** Sends a request for block `index` if it is needed and someone has it. */
  private requestBlock (index: number): 'have' | 'sent' | 'inflight' | 'busy' | 'nobody' {
    const core = this.core
    if (core.has(index) || core.isStoring(index) || this.verifying.has(index)) return 'have'
    const inflight = this.blockRequests.get(index)
    // A slow peer does not hold a block hostage: after a while, ask another too.
    if (inflight !== undefined && Date.now() - inflight.sent < HOTSWAP_MS) return 'inflight'
    if (index >= core.length) return 'nobody' // after the upgrade
    const na = (p: Peer): boolean => this.notAvailable.get(p)?.has(index) === true
    const peer = this.pickHolder(index, inflight?.peer ?? null)
    if (peer === null && inflight !== undefined) return 'inflight'
    if (peer === null) {
      let holders = 0
      for (const p of this.peers) {
        if (p.remoteFork !== core.fork || na(p)) continue
        if (p.has(index)) holders++
        else if (p.remoteLength > index) p.wantAround(index)
      }
      return holders > 0 ? 'busy' : 'nobody'
    }
    const sized = this.sizedProofNodes(peer, index)
    const missing = this.missingNodeCount(2 * index, sized + 1)
    const nodes = Math.min(missing, sized)
    const id = this.send(peer, 'block', index, {
      block: { index, nodes },
      hash: null, seek: null, upgrade: null, manifest: false
    })
    // Sized short of what we lack: an answer that does not reach a node we hold means ask again in full.
    if (nodes < missing) {
      this.requests.get(id)!.sized = true
      peer.sizedAsked++
    }
    peer.lastBlockAsked = index
    return 'sent'
  }

  /** pickPeer for block `index`: an open peer on our fork that has it, did not refuse it, and is not `not`. */
  private pickHolder (index: number, not: Peer | null): Peer | null {
    const fork = this.core.fork
    let best: Peer | null = null
    const n = this.peers.length
    for (let k = 0; k < n; k++) {
      const p = this.peers[(this.rotate + k) % n]!
      if (!p.remoteOpened || p.removed || p.inflight >= this.maxInflight || p === not) continue
      if (p.remoteFork !== fork || !p.has(index)) continue
      if (best !== null && p.inflight >= best.inflight) continue
      if (this.notAvailable.get(p)?.has(index) === true) continue
      best = p
    }
    this.rotate++
    return best
  }

  /**
   * At most how many nodes to ask `peer` for with block `index` (we ask for
   * fewer when we lack fewer). A peer answers in order, and each answer brings the
   * nodes on its block's way up: by the time this block's answer comes, the
   * answer for the block last asked of the same peer has made their common
   * ancestor known (a verified leaf's ancestors are verified). So the proof
   * need only reach it: a download block after block needs about two nodes
   * a block instead of the nine or ten we lack while hundreds are in flight.
   * Infinity when no earlier answer is to be counted on. An answer that comes short anyway (the earlier one failed, the peer
   * answered out of order) is asked again in full (`shortProof`); a peer
   * whose answers come short often is asked in full from then on.
   */
  private sizedProofNodes (peer: Peer, index: number): number {
    const last = peer.lastBlockAsked
    if (last === -1 || last === index || (this.fullProofs.size > 0 && this.fullProofs.has(index))) return Infinity
    if (peer.shortProofs > 16 && peer.shortProofs * 8 > peer.sizedProofs) return Infinity
    // On trial until 64 answers came: a peer that answers out of order (Hypercore 11 may) costs few re-asks.
    if (peer.sizedProofs < 64 && peer.sizedAsked - peer.sizedProofs >= 32) return Infinity
    // Levels up to the common ancestor of the two leaves.
    let a = last
    let b = index
    let levels = 0
    while (a !== b) {
      a = Math.floor(a / 2)
      b = Math.floor(b / 2)
      levels++
    }
    return levels
  }

  /** A sized proof came short: ask for the block again, with every node we lack. */
  private shortProof (peer: Peer, req: Request): void {
    peer.shortProofs++
    if (this.fullProofs.size >= MAX_NOT_AVAILABLE) this.fullProofs.clear()
    this.fullProofs.add(req.index)
    this.rescan()
    this.scheduleUpdate()
  }

  /** How many nodes from leaf `leaf` up we lack (what a block proof must include), at most `limit`. */
  missingNodeCount (leaf: number, limit = Infinity): number {
    const tree = this.core.tree
    const head = 2 * tree.length
    const ite = new Iterator(leaf)
    let count = 0
    while (count < limit && !ite.contains(head) && !tree.hasVerified(ite.index)) {
      // A root we lack (repair mode) is not asked for: a block proof never carries one.
      ite.parent()
      if (ite.contains(head)) break
      count++
    }
    return count
  }

  /** The least loaded open peer that passes `ok` and has room, or null. */
  private pickPeer (ok: (p: Peer) => boolean): Peer | null {
    let best: Peer | null = null
    const n = this.peers.length
    for (let k = 0; k < n; k++) {
      const p = this.peers[(this.rotate + k) % n]!
      if (!p.remoteOpened || p.removed || p.inflight >= this.maxInflight || !ok(p)) continue
      if (best === null || p.inflight < best.inflight) best = p
    }
    this.rotate++
    return best
  }

  private send (peer: Peer, kind: RequestKind, index: number, body: RequestBody, fork = this.core.fork): number {
    const id = this.nextId++
    const req: Request = { id, peer, sent: Date.now(), kind, index, fork, epoch: this.core.epoch, sized: false, older: null, newer: null }
    this.#deadlines.add(req)
    this.requests.set(id, req)
    if (kind === 'block') this.blockRequests.set(index, req)
    else if (kind === 'upgrade') this.upgradeRequest = req
    else if (kind === 'node') this.nodeRequests.set(index, req)
    peer.sendRequest({ id, fork, block: body.block, hash: body.hash, seek: body.seek, upgrade: body.upgrade, manifest: body.manifest, priority: 0 })
    return id
  }

  /**
   * Gives up on requests a peer sat on (a silent peer cannot stall us), and
   * after HOTSWAP_MS lets another peer be asked for a block too.
   */
  private expired (timedOut: Request[], hotswap: boolean): void {
    for (const req of timedOut) {
      this.giveUp(req)
      req.peer.sendCancel(req.id)
      if (req.kind === 'upgrade') this.upgradeFailed.set(req.peer, req.peer.remoteLength)
    }
    if (timedOut.length > 0 || hotswap) {
      this.rescan()
      this.scheduleUpdate()
    }
  }

  private finish (req: Request): void {
    if (!this.requests.delete(req.id)) return
    this.#deadlines.remove(req)
    req.peer.inflight--
    if (req.kind === 'block') {
      if (this.blockRequests.get(req.index) === req) this.blockRequests.delete(req.index)
      // Answered or not, a wanted block is looked at again: it may not be here yet.
      if (this.wantedBlocks.has(req.index)) this.#unasked.add(req.index)
    }
    else if (req.kind === 'upgrade') this.upgradeRequest = null
    else if (req.kind === 'node') this.nodeRequests.delete(req.index)
    this.wakeSettled()
  }

  private checkRanges (): void {
    const core = this.core
    for (const range of this.ranges) {
      if (range.blocks !== null) {
        while (range.cursor < range.blocks.length && core.has(range.blocks[range.cursor]!)) range.cursor++
        if (range.cursor >= range.blocks.length) this.completeRange(range)
        continue
      }
      range.cursor = core.bitfield.firstUnset(range.cursor)
      if (range.end !== Infinity && range.cursor >= range.end) this.completeRange(range)
    }
  }

  private completeRange (range: Range): void {
    this.ranges.delete(range)
    range.resolve()
  }
}

function noop (): void {}

/** The first position in sorted `list` whose value is at least `value`. */
function lowerBound (list: number[], value: number): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]! < value) lo = mid + 1
    else hi = mid
  }
  return lo
}
