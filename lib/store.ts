/**
 * Many cores under one directory, reconciled with other stores of the same
 * group. Each core keeps the core log's layout in `cores/<discovery key>/`;
 * `keys` lists the core keys held and `primary-key` seeds the key pairs of
 * named cores. Over one replication stream the store replicates every core
 * it holds, reconciles the set of core keys with group members (bandwidth
 * growing with the difference), opens and downloads what it lacked, and
 * audits and repairs its cores — when a peer joins and on a timer.
 */
import { EventEmitter } from 'node:events'
import * as path from 'path'
import b4a from 'b4a'
import RandomAccessFile from 'random-access-file'
import type Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { Hypercore, type HypercoreOptions } from './hypercore'
import { protocolStream, type Replicable, type ProtocolStreamOptions } from './protocol-stream'
import { GroupPeer, GROUP_PROTOCOL, groupId, type GroupHost } from './group'
import { ReconcileSet } from './reconcile'
import { PROTOCOL } from './peer'
import * as crypto from './crypto'
import { defaultManifest, manifestHash } from './manifest'
import { BAD_ARGUMENT, SESSION_CLOSED } from './errors'
import type { RandomAccessStorage } from 'random-access-storage'
import type { StorageFactory } from './storage'

const [NAME_NS] = crypto.namespace('nomadcore/store', 1) as [Uint8Array]
const HOUR = 60 * 60 * 1000
/** Files kept open at once across all cores of a store (the rest are reopened on use). */
const MAX_OPEN_FILES = 2048

export interface StoreOptions {
  /** 32-byte key shared by the stores that reconcile their sets of cores. */
  group?: Uint8Array | null
  /** How often to audit every core and repair it from a random peer (ms; default one hour). */
  repairInterval?: number
  /** Seed of named cores' key pairs; made and kept on first use when absent. */
  primaryKey?: Uint8Array
  /** Keep every block of every core (default true): a store is a full replica. Set false for sparse cores. */
  download?: boolean
}

export interface GetOptions extends HypercoreOptions {
  /** A core's public key (bytes or hex). */
  key?: Uint8Array | string | null
  /** A writable core of ours, its key pair derived from the primary key and this name. */
  name?: string
}

/** Totals of one audit-and-repair pass over the store. */
export interface RepairSummary {
  cores: number
  blocks: number
  corruptBlocks: number
  droppedNodes: number
  repairMode: number
}

type Storage = string | StorageFactory

export class Store extends EventEmitter implements GroupHost {
  readonly group: Uint8Array
  readonly opening: Promise<void>
  primaryKey: Uint8Array | null = null
  closed = false

  private readonly cores = new Map<string, Hypercore>()
  private readonly known = new Map<string, Uint8Array>()
  private readonly keys = new ReconcileSet()
  private readonly muxes = new Set<Protomux>()
  private readonly groupPeers = new Set<GroupPeer>()
  private keysFile: RandomAccessStorage | null = null
  private keysLength = 0
  private timer: ReturnType<typeof setInterval> | null = null
  private readonly pool = RandomAccessFile.createPool(MAX_OPEN_FILES)

  constructor (private readonly storage: Storage, private readonly opts: StoreOptions = {}) {
    super()
    if (opts.group !== undefined && opts.group !== null && !(opts.group instanceof Uint8Array && opts.group.byteLength === 32)) {
      throw BAD_ARGUMENT('A group key is 32 bytes')
    }
    this.group = opts.group ?? b4a.alloc(0)
    this.opening = this.open()
    this.opening.catch(noop)
  }

  private file (name: string): RandomAccessStorage {
    if (typeof this.storage === 'function') return this.storage(name)
    return new RandomAccessFile(path.join(this.storage, name), { lock: name === 'primary-key' })
  }

  private async open (): Promise<void> {
    this.keysFile = this.file('keys')
    const primary = this.file('primary-key')
    let pk = await readAll(primary)
    if (pk.byteLength !== 32) {
      pk = this.opts.primaryKey ?? crypto.randomBytes(32)
      await write(primary, 0, pk)
    }
    this.primaryKey = pk
    await close(primary).catch(noop)

    // A torn append of the key list leaves a partial last key: ignored.
    const list = await readAll(this.keysFile)
    this.keysLength = list.byteLength - (list.byteLength % 32)
    for (let at = 0; at < this.keysLength; at += 32) this.remember(b4a.from(list.subarray(at, at + 32)))

    const interval = this.opts.repairInterval ?? HOUR
    if (interval > 0) {
      this.timer = setInterval(() => { void this.repair().catch(noop) }, interval)
      this.timer.unref?.()
    }
  }

