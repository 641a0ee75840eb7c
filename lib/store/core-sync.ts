/**
 * Per-core channels a store opens for a reason, and closes when the reason
 * is gone, so idle cores hold no channel, no file and no memory.
 *
 * A core sync replicates one core over one connection:
 *  - with a group member (its mux carries the group channel), until both
 *    sides hold the same — same fork and length, and for full replicas every
 *    block on both sides — or until nothing moves for a while;
 *  - with any other peer that opened a channel for a core we hold (Corestore
 *    style), for as long as that peer asks.
 * Either way, while the remote says a session of its own wants the core
 * (Hypercore 11's `downloading`), the channel stays: a core a user holds
 * open on one side keeps replicating live, as under Corestore.
 *
 * Syncs the store starts itself wait for one of a bounded number of slots;
 * syncs a peer asks for start at once (bounded per connection), so two
 * stores that each wait on the other can never deadlock.
 */
import type Protomux from 'protomux'
import type { Hypercore } from '../hypercore'
import { PROTOCOL, type Peer } from '../peer'
import type { CoreRecord } from './catalog'
import type { GroupSync } from './group-sync'

/** Core syncs the store starts at once, at most (each holds a core open: about 4 files). */
export const DEFAULT_MAX_SYNCS = 32
/** Core syncs one connection may ask of us at once. */
const MAX_ASKED_PER_MUX = 256
/** How often running syncs are looked at (ms). */
const TICK = 50
/** A channel the remote has not opened by then is given up on (ms). */
const OPEN_TIMEOUT = 15000
/** A sync with a member where nothing moved for this long ends (ms); a later check retries it. */
const STALL_TIMEOUT = 5000
/**
 * While cores sync with a member, what their channels send goes out at most
 * this often (ms), many cores' messages in one frame: dozens of small
 * per-core exchanges would otherwise cost a Noise frame (about 20 bytes) each.
 */
const FLUSH_EVERY = 2
/** Batching goes on this long after the last core converged (ms). */
const BATCH_LINGER = 200

export interface CoreSyncHost {
  /** Opens `record` for the store's own use and counts one use (the session is shared by all uses). */
  use (record: CoreRecord): Hypercore
  /** Gives one use back: the core closes once it has none and no user session. */
  unuse (record: CoreRecord): void
  /** Reads an open core's state into the catalog now. */
  refresh (record: CoreRecord): void
  /** The group member on `mux`, if the connection has one. */
  memberOn (mux: Protomux): GroupSync | null
  readonly full: boolean
  /** A channel for a core opened on a connection (for stats). */
  onchannel (): void
}

class CoreSync {
  readonly record: CoreRecord
  readonly mux: Protomux
  readonly asked: boolean
  session: Hypercore | null = null
  started = 0
  progress = ''
  progressAt = 0
  finished = false
  /** Runs in one of the store's own slots. */
  slot = false
  /** The peer on this connection, once seen (it keeps what the remote last said after it closes); its channel counted. */
  peer: Peer | null = null
  /** The core is open and attached to the connection. */
  attached = false

  constructor (record: CoreRecord, mux: Protomux, asked: boolean) {
    this.record = record
    this.mux = mux
    this.asked = asked
  }
}

export class CoreSyncs {
  readonly #host: CoreSyncHost
  readonly #maxSyncs: number
  readonly #byMux = new Map<Protomux, Map<string, CoreSync>>()
  readonly #queue: CoreSync[] = []
  #running = 0
  readonly #asked = new Map<Protomux, { n: number, waiting: Array<() => void> }>()
  readonly #active = new Set<CoreSync>()
  /** Cores opening per connection: the connection is corked meanwhile. */
  readonly #opening = new Map<Protomux, number>()
  /** Connections whose messages are batched while cores converge with a member. */
  readonly #batching = new Map<Protomux, ReturnType<typeof setInterval>>()
  readonly #quietSince = new Map<Protomux, number>()
  #ticker: ReturnType<typeof setInterval> | null = null
  #closed = false

  constructor (host: CoreSyncHost, maxSyncs = DEFAULT_MAX_SYNCS) {
    this.#host = host
    this.#maxSyncs = Math.max(1, maxSyncs)
  }

  /** Core syncs running or queued. */
  get size (): number {
    return this.#active.size + this.#queue.length
  }

  isSyncing (record: CoreRecord, mux: Protomux): boolean {
    return this.#byMux.get(mux)?.has(record.id) ?? false
  }

  /** Core syncs with this connection, running or queued. */
  count (mux: Protomux): number {
    return this.#byMux.get(mux)?.size ?? 0
  }

  /** The store wants `record` synced over `mux`: waits for a slot. */
  start (record: CoreRecord, mux: Protomux): void {
    const sync = this.#add(record, mux, false)
    if (sync === null) return
    this.#queue.push(sync)
    this.#drain()
  }

