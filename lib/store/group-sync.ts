/**
 * What a store does with one member of its group: find the cores whose
 * states differ, and replicate only those.
 *
 * On connect each side sends the records of the cores it changed since the
 * last time the two were found equal (its sync point for that member, kept
 * by the member's proven identity), then both reconcile the ids of all
 * their cores' states — with the cores of either list replaced by a
 * placeholder both sides share, since those are settled from the records
 * directly. When nothing else changed, that is one short round. Every core
 * whose state differs gets a per-core channel (lib/store/core-sync.ts); all
 * other cores stay closed. When the core syncs this started are done, a
 * plain reconciliation checks that the two stores now agree and, if so,
 * moves the sync point. Later changes are sent as they happen.
 *
 * Correctness never rests on the sync points: they only make the lists
 * short. Whatever a list misses, the reconciliation finds.
 */
import b4a from 'b4a'
import type Protomux from 'protomux'
import { Session } from '../reconcile'
import { discoveryKey } from '../crypto'
import { isCoded } from '../errors'
import { STATES_ANSWER, STATES_DELTA, STATES_LAST, STATES_LIVE, type GroupPeer, type StateRecord } from '../group'
import { PREFIX_BYTES, prefixOf } from './core-state'
import type { Catalog, CoreRecord } from './catalog'
import type { StateSet } from './state-set'

/** Records in a change list, at most; a store that changed more lets reconciliation find them. */
const MAX_DELTA = 65536
/** Quiet time after the last change or core sync before checking that both stores agree (ms). */
const SETTLE_DELAY = 500
/** Longest wait between checks while a difference keeps coming back unchanged (ms). */
const MAX_SETTLE_DELAY = 60000
/** Live changes are batched this long (ms). */
const LIVE_DELAY = 50

export interface GroupSyncHost {
  readonly catalog: Catalog
  readonly states: StateSet
  /** Holds a core a member told us of (empty until synced). */
  learn (key: Uint8Array): CoreRecord
  /** Replicates `record` with the member over its mux until both agree (queued behind other core syncs). */
  syncCore (record: CoreRecord, member: GroupSync): void
  isSyncing (record: CoreRecord, mux: Protomux): boolean
  /** Core syncs with this mux, running or queued. */
  syncsWith (mux: Protomux): number
  emit (event: string, ...args: unknown[]): void
}

/** What each side of a finished session found missing, and where we were when it began. */
interface Agreement {
  mine: number
  theirs: number
  /** A comparison of everything (no placeholders). */
  full: boolean
  snapshot: number
  slots: number
}

export interface ReconcileStats {
  /** Messages this side sent. */
  rounds: number
  /** Bytes of reconciliation both ways. */
  bytes: number
  /** Ids this side lacked. */
  missing: number
  /** Cores left out as settled by the change lists. */
  placeholders: number
}

export class GroupSync {
  readonly peer: GroupPeer
  readonly #host: GroupSyncHost
  /** Cores in our change list and in theirs (hex id prefix → prefix). */
  readonly #mine = new Map<string, Uint8Array>()
  readonly #theirs = new Map<string, Uint8Array>()
  /** Our slots below this held cores the member holds too (it agreed with us then). */
  #knownSlots = 0
  #theirDeltaDone = false
  #session: Session | null = null
  #seq = 0
  #doneSeq = 0
  #snapshotSeq = 0
  #snapshotSlots = 0
  /** Cores the running session leaves out (0: it compares everything). */
  #placeholders = 0
  readonly #missing = new Map<number, Agreement>()
  /** The ids the member last told us for cores (hex), and the ones we last sent it. */
  readonly #remoteIds = new Map<string, string>()
  readonly #sentIds = new Map<string, string>()
  readonly #live = new Set<CoreRecord>()
  #liveTimer: ReturnType<typeof setTimeout> | null = null
  #settleTimer: ReturnType<typeof setTimeout> | null = null
  #settleDelay = SETTLE_DELAY
  /** Changes seen (ours, theirs, core syncs finished): a check is due when this moved since the last one. */
  #activity = 0
  #checkedAt = -1
  #lastDifference = ''
  #closed = false

  constructor (host: GroupSyncHost, peer: GroupPeer) {
    this.#host = host
    this.peer = peer
  }

  get mux (): Protomux {
    return this.peer.mux
  }

  /** The member's identity (hex). */
  get remoteId (): string {
    return this.peer.remoteId
  }

