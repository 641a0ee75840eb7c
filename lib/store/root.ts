/**
 * What every session and namespace of one store shares: its files (primary
 * key, catalog, core directories through one file pool), the cores open
 * now, the connections it replicates over, and its group members.
 *
 * A core is open while a user session, or one of the store's own uses (a
 * core sync, an audit, a peer's channel), holds it, and closes with the
 * last: memory and descriptors follow the cores open, not the cores held.
 * While open, its state (fork, length, blocks held) is followed into the
 * catalog and the reconcilable state set, and changes reach group members.
 */
import * as path from 'node:path'
import b4a from 'b4a'
import RandomAccessFile from 'random-access-file'
import RAM from 'random-access-memory'
import type Protomux from 'protomux'
import type { RandomAccessStorage } from 'random-access-storage'
import { sessionOn, type Hypercore, type DownloadHandle } from '../hypercore'
import { SharedCore, type SessionLink } from '../shared-core'
import { CoreStorage, type StorageFactory } from '../storage'
import { PROTOCOL, type Peer } from '../peer'
import * as crypto from '../crypto'
import { STORAGE_CONFLICT, STORAGE_EMPTY, SESSION_CLOSED } from '../errors'
import { GroupPeer, GROUP_PROTOCOL, FLAG_FULL, groupId, type GroupHost, type StateRecord } from '../group'
import { Catalog, type CoreRecord } from './catalog'
import { StateSet } from './state-set'
import { STATE_REPAIR } from './core-state'
import { FilePool, DEFAULT_MAX_OPEN_FILES } from './file-pool'
import { CoreSyncs, DEFAULT_MAX_SYNCS, type CoreSyncHost } from './core-sync'
import { GroupSync, type GroupSyncHost } from './group-sync'
import type { ManifestInput } from '../manifest'
import { pClose, pWrite, readAll } from '../storage/file-io'

const [IDENTITY_NS] = crypto.namespace('nomadcore/store', 1) as [Uint8Array]
/** Events after which a core's state may have changed. */
const STATE_EVENTS = new Set(['append', 'truncate', 'download', 'repaired', 'repair-failed'])
/** Changes of an open core are looked at once per this many ms. */
const REFRESH_DELAY = 20
/** Cores reopened at once after a crash, or audited at once. */
const BACKGROUND_OPENS = 8

export type Storage = string | StorageFactory

export interface RootOptions {
  primaryKey: Uint8Array | null
  group: Uint8Array | null
  full: boolean
  readOnly: boolean
  maxOpenFiles?: number
  maxSyncs?: number
  emit (event: string, ...args: unknown[]): void
}

/** How a core is opened: what Corestore calls its auth, and creation options. */
export interface OpenOptions {
  keyPair?: crypto.KeyPair | null
  manifest?: ManifestInput | null
  overwrite?: boolean
  createIfMissing?: boolean
}

/** A core open now. */
interface OpenCore {
  record: CoreRecord
  shared: SharedCore
  /** User sessions that replicate (`active`), bound to this core. */
  active: number
  /** The store's own session while it has uses. */
  internal: Hypercore | null
  uses: number
  download: DownloadHandle | null
  closed: Promise<void>
  refresh: ReturnType<typeof setTimeout> | null
}

/** Counters for tests and the bench. */
export interface StoreStats {
  coresHeld: number
  coresOpen: number
  /** Per-core channels opened with peers since the store opened. */
  channels: number
  filesOpen: number
  peakFilesOpen: number
  syncs: number
}

export class StoreRoot implements GroupHost, GroupSyncHost, CoreSyncHost {
  readonly storage: Storage
  readonly opening: Promise<void>
  /** Resolves once cores a crash left marked dirty are looked at again. */
  recovered: Promise<void> = Promise.resolve()
  primaryKey: Uint8Array | null = null
  identity: crypto.KeyPair = { publicKey: b4a.alloc(32), secretKey: b4a.alloc(64) }
  catalog!: Catalog
  states!: StateSet
  readonly full: boolean
  readonly readOnly: boolean
  readonly group: Uint8Array
  readonly groupFlags: number
  readonly pool: FilePool | null
  readonly syncs: CoreSyncs
  readonly emit: RootOptions['emit']
  closing: Promise<void> | null = null
  /** Called with each core the store opens (Store.watch). */
  onopencore: ((shared: SharedCore) => void) | null = null

