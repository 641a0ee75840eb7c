/**
 * The group channel between two stores that share a 32-byte group key: its
 * wire. A protomux channel whose handshake proves knowledge of the key and
 * the identity of the store on the other end (both bound to the Noise
 * session, so neither can be replayed), then four messages:
 *
 *  - `states`: what a store holds of some cores (key, fork, length, blocks
 *    held, flags) — its changes since the last sync with this store, new
 *    changes as they happen, and answers to `want`;
 *  - `reconcile`: one message of a set reconciliation session over the ids
 *    of the cores' states (see lib/store/core-state.ts);
 *  - `want`: the 16-byte id prefixes of cores it learned of but cannot name;
 *  - `synced`: how many ids a finished session found missing on this side.
 *
 * A peer without the group key learns nothing, not even which group this is.
 * What the messages mean to a store is lib/store/group-sync.ts's business.
 */
import type Protomux from 'protomux'
import c from 'compact-encoding'
import b4a from 'b4a'
import { keyedHash, namespace, sign, verify, type KeyPair } from './crypto'
import { PREFIX_BYTES, type CoreState } from './store/core-state'

export const GROUP_PROTOCOL = 'nomadcore/group/2'

const [GROUP_ID, GROUP_INITIATOR, GROUP_RESPONDER, IDENTITY_PROOF] = namespace('nomadcore/group', 4) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]

/** Records in one `states` message, at most. */
export const MAX_RECORDS = 1024
/** Prefixes in one `want` message, at most. */
export const MAX_WANTS = 4096

/** Handshake flag: the store keeps full replicas of every core (both ends of a group must agree). */
export const FLAG_FULL = 1

/** `states` flags. */
export const STATES_DELTA = 1
/** The last message of a delta. */
export const STATES_LAST = 2
export const STATES_LIVE = 4
export const STATES_ANSWER = 8

/** The channel id of a group: reveals nothing of the key. */
export function groupId (group: Uint8Array): Uint8Array {
  return keyedHash([GROUP_ID], group)
}

function capability (isInitiator: boolean, group: Uint8Array, handshakeHash: Uint8Array): Uint8Array {
  return keyedHash([isInitiator ? GROUP_INITIATOR : GROUP_RESPONDER, handshakeHash], group)
}

function identitySignable (isInitiator: boolean, handshakeHash: Uint8Array): Uint8Array {
  return b4a.concat([IDENTITY_PROOF, handshakeHash, b4a.from([isInitiator ? 1 : 0])])
}

/**
 * What a store holds of one core. A core the remote holds already is named
 * by the first 16 bytes of its discovery key (a reconciliation id's prefix),
 * any other by its key.
 */
export interface StateRecord extends CoreState {
  key: Uint8Array | null
  prefix: Uint8Array | null
}

interface Handshake {
  capability: Uint8Array
  identity: Uint8Array
  signature: Uint8Array
  flags: number
}

interface StatesMessage { flags: number, records: StateRecord[] }
interface ReconcileMessage { session: number, payload: Uint8Array }
interface SyncedMessage { session: number, missing: number }

const handshakeEncoding = {
  preencode (state: c.State, m: Handshake) {
    c.fixed32.preencode(state, m.capability)
    c.fixed32.preencode(state, m.identity)
    c.fixed64.preencode(state, m.signature)
    c.uint.preencode(state, m.flags)
  },
  encode (state: c.State, m: Handshake) {
    c.fixed32.encode(state, m.capability)
    c.fixed32.encode(state, m.identity)
    c.fixed64.encode(state, m.signature)
    c.uint.encode(state, m.flags)
  },
  decode (state: c.State): Handshake {
    return { capability: c.fixed32.decode(state), identity: c.fixed32.decode(state), signature: c.fixed64.decode(state), flags: c.uint.decode(state) }
  }
}