  ready (): Promise<void> {
    return this.opening
  }

  private remember (key: Uint8Array): boolean {
    const id = b4a.toString(key as Buffer, 'hex')
    if (this.known.has(id)) return false
    this.known.set(id, key)
    this.keys.add(key)
    return true
  }

  private coreStorage (key: Uint8Array): StorageFactory {
    const dir = path.join('cores', b4a.toString(crypto.discoveryKey(key) as Buffer, 'hex'))
    if (typeof this.storage === 'function') {
      const factory = this.storage
      return name => factory(dir + '/' + name)
    }
    const root = path.join(this.storage, dir)
    return name => new RandomAccessFile(path.join(root, name), { pool: this.pool })
  }

  /** The key pair of the named core: derived, never stored. */
  keyPairFor (name: string): crypto.KeyPair {
    if (this.primaryKey === null) throw SESSION_CLOSED('The store is not open yet')
    return crypto.keyPair(crypto.hash([NAME_NS, this.primaryKey, b4a.from(name)]))
  }

  /**
   * Opens a core of the store: `{ key }` for any core, `{ name }` for a
   * writable one of ours. The same key gives the same instance.
   */
  async get (opts: GetOptions): Promise<Hypercore> {
    await this.opening
    if (this.closed) throw SESSION_CLOSED('The store is closed')
    let key: Uint8Array
    let keyPair: crypto.KeyPair | null = null
    if (typeof opts.name === 'string') {
      keyPair = this.keyPairFor(opts.name)
      key = manifestHash(defaultManifest(keyPair.publicKey))
    } else if (opts.key !== undefined && opts.key !== null) {
      key = typeof opts.key === 'string' ? b4a.from(opts.key, 'hex') : opts.key
      if (key.byteLength !== 32) throw BAD_ARGUMENT('A key is 32 bytes')
    } else {
      throw BAD_ARGUMENT('get() takes { key } or { name }')
    }
    const id = b4a.toString(key as Buffer, 'hex')
    const open = this.cores.get(id)
    if (open !== undefined) {
      await open.ready()
      return open
    }
    const { name: _name, key: _key, ...rest } = opts
    const core = new Hypercore(this.coreStorage(key), key, { ...rest, keyPair: keyPair ?? rest.keyPair ?? null })
    this.cores.set(id, core)
    try {
      await core.ready()
    } catch (err) {
      this.cores.delete(id)
      throw err
    }
    for (const mux of this.muxes) core.replicate(mux)
    // A full replica follows every core it holds, new blocks included.
    if (!core.writable && this.opts.download !== false) core.download()
    if (this.remember(key)) {
      await this.persistKey(key)
      for (const peer of this.groupPeers) peer.announce([key])
    }
    return core
  }

  private async persistKey (key: Uint8Array): Promise<void> {
    const at = this.keysLength
    this.keysLength += 32
    await write(this.keysFile!, at, key)
  }

  /** The keys of every core the store holds. */
  async list (): Promise<Uint8Array[]> {
    await this.opening
    return [...this.known.values()]
  }

  /**
   * Replicates every core over one stream (a boolean makes a new Noise
   * stream to pipe; a secret stream or a protomux is shared). With a group
   * key, also reconciles which cores each side holds.
   */
  replicate (isInitiator: Replicable, opts: ProtocolStreamOptions = {}): NoiseSecretStream | Protomux['stream'] {
    const { mux, stream } = protocolStream(isInitiator, opts)
    if (this.muxes.has(mux)) return stream
    this.muxes.add(mux)
    mux.stream.on('close', () => this.muxes.delete(mux))
    void this.opening.then(() => this.attach(mux), noop)
    return stream
  }

