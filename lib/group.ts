/**
 * The group channel between two stores that share a 32-byte group key: a
 * protomux channel whose handshake proves knowledge of the key (bound to the
 * Noise session, so it cannot be replayed), then set reconciliation of the
 * core keys each side holds, and announcements of cores created since.
 * A peer without the key learns nothing: not even which group this is.
 */
import type Protomux from 'protomux'
import c from 'compact-encoding'
import b4a from 'b4a'
import { keyedHash, namespace } from './crypto'
import { INVALID_MESSAGE } from './errors'
import { Session, type ReconcileSet } from './reconcile'

export const GROUP_PROTOCOL = 'nomadcore/group'

const [GROUP_ID, GROUP_INITIATOR, GROUP_RESPONDER] = namespace('nomadcore/group', 3) as [Uint8Array, Uint8Array, Uint8Array]

/** Keys announced in one message, at most. */
const MAX_ANNOUNCE = 1024

/** The channel id of a group: reveals nothing of the key. */
export function groupId (group: Uint8Array): Uint8Array {
  return keyedHash([GROUP_ID], group)
}

function capability (isInitiator: boolean, group: Uint8Array, handshakeHash: Uint8Array): Uint8Array {
  return keyedHash([isInitiator ? GROUP_INITIATOR : GROUP_RESPONDER, handshakeHash], group)
}

interface ReconcileMessage { session: number, payload: Uint8Array }

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

const announceEncoding = c.array(c.fixed32)
const handshakeEncoding = c.fixed32

/** What the group channel needs from the store. */
export interface GroupHost {
  readonly group: Uint8Array
  /** The core keys we hold, as a reconcilable set. */
  keySet (): ReconcileSet
  /** Keys the remote holds and we do not. */
  onkeys (peer: GroupPeer, keys: Uint8Array[]): void
  onopen (peer: GroupPeer): void
  onclose (peer: GroupPeer): void
  /** A reconciliation finished. */
  onsynced (peer: GroupPeer, stats: { rounds: number, bytes: number }): void
}

export class GroupPeer {
  private session: Session | null = null
  private sessionSeq = 0
  private rounds = 0
  private bytes = 0
  opened = false
  private readonly reconcileMessage: Protomux.Message<ReconcileMessage>
  private readonly announceMessage: Protomux.Message<Uint8Array[]>

  /** The remote's Noise key (stable across reconnects on Hyperswarm), for the since fast path. */
  readonly remoteId: string | undefined

  private constructor (readonly host: GroupHost, readonly mux: Protomux, readonly channel: Protomux.Channel) {
    this.reconcileMessage = channel.messages[0]!
    this.announceMessage = channel.messages[1]!
    const pk = (mux.stream as unknown as { remotePublicKey?: Uint8Array | null }).remotePublicKey
    this.remoteId = pk ? b4a.toString(pk as Buffer, 'hex') : undefined
  }

  static open (host: GroupHost, mux: Protomux): GroupPeer | null {
    const id = groupId(host.group)
    if (mux.opened({ protocol: GROUP_PROTOCOL, id })) return null
    let peer: GroupPeer | null = null
    const channel = mux.createChannel({
      protocol: GROUP_PROTOCOL,
      id,
      handshake: handshakeEncoding,
      messages: [
        { encoding: reconcileEncoding, onmessage: (m: ReconcileMessage) => peer!.onreconcile(m) },
        { encoding: announceEncoding, onmessage: (keys: Uint8Array[]) => peer!.onannounce(keys) }
      ],
      onopen: (cap: Uint8Array) => peer!.onopen(cap),
      onclose: () => peer!.onclose()
    })
    if (channel === null) return null
    peer = new GroupPeer(host, mux, channel)
    channel.open(capability(mux.stream.isInitiator, host.group, mux.stream.handshakeHash!))
    return peer
  }

  private onopen (cap: Uint8Array): void {
    const expected = capability(!this.mux.stream.isInitiator, this.host.group, this.mux.stream.handshakeHash!)
    if (!b4a.equals(cap, expected)) {
      this.channel.close()
      return
    }
    this.opened = true
    this.host.onopen(this)
    this.reconcile()
  }

  private onclose (): void {
    this.session = null
    if (this.opened) this.host.onclose(this)
    this.opened = false
  }

  /** Starts a reconciliation (again); the remote joins in when it sees it. */
  reconcile (): void {
    if (!this.opened) return
    this.begin(this.sessionSeq + 1)
  }

  private begin (seq: number): void {
    this.sessionSeq = seq
    this.rounds = 0
    this.bytes = 0
    // The Noise handshake hash keys the fingerprints: no outsider can aim collisions at this session.
    this.session = new Session(this.host.keySet(), { peer: this.remoteId, sessionKey: this.mux.stream.handshakeHash! })
    this.send(this.session.start())
  }

  private send (payload: Uint8Array): void {
    this.bytes += payload.byteLength
    this.reconcileMessage.send({ session: this.sessionSeq, payload })
  }

  private onreconcile (m: ReconcileMessage): void {
    if (!this.opened) return
    if (m.session < this.sessionSeq) return // an old session, superseded
    if (m.session > this.sessionSeq || this.session === null) this.begin(m.session)
    const session = this.session!
    this.bytes += m.payload.byteLength
    this.rounds++
    let reply: Uint8Array | null
    try {
      reply = session.receive(m.payload)
    } catch (err) {
      // A member that speaks garbage is dropped from the group channel.
      this.channel.close()
      if (err instanceof Error && 'code' in err) return
      throw INVALID_MESSAGE('Bad reconciliation message')
    }
    if (reply !== null) this.send(reply)
    if (session.done) {
      this.session = null
      const missing = session.missing()
      if (missing.length > 0) this.host.onkeys(this, missing)
      // Next time, only what was added since needs sending.
      if (this.remoteId !== undefined) this.host.keySet().markSynced(this.remoteId)
      this.host.onsynced(this, { rounds: this.rounds, bytes: this.bytes })
    }
  }

  /** Tells the remote about cores created since we reconciled. */
  announce (keys: Uint8Array[]): void {
    if (!this.opened) return
    for (let i = 0; i < keys.length; i += MAX_ANNOUNCE) this.announceMessage.send(keys.slice(i, i + MAX_ANNOUNCE))
  }

  private onannounce (keys: Uint8Array[]): void {
    if (!this.opened || keys.length > MAX_ANNOUNCE) return
    this.host.onkeys(this, keys)
  }

  close (): void {
    this.channel.close()
  }
}