  /** The channel opened: send what changed since the last sync with this member. */
  start (): void {
    const { catalog } = this.#host
    const since = catalog.syncPoint(this.remoteId)
    const records: StateRecord[] = []
    if (since !== null) {
      this.#knownSlots = since.slots
      for (const record of catalog.records()) {
        if (record.seq <= since.seq) continue
        if (records.length >= MAX_DELTA) {
          records.length = 0
          this.#mine.clear()
          break
        }
        records.push(this.#toWire(record))
        this.#mine.set(prefixOf(record.discoveryKey), record.discoveryKey)
        this.#sentIds.set(record.id, hex(this.#host.states.idOf(record)))
      }
    }
    this.peer.sendStates(STATES_DELTA | STATES_LAST, records)
  }

  // -------------------------------------------------------------------------
  // States

  onstates (flags: number, records: StateRecord[]): void {
    this.#activity++
    const wants: Uint8Array[] = []
    for (const r of records) {
      let key = r.key
      if (key === null) {
        // A core it takes us to hold: if we do not, we ask for its key.
        const known = this.#host.catalog.byPrefix(r.prefix!)
        if ((flags & STATES_DELTA) !== 0) this.#theirs.set(prefixOf(r.prefix!), r.prefix!)
        if (known === null) {
          wants.push(r.prefix!)
          continue
        }
        key = known.key
      }
      const dk = discoveryKey(key)
      if ((flags & STATES_DELTA) !== 0) this.#theirs.set(prefixOf(dk), dk)
      this.#consider(key, r, dk, hex(dk))
    }
    if (wants.length > 0) this.peer.sendWant(wants)
    if ((flags & STATES_DELTA) !== 0 && (flags & STATES_LAST) !== 0 && !this.#theirDeltaDone) {
      this.#theirDeltaDone = true
      // Both lists are known on both sides: reconcile everything else.
      if (this.#seq === 0) this.#begin(1)
    }
    if ((flags & (STATES_LIVE | STATES_ANSWER)) !== 0) this.#scheduleSettle()
  }

  /** A member's record of a core: sync the core if our states differ. */
  #consider (key: Uint8Array, r: StateRecord, dk: Uint8Array, id: string): void {
    const { catalog, states } = this.#host
    const theirs = states.idFor(key, dk, r)
    this.#remoteIds.set(id, hex(theirs))
    let record = catalog.get(id)
    if (record === null) {
      record = this.#host.learn(key)
    } else if (b4a.equals(states.idOf(record), theirs)) {
      return
    }
    this.#host.syncCore(record, this)
  }

  /** Our state of `record` changed: tell the member, unless a channel for it is open or it knows. */
  onlocalchange (record: CoreRecord): void {
    if (this.#closed) return
    this.#activity++
    this.#live.add(record)
    if (this.#liveTimer === null) {
      // Not unref'd: it holds news for the member.
      this.#liveTimer = setTimeout(() => this.#flushLive(), LIVE_DELAY)
    }
  }

  #flushLive (): void {
    this.#liveTimer = null
    const records: StateRecord[] = []
    for (const record of this.#live) {
      if (this.#host.isSyncing(record, this.mux)) continue
      const id = hex(this.#host.states.idOf(record))
      if (this.#remoteIds.get(record.id) === id || this.#sentIds.get(record.id) === id) continue
      records.push(this.#toWire(record))
      this.#sentIds.set(record.id, id)
    }
    this.#live.clear()
    if (records.length > 0) this.peer.sendStates(STATES_LIVE, records)
    this.#scheduleSettle()
  }

  onwant (prefixes: Uint8Array[]): void {
    const records: StateRecord[] = []
    for (const prefix of prefixes) {
      const record = this.#host.catalog.byPrefix(prefix)
      if (record !== null) records.push(this.#toWire(record, true))
    }
    if (records.length > 0) this.peer.sendStates(STATES_ANSWER, records)
  }

  /** A record of ours: named by prefix when the member holds the core already (it told us, or held it at the sync point). */
  #toWire (record: CoreRecord, full = false): StateRecord {
    const s = record.state
    const known = !full && (record.slot < this.#knownSlots || this.#remoteIds.has(record.id) || this.#sentIds.has(record.id))
    return {
      key: known ? null : record.key,
      prefix: known ? record.discoveryKey.subarray(0, PREFIX_BYTES) : null,
      fork: s.fork,
      length: s.length,
      held: Math.min(s.held, s.length),
      flags: s.flags
    }
  }

  /** A core sync with this member finished (`agreed`: both hold the same now). */
  oncoresyncdone (record: CoreRecord, agreed: boolean): void {
    if (this.#closed) return
    this.#activity++
    // Agreed: the member holds what we hold now. Else it hears of our state (if it differs from what it said).
    if (agreed) this.#remoteIds.set(record.id, hex(this.#host.states.idOf(record)))
    else this.onlocalchange(record)
    this.#scheduleSettle()
  }

  // -------------------------------------------------------------------------
  // Reconciliation

  #begin (seq: number): void {
    this.#seq = seq
    const { states, catalog } = this.#host
    // The first session leaves out the cores both change lists settle.
    let placeholders = 0
    let set = states.set
    if (seq === 1 && (this.#mine.size > 0 || this.#theirs.size > 0)) {
      const all = new Map([...this.#mine, ...this.#theirs])
      placeholders = all.size
      set = states.withPlaceholders(all)
    }
    this.#snapshotSeq = catalog.seq
    this.#snapshotSlots = catalog.slots
    this.#checkedAt = this.#activity
    this.#placeholders = placeholders
    const session = this.#session = new Session(set, { sessionKey: this.peer.handshakeHash })
    this.peer.sendReconcile(seq, session.start())
  }

  onreconcile (seq: number, payload: Uint8Array): void {
    if (seq <= this.#doneSeq) return // a finished session
    if (seq < this.#seq) return // superseded
    if (seq > this.#seq || this.#session === null) {
      if (seq === 1 && !this.#theirDeltaDone) return // cannot happen: their list comes first on the channel
      this.#cancelSettle()
      this.#begin(seq)
    }
    const session = this.#session!
    let reply: Uint8Array | null | undefined
    try {
      reply = session.receive(payload)
    } catch (err) {
      // A member that speaks garbage is dropped from the group.
      this.#session = null
      this.peer.close()
      if (isCoded(err)) return
      throw err
    }
    if (reply !== null && reply !== undefined) this.peer.sendReconcile(seq, reply)
    if (session.done) this.#finish(session)
  }

  #finish (session: Session): void {
    const seq = this.#seq
    this.#session = null
    this.#doneSeq = seq
    const missing = session.missing()
    const { catalog } = this.#host
    const wants: Uint8Array[] = []
    for (const id of missing) {
      const record = catalog.byPrefix(id)
      if (record === null) wants.push(id.subarray(0, PREFIX_BYTES))
      else this.#host.syncCore(record, this)
    }
    if (wants.length > 0) this.peer.sendWant(wants)
    this.peer.sendSynced(seq, missing.length)
    const stats: ReconcileStats = {
      rounds: session.messages,
      bytes: session.bytesSent + session.bytesReceived,
      missing: missing.length,
      placeholders: this.#placeholders
    }
    const entry = this.#entry(seq)
    entry.mine = missing.length
    entry.full = this.#placeholders === 0
    entry.snapshot = this.#snapshotSeq
    entry.slots = this.#snapshotSlots
    this.#host.emit('reconciled', this.peer, stats)
    // A difference that comes back unchanged is not retried at once.
    const difference = missing.map(hex).sort().join()
    this.#settleDelay = difference !== '' && difference === this.#lastDifference ? Math.min(this.#settleDelay * 2, MAX_SETTLE_DELAY) : SETTLE_DELAY
    this.#lastDifference = difference
    this.#agreeMaybe(seq)
    this.#scheduleSettle()
  }

  onsynced (seq: number, missing: number): void {
    this.#entry(seq).theirs = missing
    this.#agreeMaybe(seq)
  }

  #entry (seq: number): Agreement {
    let entry = this.#missing.get(seq)
    if (entry === undefined) {
      entry = { mine: -1, theirs: -1, full: false, snapshot: 0, slots: 0 }
      this.#missing.set(seq, entry)
      // Only the last few matter.
      for (const old of this.#missing.keys()) if (old < seq - 4) this.#missing.delete(old)
    }
    return entry
  }

  /** Both sides found nothing missing in a full comparison: the stores agreed as of our snapshot. */
  #agreeMaybe (seq: number): void {
    const entry = this.#missing.get(seq)
    if (entry === undefined || entry.mine !== 0 || entry.theirs !== 0 || !entry.full) return
    this.#host.catalog.setSyncPoint(this.remoteId, { seq: entry.snapshot, slots: entry.slots })
    this.#host.emit('synced', this.peer)
  }

  // -------------------------------------------------------------------------
  // Settling: once the core syncs are done, check that both sides agree

  /** (Re)starts the wait for quiet: a check runs once nothing happened for a while. */
  #scheduleSettle (): void {
    if (this.#closed) return
    this.#cancelSettle()
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = null
      this.#settle()
    }, this.#settleDelay)
    this.#settleTimer.unref?.()
  }

  #cancelSettle (): void {
    if (this.#settleTimer !== null) clearTimeout(this.#settleTimer)
    this.#settleTimer = null
  }

  #settle (): void {
    if (this.#closed || this.#session !== null || !this.#theirDeltaDone) return
    if (this.#host.syncsWith(this.mux) > 0 || this.#live.size > 0) return // a finished core sync schedules again
    if (this.#activity === this.#checkedAt) return // nothing happened since the last check
    this.#begin(Math.max(this.#seq, this.#doneSeq) + 1)
  }

  /** Starts a check now (the store's periodic repair), unless one is under way. */
  reconcile (): void {
    if (this.#closed || this.#session !== null || !this.#theirDeltaDone) return
    this.#cancelSettle()
    this.#begin(Math.max(this.#seq, this.#doneSeq) + 1)
  }

  close (): void {
    this.#closed = true
    this.#session = null
    this.#cancelSettle()
    if (this.#liveTimer !== null) clearTimeout(this.#liveTimer)
    this.#liveTimer = null
  }
}

function hex (b: Uint8Array): string {
  return b4a.toString(b as Buffer, 'hex')
}