  /**
   * A peer on `mux` opened a channel for `record`, one of its channels came
   * up, or a user session wants it replicated: hold the core open for it.
   * Resolves once the core is attached to the connection (a pending channel
   * is then taken up). `asked`: the remote asked, and may ask only so much at once.
   */
  async serve (record: CoreRecord, mux: Protomux, peer: Peer | null = null, asked = true): Promise<void> {
    if (this.isSyncing(record, mux)) {
      const existing = this.#byMux.get(mux)!.get(record.id)!
      if (peer !== null) this.#seen(existing, peer)
      if (existing.session === null && !existing.asked) {
        // Queued for a slot of ours, but the peer asked first: start it now.
        const i = this.#queue.indexOf(existing)
        if (i !== -1) this.#queue.splice(i, 1)
        this.#run(existing, false)
      }
      await existing.session?.ready().catch(noop)
      return
    }
    if (asked) await this.#slotFor(mux)
    const sync = this.#add(record, mux, asked)
    if (sync === null) {
      if (asked) this.#freeSlotFor(mux)
      return
    }
    this.#run(sync, false)
    if (peer !== null) this.#seen(sync, peer)
    await sync.session?.ready().catch(noop)
  }

  #add (record: CoreRecord, mux: Protomux, asked: boolean): CoreSync | null {
    if (this.#closed || mux.stream.destroyed) return null
    let syncs = this.#byMux.get(mux)
    if (syncs === undefined) {
      this.#byMux.set(mux, syncs = new Map())
      mux.stream.once('close', () => this.#dropMux(mux))
    }
    if (syncs.has(record.id)) return null
    const sync = new CoreSync(record, mux, asked)
    syncs.set(record.id, sync)
    return sync
  }

  #drain (): void {
    while (this.#running < this.#maxSyncs && this.#queue.length > 0) {
      const sync = this.#queue.shift()!
      if (sync.finished) continue
      this.#run(sync, true)
    }
  }

  #run (sync: CoreSync, slot: boolean): void {
    if (slot) this.#running++
    sync.slot = slot
    sync.started = sync.progressAt = Date.now()
    let session: Hypercore
    try {
      session = this.#host.use(sync.record)
    } catch {
      this.#finish(sync, false)
      return
    }
    sync.session = session
    this.#active.add(sync)
    // Channels that open together go out together: one frame on the wire instead of one each.
    this.#cork(sync.mux)
    if (this.#host.memberOn(sync.mux) !== null) this.#batch(sync.mux, true)
    session.ready().then(() => {
      if (!sync.finished) {
        session.replicate(sync.mux)
        sync.attached = true
        this.#startTicker()
      }
      this.#uncork(sync.mux)
    }, () => {
      this.#uncork(sync.mux)
      this.#finish(sync, false)
    })
  }

