/**
 * One peer of one core: a protomux channel speaking Hypercore 11's
 * `hypercore/alpha` protocol. This module owns the wire — the handshake
 * capability, what the remote told us (length, fork, which blocks it has),
 * and answering its requests with proofs. Which blocks to ask for, and from
 * whom, is the replicator's business.
 */
import type Protomux from 'protomux'
import b4a from 'b4a'
import { wire, type DataMessage, type RequestMessage, type SyncMessage, type RangeMessage, type BitfieldMessage, type WantMessage, type ExtensionMessage, type NoDataMessage, type HandshakeMessage } from './messages'
import { replicateCapability } from './crypto'
import { Bitfield } from './bitfield'
import { isCoded, missingNodeOf } from './errors'
import type { Core } from './core'

export const PROTOCOL = 'hypercore/alpha'

/** noData reasons, as Hypercore 11 numbers them. */
export const NOT_AVAILABLE = 1
export const INVALID_REQUEST = 2

/** Requests a peer may have queued with us before we stop listening to it. */
const MAX_QUEUED_REQUESTS = 8192
const MAX_INVALID_REQUESTS = 64
/** Hypercore's want batches: power-of-two ranges of at most 2^21 blocks. */
export const WANT_BATCH = 2 ** 21
const MIN_WANT = 32
/** Bits per bitfield message when answering a want. */
const BITFIELD_CHUNK = 2 ** 15
/**
 * Syncs sent in reply to a remote's sync: a burst, then this many a second.
 * Replies already happen only when what we would say changed; the limit
 * bounds a remote that keeps changing its mind.
 */
const SYNC_REPLY_BURST = 8
const SYNC_REPLIES_PER_SECOND = 4

/** A request as the replicator writes it; the id, fork and priority are filled in when it is sent. */
export type RequestBody = Omit<RequestMessage, 'id' | 'fork' | 'priority'>

/** How blocks for a peer are read: verified, and fetched back from others when rotten. */
const SERVING = { verify: true, serving: true } as const

/** What the peer module needs from the replicator above it. */
export interface PeerHost {
  readonly core: Core
  /** Some session of the core wants it replicated (Hypercore 11's `downloading` sync flag). */
  readonly downloading: boolean
  onopen (peer: Peer): void
  onclose (peer: Peer): void
  onsync (peer: Peer, changed: boolean): void
  onhave (peer: Peer): void
  /** Returns nothing: protomux would hold the connection corked until a returned promise settled. */
  ondata (peer: Peer, data: DataMessage): void
  onnodata (peer: Peer, msg: NoDataMessage): void
  onextension (peer: Peer, name: string, message: Uint8Array): void
  onupload (peer: Peer, index: number, byteLength: number): void
  /** Serving hit a tree node we lack: a chance to repair it from peers. */
  onmissingnode (index: number): void
}

export class Peer {
  readonly channel: Protomux.Channel
  readonly stream: Protomux.MuxStream
  remoteOpened = false
  removed = false

  remoteFork = 0
  remoteLength = 0
  /** What the remote last said our length is (Hypercore's lengthAcked). */
  lengthAcked = 0
  remoteCanUpgrade = false
  remoteHasManifest = false
  remoteSynced = false
  remoteDownloading = true
  /** The remote has every block below this. */
  remoteContiguous = 0
  /** The remote answers `seek` requests (its handshake says so). */
  remoteSupportsSeeks = false
  /** Sparse knowledge of the remote's blocks, only below our own length. */
  readonly remoteBitfield = new Bitfield()
  /** Requests we sent it that are still out. */
  inflight = 0
  /**
   * The replicator's notes for sizing block proofs: the block it last asked
   * this peer for, and how often a proof sized on the strength of that
   * answer arriving first came short (see ProofSizing.nodes).
   */
  lastBlockAsked = -1
  /** Sized proofs answered, and answered short. */
  sizedProofs = 0
  shortProofs = 0
  /** Blocks asked for in full because its answers came short often (see ProofSizing.nodes). */
  fullAsked = 0
  /** Want batches already asked for. */
  private readonly wanted = new Set<number>()