  private attach (mux: Protomux): void {
    if (this.closed) return
    for (const core of this.cores.values()) core.replicate(mux)
    // A core the remote asks for that we hold but have not opened: open it now.
    mux.pair({ protocol: PROTOCOL }, async (discoveryKey: Uint8Array) => {
      const key = this.keyFor(discoveryKey)
      if (key === null || this.closed) return
      const core = await this.get({ key }).catch(() => null)
      core?.replicate(mux)
    })
    if (this.group.byteLength === 32) {
      const open = (): void => {
        if (this.closed) return
        const peer = GroupPeer.open(this, mux)
        if (peer !== null) this.groupPeers.add(peer)
      }
      // Whichever side opens first, the other takes the channel up.
      mux.pair({ protocol: GROUP_PROTOCOL, id: groupId(this.group) }, open)
      if (mux.stream.handshakeHash !== null) open()
      else mux.stream.opened.then(ok => { if (ok) open() }, noop)
    }
  }

  private keyFor (discoveryKey: Uint8Array): Uint8Array | null {
    for (const key of this.known.values()) if (b4a.equals(crypto.discoveryKey(key), discoveryKey)) return key
    return null
  }

  // -------------------------------------------------------------------------
  // Group reconciliation (GroupHost)

  keySet (): ReconcileSet {
    return this.keys
  }

  onopen (peer: GroupPeer): void {
    this.emit('peer-add', peer)
  }

  onclose (peer: GroupPeer): void {
    this.groupPeers.delete(peer)
    this.emit('peer-remove', peer)
  }

  onkeys (peer: GroupPeer, keys: Uint8Array[]): void {
    for (const key of keys) {
      if (this.known.has(b4a.toString(key as Buffer, 'hex'))) continue
      // A core that fails to open now is tried again on the next reconciliation or repair.
      void this.get({ key }).then(core => this.emit('core', core), err => this.emit('core-error', err, key))
    }
  }

  onsynced (peer: GroupPeer, stats: { rounds: number, bytes: number }): void {
    this.emit('reconciled', peer, stats)
    // Reactive repair: a member joined and we know what we both hold.
    void this.repairFromPeers().catch(noop)
  }

  // -------------------------------------------------------------------------
  // Repair

  /** Heals cores in repair mode from connected peers (missing blocks follow from the live downloads). */
  async repairFromPeers (): Promise<void> {
    for (const core of await this.openAll()) {
      if (core.repairMode) core.recoverTreeNodeFromPeers()
    }
  }

  /**
   * One audit-and-repair pass: reconcile the set of cores with a group member
   * picked at random, audit every core (corrupt blocks cleared, rotten nodes
   * dropped), and fetch what is missing from connected peers. Emits
   * `repair-start` (with the member) and `repair` with the totals.
   */
  async repair (): Promise<RepairSummary> {
    const summary: RepairSummary = { cores: 0, blocks: 0, corruptBlocks: 0, droppedNodes: 0, repairMode: 0 }
    // Anti-entropy with one member picked at random: what did either of us miss?
    const members = [...this.groupPeers].filter(p => p.opened)
    const member = members[Math.floor(Math.random() * members.length)]
    member?.reconcile()
    this.emit('repair-start', member ?? null)
    for (const core of await this.openAll()) {
      const report = await core.audit().catch(() => null)
      summary.cores++
      if (report !== null) {
        summary.blocks += report.blocks
        summary.corruptBlocks += report.corruptBlocks
        summary.droppedNodes += report.droppedNodes
      }
      if (core.repairMode) summary.repairMode++
    }
    await this.repairFromPeers()
    this.emit('repair', summary)
    return summary
  }

  private async openAll (): Promise<Hypercore[]> {
    await this.opening
    const out: Hypercore[] = []
    for (const key of this.known.values()) {
      const core = await this.get({ key }).catch(() => null)
      if (core !== null) out.push(core)
    }
    return out
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== null) clearInterval(this.timer)
    await this.opening.catch(noop)
    for (const peer of this.groupPeers) peer.close()
    await Promise.all([...this.cores.values()].map(c => c.close().catch(noop)))
    if (this.keysFile !== null) await close(this.keysFile).catch(noop)
  }
}

function noop (): void {}

function readAll (s: RandomAccessStorage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    s.stat((err, st) => {
      if (err || !st || st.size === 0) return resolve(new Uint8Array(0))
      s.read(0, st.size, (err2, buf) => err2 ? reject(err2) : resolve(buf!))
    })
  })
}

function write (s: RandomAccessStorage, offset: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => s.write(offset, data, err => err ? reject(err) : resolve()))
}

function close (s: RandomAccessStorage): Promise<void> {
  return new Promise((resolve, reject) => s.close(err => err ? reject(err) : resolve()))
}