const recordEncoding = {
  preencode (state: c.State, r: StateRecord) {
    state.end += 1 + (r.key !== null ? 32 : PREFIX_BYTES)
    c.uint.preencode(state, r.fork)
    c.uint.preencode(state, r.length)
    c.uint.preencode(state, r.held)
    c.uint.preencode(state, r.flags)
  },
  encode (state: c.State, r: StateRecord) {
    const name = r.key ?? r.prefix!.subarray(0, PREFIX_BYTES)
    state.buffer![state.start++] = r.key !== null ? 1 : 0
    state.buffer!.set(name, state.start)
    state.start += name.byteLength
    c.uint.encode(state, r.fork)
    c.uint.encode(state, r.length)
    c.uint.encode(state, r.held)
    c.uint.encode(state, r.flags)
  },
  decode (state: c.State): StateRecord {
    const kind = c.uint.decode(state)
    if (kind > 1) throw new Error('Unknown record kind')
    const key = kind === 1 ? c.fixed32.decode(state) : null
    const prefix = kind === 0 ? c.fixed(PREFIX_BYTES).decode(state) : null
    const fork = c.uint.decode(state)
    const length = c.uint.decode(state)
    const held = c.uint.decode(state)
    const flags = c.uint.decode(state)
    if (held > length) throw new Error('More blocks held than the core has')
    return { key, prefix, fork, length, held, flags }
  }
}

const recordsEncoding = c.array(recordEncoding)

const statesEncoding = {
  preencode (state: c.State, m: StatesMessage) {
    c.uint.preencode(state, m.flags)
    recordsEncoding.preencode(state, m.records)
  },
  encode (state: c.State, m: StatesMessage) {
    c.uint.encode(state, m.flags)
    recordsEncoding.encode(state, m.records)
  },
  decode (state: c.State): StatesMessage {
    const flags = c.uint.decode(state)
    // Checked before decoding them all: a hostile count must not allocate.
    const n = c.uint.decode(state)
    if (n > MAX_RECORDS) throw new Error('Too many records')
    const records: StateRecord[] = []
    for (let i = 0; i < n; i++) records.push(recordEncoding.decode(state))
    return { flags, records }
  }
}

const reconcileEncoding = {
  preencode (state: c.State, m: ReconcileMessage) {
    c.uint.preencode(state, m.session)
    c.raw.preencode(state, m.payload)
  },
  encode (state: c.State, m: ReconcileMessage) {
    c.uint.encode(state, m.session)
    c.raw.encode(state, m.payload)
  },
  decode (state: c.State): ReconcileMessage {
    return { session: c.uint.decode(state), payload: c.raw.decode(state) }
  }
}

const wantEncoding = {
  preencode (state: c.State, m: Uint8Array[]) {
    c.uint.preencode(state, m.length)
    state.end += m.length * PREFIX_BYTES
  },
  encode (state: c.State, m: Uint8Array[]) {
    c.uint.encode(state, m.length)
    for (const p of m) {
      state.buffer!.set(p.subarray(0, PREFIX_BYTES), state.start)
      state.start += PREFIX_BYTES
    }
  },
  decode (state: c.State): Uint8Array[] {
    const n = c.uint.decode(state)
    if (n > MAX_WANTS || state.end - state.start < n * PREFIX_BYTES) throw new Error('Bad want')
    const out: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      out.push(state.buffer!.subarray(state.start, state.start + PREFIX_BYTES))
      state.start += PREFIX_BYTES
    }
    return out
  }
}

const syncedEncoding = {
  preencode (state: c.State, m: SyncedMessage) {
    c.uint.preencode(state, m.session)
    c.uint.preencode(state, m.missing)
  },
  encode (state: c.State, m: SyncedMessage) {
    c.uint.encode(state, m.session)
    c.uint.encode(state, m.missing)
  },
  decode (state: c.State): SyncedMessage {
    return { session: c.uint.decode(state), missing: c.uint.decode(state) }
  }
}

/** What the group channel needs from the store. */
export interface GroupHost {
  readonly group: Uint8Array
  /** The store's identity, proven to the remote in the handshake. */
  readonly identity: KeyPair
  /** Handshake flags (FLAG_FULL); a remote with others is refused. */
  readonly groupFlags: number
  onopen (peer: GroupPeer): void
  onclose (peer: GroupPeer): void
  onstates (peer: GroupPeer, flags: number, records: StateRecord[]): void
  onreconcile (peer: GroupPeer, session: number, payload: Uint8Array): void
  onwant (peer: GroupPeer, prefixes: Uint8Array[]): void
  onsynced (peer: GroupPeer, session: number, missing: number): void
}

export class GroupPeer {
  opened = false
  /** The remote store's identity (its public key), proven in the handshake. */
  remoteIdentity: Uint8Array | null = null
  /** Bytes of group messages sent and received (reconciliation, states, wants). */
  bytesSent = 0
  bytesReceived = 0
  readonly #host: GroupHost
  readonly mux: Protomux
  readonly #channel: Protomux.Channel
  readonly #messages: Protomux.Message<any>[]