  private readonly queue: RequestMessage[] = []
  private serving = false
  private invalidRequests = 0
  private lastExtensionSent = ''
  private lastExtensionRecv = ''
  /** The last sync we sent: one that would say the same again is not sent. */
  #lastSync: SyncMessage | null = null
  #replyTokens = SYNC_REPLY_BURST
  #replyRefilled = Date.now()
  #replyTimer: ReturnType<typeof setTimeout> | null = null

  private readonly sync: Protomux.Message<SyncMessage>
  private readonly request: Protomux.Message<RequestMessage>
  private readonly cancel: Protomux.Message<{ request: number }>
  private readonly data: Protomux.Message<DataMessage>
  private readonly noData: Protomux.Message<NoDataMessage>
  private readonly want: Protomux.Message<WantMessage>
  private readonly bitfield: Protomux.Message<BitfieldMessage>
  private readonly range: Protomux.Message<RangeMessage>
  private readonly extension: Protomux.Message<ExtensionMessage>

  private constructor (readonly host: PeerHost, readonly mux: Protomux, channel: Protomux.Channel) {
    this.channel = channel
    this.stream = mux.stream
    const msgs = channel.messages
    this.sync = msgs[0]!
    this.request = msgs[1]!
    this.cancel = msgs[2]!
    this.data = msgs[3]!
    this.noData = msgs[4]!
    this.want = msgs[5]!
    this.bitfield = msgs[7]!
    this.range = msgs[8]!
    this.extension = msgs[9]!
  }

  /** Opens our side of the channel for `core` on `mux`; null if it is open already. */
  static open (host: PeerHost, mux: Protomux): Peer | null {
    const core = host.core
    if (mux.opened({ protocol: PROTOCOL, id: core.discoveryKey })) return null
    const channel = mux.createChannel({
      protocol: PROTOCOL,
      aliases: ['hypercore'],
      id: core.discoveryKey,
      handshake: wire.handshake,
      messages: Peer.#messages,
      onopen: Peer.#onopen,
      onclose: Peer.#onclose,
      ondrain: Peer.#ondrain
    })
    if (channel === null) return null
    const peer = new Peer(host, mux, channel)
    channel.userData = peer
    channel.open({
      seeks: true,
      capability: replicateCapability(mux.stream.isInitiator, core.key, mux.stream.handshakeHash!)
    })
    return peer
  }