  #cork (mux: Protomux): void {
    const n = this.#opening.get(mux) ?? 0
    this.#opening.set(mux, n + 1)
    if (n === 0) mux.cork()
  }

  #uncork (mux: Protomux): void {
    const n = (this.#opening.get(mux) ?? 1) - 1
    if (n > 0) {
      this.#opening.set(mux, n)
      return
    }
    this.#opening.delete(mux)
    mux.uncork()
  }

  #batch (mux: Protomux, on: boolean): void {
    const timer = this.#batching.get(mux)
    if (on === (timer !== undefined)) return
    if (on) {
      mux.cork()
      const flush = setInterval(() => {
        mux.uncork()
        mux.cork()
      }, FLUSH_EVERY)
      // Not unref'd: it holds messages waiting to go out.
      this.#batching.set(mux, flush)
      return
    }
    clearInterval(timer)
    this.#batching.delete(mux)
    mux.uncork()
  }

  #startTicker (): void {
    if (this.#ticker !== null) return
    this.#ticker = setInterval(() => this.#tick(), TICK)
    this.#ticker.unref?.()
  }

  #tick (): void {
    const now = Date.now()
    const converging = new Set<Protomux>()
    for (const sync of [...this.#active]) {
      const session = sync.session
      if (session === null || !sync.attached) continue
      if (sync.mux.stream.destroyed || session.closing !== null) {
        this.#finish(sync, false)
        continue
      }
      const peer = peerOn(session, sync.mux)
      if (peer === null) {
        // The remote closed the channel (perhaps before we saw it open): it is done with the core.
        // Agreed if what the peer last said matches what we hold.
        if (sync.peer !== null || !sync.mux.opened({ protocol: PROTOCOL, id: sync.record.discoveryKey })) this.#finish(sync, sync.peer !== null && this.#agreed(session, sync.peer, true))
        else if (now - sync.started > OPEN_TIMEOUT) this.#finish(sync, false)
        continue
      }
      this.#seen(sync, peer)
      // A remote that wants the core replicated (a session of its own is active) keeps it: as in Hypercore 11.
      if (peer.remoteDownloading) {
        sync.progressAt = now
        continue
      }
      if (this.#host.memberOn(sync.mux) === null) {
        // A plain peer that does not want it: served only for as long as it asks.
        if (peer.remoteSynced) this.#finish(sync, false)
        continue
      }
      if (this.#agreed(session, peer, false)) {
        this.#finish(sync, true)
        continue
      }
      converging.add(sync.mux)
      const progress = [session.fork, session.length, session.contiguousLength, peer.remoteLength, peer.remoteContiguous, peer.inflight].join()
      if (progress !== sync.progress) {
        sync.progress = progress
        sync.progressAt = now
      } else if (now - sync.progressAt > STALL_TIMEOUT) {
        this.#finish(sync, false)
      }
    }
    for (const sync of this.#active) if (!sync.attached && this.#host.memberOn(sync.mux) !== null) converging.add(sync.mux)
    for (const mux of [...this.#batching.keys()]) {
      if (converging.has(mux)) {
        this.#quietSince.delete(mux)
        continue
      }
      // A little longer: the channels of the cores just done close in the batch too.
      const since = this.#quietSince.get(mux)
      if (since === undefined) this.#quietSince.set(mux, now)
      else if (now - since >= BATCH_LINGER) {
        this.#quietSince.delete(mux)
        this.#batch(mux, false)
      }
    }
    if (this.#active.size === 0 && this.#batching.size === 0 && this.#ticker !== null) {
      clearInterval(this.#ticker)
      this.#ticker = null
    }
  }

  /** The channel of `sync` is up: counted once, and its peer kept. */
  #seen (sync: CoreSync, peer: Peer): void {
    if (sync.peer !== null) return
    sync.peer = peer
    this.#host.onchannel()
  }

  /** Both sides hold the same (`closed`: the channel is gone, requests in flight no longer matter). */
  #agreed (session: Hypercore, peer: Peer, closed: boolean): boolean {
    // A core in repair mode agrees with no one: its roots are still to come.
    if (session.repairMode || !peer.remoteSynced || (!closed && peer.inflight > 0)) return false
    if (peer.remoteFork !== session.fork || peer.remoteLength !== session.length) return false
    if (!this.#host.full) return true
    return session.contiguousLength >= session.length && peer.remoteContiguous >= session.length
  }

  #finish (sync: CoreSync, agreed: boolean): void {
    if (sync.finished) return
    sync.finished = true
    this.#active.delete(sync)
    const syncs = this.#byMux.get(sync.mux)
    if (syncs?.get(sync.record.id) === sync) syncs.delete(sync.record.id)
    if (sync.session !== null) {
      // What the member is told next starts from the core's state as it is now.
      this.#host.refresh(sync.record)
      this.#host.unuse(sync.record)
    }
    if (sync.slot) this.#running--
    if (sync.asked) this.#freeSlotFor(sync.mux)
    this.#host.memberOn(sync.mux)?.oncoresyncdone(sync.record, agreed)
    this.#drain()
  }

  async #slotFor (mux: Protomux): Promise<void> {
    let asked = this.#asked.get(mux)
    if (asked === undefined) this.#asked.set(mux, asked = { n: 0, waiting: [] })
    if (asked.n < MAX_ASKED_PER_MUX) {
      asked.n++
      return
    }
    await new Promise<void>(resolve => asked!.waiting.push(resolve))
  }

  #freeSlotFor (mux: Protomux): void {
    const asked = this.#asked.get(mux)
    if (asked === undefined) return
    const next = asked.waiting.shift()
    if (next !== undefined) next()
    else asked.n--
  }

  #dropMux (mux: Protomux): void {
    const syncs = this.#byMux.get(mux)
    if (syncs !== undefined) {
      for (const sync of [...syncs.values()]) {
        const i = this.#queue.indexOf(sync)
        if (i !== -1) {
          this.#queue.splice(i, 1)
          sync.finished = true
          syncs.delete(sync.record.id)
        } else {
          this.#finish(sync, false)
        }
      }
    }
    this.#byMux.delete(mux)
    const flush = this.#batching.get(mux)
    if (flush !== undefined) clearInterval(flush)
    this.#batching.delete(mux)
    const asked = this.#asked.get(mux)
    if (asked !== undefined) for (const w of asked.waiting.splice(0)) w()
    this.#asked.delete(mux)
  }

  close (): void {
    this.#closed = true
    for (const mux of [...this.#byMux.keys()]) this.#dropMux(mux)
    this.#queue.length = 0
    for (const mux of [...this.#batching.keys()]) this.#batch(mux, false)
    if (this.#ticker !== null) clearInterval(this.#ticker)
    this.#ticker = null
  }
}

function peerOn (session: Hypercore, mux: Protomux): Peer | null {
  for (const peer of session.peers) if (peer.mux === mux) return peer
  return null
}

function noop (): void {}