  readonly #cores = new Map<string, OpenCore>()
  readonly #byShared = new WeakMap<SharedCore, OpenCore>()
  readonly #muxes = new Map<Protomux, { stream: { destroy (): void }, external: boolean }>()
  readonly #members = new Map<Protomux, GroupSync>()
  #lock: RandomAccessStorage | null = null
  #channels = 0

  constructor (storage: Storage, opts: RootOptions) {
    this.storage = storage
    this.full = opts.full
    this.readOnly = opts.readOnly
    this.group = opts.group ?? b4a.alloc(0)
    this.groupFlags = opts.full ? FLAG_FULL : 0
    this.emit = opts.emit
    this.pool = typeof storage === 'string' ? new FilePool(opts.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES) : null
    this.syncs = new CoreSyncs(this, opts.maxSyncs ?? DEFAULT_MAX_SYNCS)
    this.opening = this.#open(opts.primaryKey)
    this.opening.catch(noop)
  }

  #file (name: string): RandomAccessStorage {
    if (typeof this.storage === 'function') return this.storage(name)
    return new RandomAccessFile(path.join(this.storage, name), { lock: name === 'primary-key' })
  }

  async #open (primaryKey: Uint8Array | null): Promise<void> {
    // The primary key file stays open, locked: one store per directory.
    const lock = this.#lock = this.#file('primary-key')
    let pk = await readAll(lock)
    if (pk.byteLength !== 32) {
      pk = primaryKey ?? crypto.randomBytes(32)
      await pWrite(lock, 0, pk)
    } else if (primaryKey !== null && !b4a.equals(pk, primaryKey)) {
      throw STORAGE_CONFLICT('Another store is stored here (its primary key differs)')
    }
    this.primaryKey = b4a.from(pk)
    this.identity = crypto.keyPair(crypto.keyedHash([IDENTITY_NS], this.primaryKey))
    this.catalog = await Catalog.open(name => this.#file(name))
    this.states = new StateSet(this.full, this.catalog.records())
    this.recovered = this.#recover()
    this.recovered.catch(noop)
  }

  /** Opens and closes again every core a crash left marked dirty: its record then tells the truth. */
  async #recover (): Promise<void> {
    const dirty = [...this.catalog.records()].filter(r => r.dirty)
    await eachBounded(dirty, BACKGROUND_OPENS, async record => {
      if (this.closing !== null) return
      const session = this.use(record)
      try {
        await session.ready()
      } catch {} finally {
        this.unuse(record)
      }
    })
  }

  get opened (): boolean {
    return this.primaryKey !== null
  }

  stats (): StoreStats {
    return {
      coresHeld: this.opened ? this.catalog.size : 0,
      coresOpen: this.#cores.size,
      channels: this.#channels,
      filesOpen: this.pool?.size ?? 0,
      peakFilesOpen: this.pool?.peak ?? 0,
      syncs: this.syncs.size
    }
  }

  // -------------------------------------------------------------------------
  // Opening cores

  #coreStorage (record: CoreRecord): { storage: CoreStorage, directory: string | null } {
    const dir = 'cores/' + record.id
    if (typeof this.storage === 'function') {
      const factory = this.storage
      return { storage: new CoreStorage(name => factory(dir + '/' + name)), directory: null }
    }
    const root = path.join(this.storage, 'cores', record.id)
    const pool = this.pool!
    return { storage: new CoreStorage(name => pool.file(path.join(root, name)) as unknown as RandomAccessStorage), directory: root }
  }

  /** The open core `key`, opened now if it is not (the store must be open). */
  core (key: Uint8Array, opts: OpenOptions = {}): SharedCore {
    if (this.closing !== null) throw SESSION_CLOSED('The store is closed')
    const id = b4a.toString(crypto.discoveryKey(key) as Buffer, 'hex')
    const open = this.#cores.get(id)
    if (open !== undefined && !open.shared.closing) return open.shared
    let record = this.catalog.get(id)
    if (record === null) {
      // Asked not to create it, and not held: fail the way Hypercore does.
      if (opts.createIfMissing === false) return failed(STORAGE_EMPTY())
      record = this.#add(key)
    }
    return this.#openCore(record, opts, open?.closed ?? null).shared
  }

  #openCore (record: CoreRecord, opts: OpenOptions, previous: Promise<void> | null): OpenCore {
    const { storage, directory } = this.#coreStorage(record)
    let done: () => void = noop
    const closed = new Promise<void>(resolve => { done = resolve })
    const catalog = this.catalog
    const preopen = (async () => {
      // A core reopened while its last instance closes waits for it: one instance touches the files at a time.
      if (previous !== null) await previous
      await catalog.setDirty(record, true)
    })()
    const shared = new SharedCore(storage, {
      directory,
      key: record.key,
      keyPair: opts.keyPair ?? null,
      manifest: opts.manifest ?? null,
      overwrite: opts.overwrite ?? false,
      createIfMissing: opts.createIfMissing ?? true,
      writable: !this.readOnly,
      preopen,
      onclose: () => {
        this.#onclose(oc)
        done()
      }
    })
    const oc: OpenCore = { record, shared, active: 0, internal: null, uses: 0, download: null, closed, refresh: null }
    this.#cores.set(record.id, oc)
    this.#byShared.set(shared, oc)
    const link: SessionLink = {
      snapshot: null,
      emit: (name, ...args) => {
        if (name === 'peer-add') this.#onpeer(oc, args[0] as Peer)
        else if (STATE_EVENTS.has(name)) this.#scheduleRefresh(oc)
      }
    }
    shared.listen(link)
    shared.opening.then(() => {
      this.#refresh(oc)
      if (oc.active > 0) this.#attachEverywhere(oc)
    }, noop)
    this.onopencore?.(shared)
    return oc
  }

  #onclose (oc: OpenCore): void {
    if (oc.refresh !== null) clearTimeout(oc.refresh)
    oc.refresh = null
    this.#refresh(oc)
    if (this.#cores.get(oc.record.id) === oc) this.#cores.delete(oc.record.id)
    // Clean only if the core opened: a failed open changed nothing, and a dirty mark stays true.
    if (oc.shared.core !== null || !oc.record.dirty) void this.catalog.setDirty(oc.record, false).catch(noop)
  }

  /** A core the store holds from now on. */
  #add (key: Uint8Array): CoreRecord {
    const record = this.catalog.add(key)
    this.states.update(record)
    for (const member of this.#members.values()) member.onlocalchange(record)
    return record
  }

  /** A group member holds `key`, which we did not: hold it too. */
  learn (key: Uint8Array): CoreRecord {
    const existing = this.catalog.get(crypto.discoveryKey(key))
    if (existing !== null) return existing
    const record = this.#add(key)
    this.emit('core', record.key, record.discoveryKey)
    return record
  }

  /** A user session on `shared` was bound (active: it replicates), and when it closes. */
  track (shared: SharedCore, session: Hypercore, active: boolean): void {
    const oc = this.#byShared.get(shared)
    if (oc === undefined || !active) return
    if (++oc.active === 1 && oc.shared.core !== null) this.#attachEverywhere(oc)
    session.once('close', () => { oc.active-- })
  }

  /** A core with active sessions replicates over every connection, as under Corestore. */
  #attachEverywhere (oc: OpenCore): void {
    for (const mux of this.#muxes.keys()) this.#attach(oc, mux)
  }

  /**
   * Attaches through a core sync, which holds the core open until the remote
   * answers and for as long as it wants the core: a channel is never left
   * half open by a session that closed right after asking.
   */
  #attach (oc: OpenCore, mux: Protomux): void {
    if (this.closing !== null || mux.stream.destroyed) return
    void this.syncs.serve(oc.record, mux, null, false).catch(noop)
  }

  #scheduleRefresh (oc: OpenCore): void {
    if (oc.refresh !== null) return
    oc.refresh = setTimeout(() => {
      oc.refresh = null
      this.#refresh(oc)
    }, REFRESH_DELAY)
    oc.refresh.unref?.()
  }

  /** Reads an open core's state into the catalog; a change reaches the group. */
  #refresh (oc: OpenCore): void {
    const core = oc.shared.core
    if (core === null) return
    const state = { fork: core.fork, length: core.length, held: core.bitfield.count(0, core.length), flags: core.repairMode ? STATE_REPAIR : 0 }
    if (!this.catalog.setState(oc.record, state)) return
    this.states.update(oc.record)
    for (const member of this.#members.values()) member.onlocalchange(oc.record)
  }

  // -------------------------------------------------------------------------
  // The store's own uses of cores (CoreSyncHost)

  use (record: CoreRecord): Hypercore {
    let oc = this.#cores.get(record.id)
    if (oc === undefined || oc.shared.closing) oc = this.#openCore(record, {}, oc?.closed ?? null)
    if (oc.internal === null) {
      oc.internal = sessionOn(oc.shared, { active: false })
      // A store of full replicas keeps every block of every core it holds.
      if (this.full) oc.download = oc.internal.download({ start: 0, end: -1 })
    }
    oc.uses++
    return oc.internal
  }

  refresh (record: CoreRecord): void {
    const oc = this.#cores.get(record.id)
    if (oc === undefined) return
    if (oc.refresh !== null) clearTimeout(oc.refresh)
    oc.refresh = null
    this.#refresh(oc)
  }

  unuse (record: CoreRecord): void {
    const oc = this.#cores.get(record.id)
    if (oc === undefined || oc.uses === 0) return
    if (--oc.uses > 0) return
    const internal = oc.internal
    oc.internal = null
    oc.download = null
    void internal?.close().catch(noop)
  }

  memberOn (mux: Protomux): GroupSync | null {
    return this.#members.get(mux) ?? null
  }

  onchannel (): void {
    this.#channels++
  }

  /** A peer's channel for an open core came up: hold the core for it. */
  #onpeer (oc: OpenCore, peer: Peer): void {
    if (this.closing !== null || !peer.mux || peer.mux.stream.destroyed) return
    void this.syncs.serve(oc.record, peer.mux, peer).catch(noop)
  }

  // -------------------------------------------------------------------------
  // Group sync (GroupSyncHost)

  syncCore (record: CoreRecord, member: GroupSync): void {
    this.syncs.start(record, member.mux)
  }

  isSyncing (record: CoreRecord, mux: Protomux): boolean {
    return this.syncs.isSyncing(record, mux)
  }

  syncsWith (mux: Protomux): number {
    return this.syncs.count(mux)
  }

  // -------------------------------------------------------------------------
  // Replication

  /** Replicates over `mux`: active cores now, held cores when the remote asks, and the group channel. */
  replicate (mux: Protomux, stream: { destroy (): void }, external: boolean): void {
    if (this.#muxes.has(mux) || this.closing !== null) return
    this.#muxes.set(mux, { stream, external })
    mux.stream.once('close', () => this.#muxes.delete(mux))
    // A core the remote asks for that we hold: opened on demand.
    mux.pair({ protocol: PROTOCOL }, async (discoveryKey: Uint8Array) => {
      // A store that failed to open holds nothing: the channel is refused, the connection stays.
      if (!(await this.opening.then(() => true, () => false)) || this.closing !== null) return
      const record = this.catalog.get(discoveryKey)
      if (record === null) return
      await this.syncs.serve(record, mux)
    })
    void this.opening.then(() => {
      if (this.closing !== null || mux.stream.destroyed) return
      for (const oc of this.#cores.values()) if (oc.active > 0 && oc.shared.core !== null) this.#attach(oc, mux)
      if (this.group.byteLength === 32) this.#joinGroup(mux)
    }, noop)
  }

  #joinGroup (mux: Protomux): void {
    // Not before cores a crash left dirty are looked at: the change list must tell the truth.
    const open = async (): Promise<void> => {
      await this.recovered.catch(noop)
      if (this.closing !== null || mux.stream.destroyed) return
      GroupPeer.open(this, mux)
    }
    // Whichever side opens first, the other takes the channel up.
    mux.pair({ protocol: GROUP_PROTOCOL, id: groupId(this.group) }, open)
    if (mux.stream.handshakeHash !== null) void open()
    else mux.stream.opened.then((ok: boolean) => { if (ok) void open() }, noop)
  }

  // GroupHost: the group channel's callbacks
  onopen (peer: GroupPeer): void {
    const member = new GroupSync(this, peer)
    this.#members.set(peer.mux, member)
    this.emit('peer-add', peer)
    member.start()
  }

  onclose (peer: GroupPeer): void {
    const member = this.#members.get(peer.mux)
    if (member?.peer !== peer) return
    member.close()
    this.#members.delete(peer.mux)
    this.emit('peer-remove', peer)
  }

  onstates (peer: GroupPeer, flags: number, records: StateRecord[]): void {
    this.#members.get(peer.mux)?.onstates(flags, records)
  }

  onreconcile (peer: GroupPeer, session: number, payload: Uint8Array): void {
    this.#members.get(peer.mux)?.onreconcile(session, payload)
  }

  onwant (peer: GroupPeer, prefixes: Uint8Array[]): void {
    this.#members.get(peer.mux)?.onwant(prefixes)
  }

  onsynced (peer: GroupPeer, session: number, missing: number): void {
    this.#members.get(peer.mux)?.onsynced(session, missing)
  }

  /** Group members connected now. */
  members (): GroupSync[] {
    return [...this.#members.values()]
  }

  // -------------------------------------------------------------------------
  // Audit and repair

  /**
   * Audits every core held, a few at a time (each opened and closed again):
   * corrupt blocks are cleared and rotten nodes dropped; a core that changes
   * so tells group members, who replicate it back.
   */
  async audit (): Promise<{ cores: number, blocks: number, corruptBlocks: number, droppedNodes: number, repairMode: number }> {
    await this.opening
    const summary = { cores: 0, blocks: 0, corruptBlocks: 0, droppedNodes: 0, repairMode: 0 }
    await eachBounded([...this.catalog.records()], BACKGROUND_OPENS, async record => {
      if (this.closing !== null) return
      const session = this.use(record)
      try {
        await session.ready()
        const report = await session.audit()
        summary.blocks += report.blocks
        summary.corruptBlocks += report.corruptBlocks
        summary.droppedNodes += report.droppedNodes
        if (session.repairMode) summary.repairMode++
      } catch {} finally {
        summary.cores++
        this.unuse(record)
      }
    })
    return summary
  }

  // -------------------------------------------------------------------------

  close (): Promise<void> {
    if (this.closing === null) this.closing = this.#close()
    return this.closing
  }

  async #close (): Promise<void> {
    await this.opening.catch(noop)
    this.syncs.close()
    for (const member of this.#members.values()) {
      member.close()
      member.peer.close()
    }
    this.#members.clear()
    // Streams the store made itself go with it; a connection it was given stays the caller's.
    for (const { stream, external } of this.#muxes.values()) if (!external) stream.destroy()
    await Promise.all([...this.#cores.values()].map(async oc => {
      await oc.shared.closeAllSessions().catch(noop)
      await oc.closed
    }))
    if (this.primaryKey !== null) await this.catalog.close().catch(noop)
    if (this.#lock !== null) await pClose(this.#lock).catch(noop)
  }
}

/** A shared core whose open fails with `err`. */
function failed (err: Error): SharedCore {
  const rejected = Promise.reject(err)
  rejected.catch(noop)
  return new SharedCore(new CoreStorage(() => new RAM()), { directory: null, preopen: rejected })
}

async function eachBounded<T> (items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
}

function noop (): void {}