  // protomux calls these with the channel, whose userData is its peer. They
  // are the same functions for every peer, not closures made per channel:
  // code V8 optimised around one channel's closures is thrown away once that
  // channel is collected (traced: protomux's receive path and our send
  // paths, on every connection of the bench's download rounds).
  static #onopen (m: HandshakeMessage, channel: Protomux.Channel): void { peerOf(channel).onopen(m) }
  static #onclose (_isRemote: boolean, channel: Protomux.Channel): void { peerOf(channel).onclose() }
  static #ondrain (channel: Protomux.Channel): void { peerOf(channel).drain() }
  static readonly #messages: Array<Protomux.MessageOptions<any>> = [
    { encoding: wire.sync, onmessage: (m: SyncMessage, channel: Protomux.Channel) => { peerOf(channel).onsync(m) } },
    { encoding: wire.request, onmessage: (m: RequestMessage, channel: Protomux.Channel) => { peerOf(channel).onrequest(m) } },
    { encoding: wire.cancel, onmessage: (m: { request: number }, channel: Protomux.Channel) => { peerOf(channel).oncancel(m.request) } },
    { encoding: wire.data, onmessage: (m: DataMessage, channel: Protomux.Channel) => { const peer = peerOf(channel); peer.host.ondata(peer, m) } },
    { encoding: wire.noData, onmessage: (m: NoDataMessage, channel: Protomux.Channel) => { const peer = peerOf(channel); peer.host.onnodata(peer, m) } },
    { encoding: wire.want, onmessage: (m: WantMessage, channel: Protomux.Channel) => { peerOf(channel).onwant(m) } },
    { encoding: wire.unwant },
    { encoding: wire.bitfield, onmessage: (m: BitfieldMessage, channel: Protomux.Channel) => { peerOf(channel).onbitfield(m) } },
    { encoding: wire.range, onmessage: (m: RangeMessage, channel: Protomux.Channel) => { peerOf(channel).onrange(m) } },
    { encoding: wire.extension, onmessage: (m: ExtensionMessage, channel: Protomux.Channel) => { peerOf(channel).onextension(m) } }
  ]

  get remotePublicKey (): Uint8Array | null {
    return (this.stream as unknown as { remotePublicKey?: Uint8Array | null }).remotePublicKey ?? null
  }

  private onopen (m: HandshakeMessage): void {
    const expected = replicateCapability(!this.stream.isInitiator, this.host.core.key, this.stream.handshakeHash!)
    if (!b4a.equals(m.capability, expected)) {
      // The remote does not know the key: it learns nothing more from us.
      this.channel.close()
      return
    }
    if (this.remoteOpened) return
    this.remoteOpened = true
    this.remoteSupportsSeeks = m.seeks
    this.mux.cork()
    // The initiator speaks first; the responder answers its sync with one
    // that already acks its length and may offer upgrades (one sync saved
    // per channel: most of what a reconnect of many cores costs is per channel).
    if (this.stream.isInitiator) this.sendSync()
    const contig = this.host.core.contiguousLength
    if (contig > 0) send(this.range, { drop: false, start: 0, length: contig })
    this.mux.uncork()
    this.host.onopen(this)
  }

  private onclose (): void {
    this.removed = true
    if (this.#replyTimer !== null) clearTimeout(this.#replyTimer)
    this.#replyTimer = null
    this.queue.length = 0
    this.host.onclose(this)
    this.remoteOpened = false
  }

  /** Drops this peer for this core; the connection and other cores stay. */
  close (): void {
    this.channel.close()
  }

  // -------------------------------------------------------------------------
  // What the remote knows

  /**
   * Tells the remote our fork and length (and acks its own). A sync that
   * would say what the last one said is not sent: the channel is reliable,
   * so the remote knows it already, and two peers that answered every sync
   * with a sync (as on different forks) would never stop. `again` sends it
   * anyway, as a prompt to ask again for what we refused (never in reply to
   * a sync: the remote answers only a sync that changes what it says).
   */
  sendSync (again = false, reply = false): void {
    if (!this.remoteOpened) return
    const core = this.host.core
    const sameFork = core.fork === this.remoteFork
    const msg: SyncMessage = {
      fork: core.fork,
      length: core.length,
      remoteLength: sameFork ? this.remoteLength : 0,
      // We can prove any length up to ours, unless our roots are missing. Not
      // before we know the remote's fork: Hypercore 11 asks for an upgrade on
      // the strength of this flag, and one on another fork would ask in vain.
      canUpgrade: this.remoteSynced && sameFork && !core.repairMode && this.remoteLength <= core.length,
      uploading: true,
      downloading: this.host.downloading,
      hasManifest: core.manifest !== null,
      allowPush: false
    }
    const last = this.#lastSync
    if (!again && last !== null && sameSync(last, msg)) return
    // A reply that would only ack the remote's new length, to a remote not
    // behind us, is left out: an ack matters to a peer that may upgrade from
    // us (Hypercore 11 does so eagerly when we ack its length), and the next
    // sync carries it anyway. One sync less per core that caught up.
    if (reply && last !== null && this.remoteLength >= core.length && sameSync(last, { ...msg, remoteLength: last.remoteLength })) return
    this.#lastSync = msg
    send(this.sync, msg)
  }

  private onsync (m: SyncMessage): void {
    const core = this.host.core
    const changed = m.length !== this.remoteLength || m.fork !== this.remoteFork
    if (m.fork !== this.remoteFork) this.wanted.clear() // its blocks are another fork's now
    this.remoteSynced = true
    this.remoteFork = m.fork
    this.remoteLength = m.length
    this.remoteCanUpgrade = m.canUpgrade
    this.remoteHasManifest = m.hasManifest
    this.remoteDownloading = m.downloading
    this.lengthAcked = m.fork === core.fork ? m.remoteLength : 0
    // Ack a new length of the remote's (Hypercore only upgrades from peers
    // that acked it): sendSync sends only if that changes what we say.
    this.replySync()
    this.host.onsync(this, changed)
  }

  /** sendSync in answer to the remote, at most SYNC_REPLIES_PER_SECOND after a burst. */
  private replySync (): void {
    const now = Date.now()
    this.#replyTokens = Math.min(SYNC_REPLY_BURST, this.#replyTokens + (now - this.#replyRefilled) * SYNC_REPLIES_PER_SECOND / 1000)
    this.#replyRefilled = now
    if (this.#replyTokens >= 1) {
      this.#replyTokens--
      this.sendSync(false, true)
      return
    }
    if (this.#replyTimer !== null) return
    // Out of budget: one reply later says whatever is true by then.
    this.#replyTimer = setTimeout(() => {
      this.#replyTimer = null
      if (!this.removed) this.replySync()
    }, Math.ceil(1000 / SYNC_REPLIES_PER_SECOND))
    this.#replyTimer.unref?.()
  }

  /** Our blocks [start, start + length) are gone (cleared, rotten, or cut by a truncation or a reorg): the remote stops asking us for them (Hypercore's range drop). */
  announceDrop (start: number, length: number): void {
    // Its answers to our wants were cut at our old length: ask again.
    this.wanted.clear()
    if (!this.remoteOpened || length <= 0) return
    send(this.range, { drop: true, start, length })
  }

  /** Whether the remote has block `index`, as far as it told us. */
  has (index: number): boolean {
    return index < this.remoteContiguous || this.remoteBitfield.get(index)
  }

  /** Announces blocks [start, start + length) we now hold. */
  announce (start: number, length: number): void {
    if (!this.remoteOpened) return
    const core = this.host.core
    // Every peer is told, as Hypercore 11 tells every peer: one that holds
    // these blocks itself tracks who holds what (remoteContiguousLength, whom
    // to send its own readers to), and one on another fork may be about to
    // follow us.
    if (core.contiguousLength === core.length && start + length === core.length) {
      send(this.range, { drop: false, start: 0, length: core.length })
      return
    }
    send(this.range, { drop: false, start, length })
  }

  private onrange (m: RangeMessage): void {
    if (m.drop) {
      if (m.start < this.remoteContiguous) {
        // What it still holds past the dropped range stays known.
        const end = m.start + m.length
        if (end < this.remoteContiguous) this.setRemote(end, this.remoteContiguous - end, true)
        this.remoteContiguous = m.start
      }
      this.setRemote(m.start, m.length, false)
    } else if (m.start <= this.remoteContiguous) {
      // A number, not a bitfield: it may run ahead of our length (ranges can
      // arrive before the sync that announces them) without costing memory.
      this.remoteContiguous = Math.max(this.remoteContiguous, m.start + m.length)
    } else {
      this.setRemote(m.start, m.length, true)
    }
    this.host.onhave(this)
  }

  private onbitfield (m: BitfieldMessage): void {
    if (m.start % 32 !== 0) return
    if (m.start < this.remoteContiguous) this.remoteContiguous = m.start
    const end = Math.min(m.start + m.bitfield.length * 32, this.host.core.length)
    if (m.start >= end) return
    const words = Math.ceil((end - m.start) / 32)
    this.remoteBitfield.setWords(m.start, m.bitfield.subarray(0, words))
    this.host.onhave(this)
  }

  /** Sparse remote state is only kept below our length: bounded by what we can verify. */
  private setRemote (start: number, length: number, value: boolean): void {
    const end = Math.min(start + length, this.host.core.length)
    if (start >= end) return
    this.remoteBitfield.setRange(start, end, value)
  }

  /** Asks the remote which blocks it has around `index` (Hypercore's want batches). */
  wantAround (index: number): void {
    const start = index - (index % WANT_BATCH)
    if (this.wanted.has(start) || !this.remoteOpened) return
    this.wanted.add(start)
    send(this.want, { start, length: WANT_BATCH, any: false })
  }

  private onwant (m: WantMessage): void {
    const core = this.host.core
    const { start, length } = m
    // Hypercore's rules for a want range: a power of two, aligned, not too big.
    if (length < MIN_WANT || length > WANT_BATCH || (length & (length - 1)) !== 0 || start % length !== 0) return
    const contig = core.contiguousLength
    if (start + length < contig || core.length === contig || (m.any && start < contig)) {
      if (contig > 0) send(this.range, { drop: false, start: 0, length: contig })
      return
    }
    const end = Math.min(start + length, core.length)
    for (let at = start; at < end; at += BITFIELD_CHUNK) {
      const bits = Math.min(BITFIELD_CHUNK, end - at)
      const first = core.bitfield.firstSet(at)
      if (first === -1 || first >= at + bits) continue
      send(this.bitfield, { start: at, bitfield: core.bitfield.words(at, Math.ceil(bits / 32)) })
    }
  }

  // -------------------------------------------------------------------------
  // Asking

  sendRequest (msg: RequestMessage): void {
    this.inflight++
    send(this.request, msg)
  }

  sendCancel (id: number): void {
    send(this.cancel, { request: id })
  }

  sendExtension (name: string, message: Uint8Array): void {
    send(this.extension, { name: name === this.lastExtensionSent ? '' : name, message })
    this.lastExtensionSent = name
  }

  private onextension (m: ExtensionMessage): void {
    const name = m.name || this.lastExtensionRecv
    this.lastExtensionRecv = name
    this.host.onextension(this, name, m.message)
  }

  // -------------------------------------------------------------------------
  // Answering

  private onrequest (m: RequestMessage): void {
    if (this.queue.length >= MAX_QUEUED_REQUESTS) {
      this.close()
      return
    }
    this.queue.push(m)
    if (!this.serving) void this.serve()
  }

  private oncancel (id: number): void {
    const i = this.queue.findIndex(m => m.id === id)
    if (i !== -1) this.queue.splice(i, 1)
  }

  private drain (): void {
    if (!this.serving && this.queue.length > 0) void this.serve()
  }

  private async serve (): Promise<void> {
    this.serving = true
    try {
      while (this.queue.length > 0 && !this.removed && this.mux.drained) {
        const batch = this.queue.splice(0, 128)
        const core = this.host.core
        // Neighbouring blocks are read from disk together. `slots[k]`: where
        // request k's block is among them, told before the read (the fork may move meanwhile), or -1.
        const wanted: number[] = []
        const slots = new Array<number>(batch.length)
        for (let k = 0; k < batch.length; k++) {
          const m = batch[k]!
          slots[k] = m.block !== null && m.fork === core.fork ? wanted.push(m.block.index) - 1 : -1
        }
        // Verified: a block that does not match its leaf is cleared, refused and fetched back.
        const values = wanted.length > 0 ? await core.getBlocks(wanted, SERVING).catch(() => null) : null
        // Most answers are made at once from nodes at hand, and sent as each is
        // made (their proof nodes are reused by the next); the rest wait for reads.
        const later: Array<Promise<DataMessage | NoDataMessage | null>> = []
        this.mux.cork()
        for (let k = 0; k < batch.length; k++) {
          const m = batch[k]!
          const value = values === null || slots[k] === -1 ? undefined : values[slots[k]!]
          const now = this.answerNow(m, value)
          if (now !== null) this.sendAnswer(now)
          else later.push(this.answer(m, value))
        }
        this.mux.uncork()
        if (later.length === 0) continue
        const answers = await Promise.all(later)
        this.mux.cork()
        for (const a of answers) if (a !== null) this.sendAnswer(a)
        this.mux.uncork()
      }
    } finally {
      this.serving = false
    }
  }

  /** A data message nobody asked for (request 0): a proof of our tree, as Hypercore 11 sends on a conflict. */
  sendUnsolicited (msg: DataMessage): void {
    if (this.remoteOpened) send(this.data, msg)
  }

  private sendAnswer (a: DataMessage | NoDataMessage): void {
    if ('fork' in a) {
      send(this.data, a)
      if (a.block !== null) this.host.onupload(this, a.block.index, a.block.value.byteLength)
    } else {
      send(this.noData, a)
    }
  }

  /**
   * The data message answering a plain block request, made without waiting
   * from its block read ahead (`value`; undefined if not read, null if not
   * held) and verified nodes at hand; null when it takes more (then `answer`).
   */
  private answerNow (m: RequestMessage, value: Uint8Array | null | undefined): DataMessage | null {
    const core = this.host.core
    if (m.block === null || m.fork !== core.fork || m.manifest) return null
    if (value === undefined || value === null) return null
    let nodes
    try {
      nodes = core.blockProofNodesNow(m)
    } catch {
      return null // `answer` says what is wrong with it
    }
    if (nodes === null) return null
    return { request: m.id, fork: core.fork, block: { index: m.block.index, value, nodes }, hash: null, seek: null, upgrade: null, manifest: null }
  }

  /** The data message answering `m`, or a noData saying why not; `prefetched` as `answerNow`'s value. */
  private async answer (m: RequestMessage, prefetched: Uint8Array | null | undefined): Promise<DataMessage | NoDataMessage | null> {
    const core = this.host.core
    const manifest = m.manifest ? core.manifest : null
    const refuse = (reason: number): DataMessage | NoDataMessage => {
      if (manifest !== null) return { request: m.id, fork: core.fork, block: null, hash: null, seek: null, upgrade: null, manifest }
      return { request: m.id, reason }
    }
    if (m.fork !== core.fork) return refuse(NOT_AVAILABLE)
    if (m.block !== null && !core.has(m.block.index)) return refuse(NOT_AVAILABLE)
    try {
      const [proof, value] = await Promise.all([
        core.proof({ block: m.block, hash: m.hash, seek: m.seek, upgrade: m.upgrade }),
        m.block === null ? Promise.resolve(null) : prefetched !== undefined ? Promise.resolve(prefetched) : core.getBlock(m.block.index, SERVING)
      ])
      if (m.block !== null && value === null) return refuse(NOT_AVAILABLE)
      return {
        request: m.id,
        fork: proof.fork,
        block: proof.block === null ? null : { index: proof.block.index, value: value!, nodes: proof.block.nodes },
        hash: proof.hash,
        seek: proof.seek,
        upgrade: proof.upgrade,
        manifest
      }
    } catch (err) {
      const missing = missingNodeOf(err)
      if (missing !== null) {
        // We cannot prove it because a node of ours is gone: say so, and heal.
        this.host.onmissingnode(missing)
        return refuse(NOT_AVAILABLE)
      }
      if (!isCoded(err)) throw err
      if (++this.invalidRequests >= MAX_INVALID_REQUESTS) this.close()
      return refuse(INVALID_REQUEST)
    }
  }
}

/** The channel's peer (set as its userData when the channel is made). */
function peerOf (channel: Protomux.Channel): Peer {
  return channel.userData as Peer
}

/**
 * Sends `payload` as `message`. Every message of every channel is sent from
 * this one call site, so V8 sees protomux's per-channel send closures as the
 * one function they are, and code optimised for one connection's stays
 * valid for the next.
 */
function send<T> (message: Protomux.Message<T>, payload: T): void {
  message.send(payload)
}

function sameSync (a: SyncMessage, b: SyncMessage): boolean {
  return a.fork === b.fork && a.length === b.length && a.remoteLength === b.remoteLength &&
    a.canUpgrade === b.canUpgrade && a.uploading === b.uploading && a.downloading === b.downloading &&
    a.hasManifest === b.hasManifest && a.allowPush === b.allowPush
}