  private constructor (host: GroupHost, mux: Protomux, channel: Protomux.Channel) {
    this.#host = host
    this.mux = mux
    this.#channel = channel
    this.#messages = channel.messages
  }

  /** The remote identity as hex: the store's name for it (sync points). */
  get remoteId (): string {
    return this.remoteIdentity === null ? '' : b4a.toString(this.remoteIdentity as Buffer, 'hex')
  }

  /** The Noise handshake hash of the connection (keys reconciliation fingerprints). */
  get handshakeHash (): Uint8Array {
    return this.mux.stream.handshakeHash!
  }

  static open (host: GroupHost, mux: Protomux): GroupPeer | null {
    const id = groupId(host.group)
    if (mux.opened({ protocol: GROUP_PROTOCOL, id })) return null
    let peer: GroupPeer | null = null
    const guard = <T>(fn: (m: T) => void) => (m: T): void => {
      if (peer === null || !peer.opened) return
      fn(m)
    }
    const channel = mux.createChannel({
      protocol: GROUP_PROTOCOL,
      id,
      handshake: handshakeEncoding,
      messages: [
        { encoding: statesEncoding, onmessage: guard((m: StatesMessage) => { peer!.#count(m.records.length * 40); host.onstates(peer!, m.flags, m.records) }) },
        { encoding: reconcileEncoding, onmessage: guard((m: ReconcileMessage) => { peer!.#count(m.payload.byteLength); host.onreconcile(peer!, m.session, m.payload) }) },
        { encoding: wantEncoding, onmessage: guard((m: Uint8Array[]) => { peer!.#count(m.length * PREFIX_BYTES); host.onwant(peer!, m) }) },
        { encoding: syncedEncoding, onmessage: guard((m: SyncedMessage) => host.onsynced(peer!, m.session, m.missing)) }
      ],
      onopen: (h: Handshake) => peer!.#onopen(h),
      onclose: () => peer!.#onclose()
    })
    if (channel === null) return null
    peer = new GroupPeer(host, mux, channel)
    const isInitiator = mux.stream.isInitiator
    const hh = mux.stream.handshakeHash!
    channel.open({
      capability: capability(isInitiator, host.group, hh),
      identity: host.identity.publicKey,
      signature: sign(identitySignable(isInitiator, hh), host.identity.secretKey),
      flags: host.groupFlags
    })
    return peer
  }

  #count (bytes: number): void {
    this.bytesReceived += bytes
  }

  #onopen (h: Handshake): void {
    const remoteIsInitiator = !this.mux.stream.isInitiator
    const hh = this.mux.stream.handshakeHash!
    const expected = capability(remoteIsInitiator, this.#host.group, hh)
    if (!b4a.equals(h.capability, expected) ||
        !verify(identitySignable(remoteIsInitiator, hh), h.signature, h.identity) ||
        b4a.equals(h.identity, this.#host.identity.publicKey) ||
        h.flags !== this.#host.groupFlags) {
      // Not of the group, not who it claims, ourselves, or a store of another replica policy.
      this.#channel.close()
      return
    }
    this.remoteIdentity = h.identity
    this.opened = true
    this.#host.onopen(this)
  }

  #onclose (): void {
    const was = this.opened
    this.opened = false
    if (was) this.#host.onclose(this)
  }

  sendStates (flags: number, records: StateRecord[]): void {
    if (!this.opened) return
    for (let i = 0; i < records.length || i === 0; i += MAX_RECORDS) {
      const chunk = records.slice(i, i + MAX_RECORDS)
      const last = i + MAX_RECORDS >= records.length
      this.bytesSent += chunk.length * 40
      this.#messages[0]!.send({ flags: last ? flags : flags & ~STATES_LAST, records: chunk })
    }
  }

  sendReconcile (session: number, payload: Uint8Array): void {
    if (!this.opened) return
    this.bytesSent += payload.byteLength
    this.#messages[1]!.send({ session, payload })
  }

  sendWant (prefixes: Uint8Array[]): void {
    if (!this.opened) return
    for (let i = 0; i < prefixes.length; i += MAX_WANTS) {
      const chunk = prefixes.slice(i, i + MAX_WANTS)
      this.bytesSent += chunk.length * PREFIX_BYTES
      this.#messages[2]!.send(chunk)
    }
  }

  sendSynced (session: number, missing: number): void {
    if (!this.opened) return
    this.#messages[3]!.send({ session, missing })
  }

  /** Drops the channel (a member that spoke garbage, or the store closing). */
  close (): void {
    this.#channel.close()
  }
}
