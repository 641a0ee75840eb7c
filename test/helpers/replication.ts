/**
 * Shared helpers for replication tests: in-memory cores, piping two cores'
 * replication streams together, waiting for events, and a hand-built fake
 * peer that speaks `hypercore/alpha` over a real secret-stream pair using our
 * own wire codecs (to play a hostile or a scripted remote).
 */
import { EventEmitter } from 'node:events'
import { spawn } from 'node:child_process'
import b4a from 'b4a'
import RAM from 'random-access-memory'
import Protomux from 'protomux'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { Hypercore, type HypercoreOptions } from '../../lib/hypercore'
import { wire, type DataMessage, type HandshakeMessage, type RequestMessage, type SyncMessage, type RangeMessage, type BitfieldMessage, type WantMessage, type NoDataMessage, type ExtensionMessage, type ReorgHintMessage, type Codec } from '../../lib/messages'
import { replicateCapability, discoveryKey } from '../../lib/crypto'
import { makeHypercore, type Teardownable } from './oracle'

/** Anything that pipes: our streams, Hypercore 11's streams. */
export interface Pipeable {
  pipe (dest: any): any
  destroy (err?: Error): void
  on (event: string, fn: (...args: any[]) => void): unknown
  readonly destroyed: boolean
}

/** Anything with Hypercore's `replicate(isInitiator)`. */
export interface Replicable {
  replicate (isInitiator: boolean, opts?: { keepAlive?: boolean }): unknown
}

/** A nomadcore core on random-access-memory, closed at teardown. */
export async function ramCore (t: Teardownable, key?: Uint8Array | null, opts: HypercoreOptions = {}): Promise<Hypercore> {
  const core = new Hypercore(() => new RAM(), key ?? null, opts)
  t.teardown(() => core.close())
  await core.ready()
  return core
}

export interface Link {
  /** The initiator's stream (a's side). */
  a: Pipeable
  /** The responder's stream (b's side). */
  b: Pipeable
  /** Tears the connection down (both ends). */
  destroy (): void
}

/**
 * Pipes `a.replicate(true)` into `b.replicate(false)` and back; both streams
 * are destroyed at teardown.
 */
export function replicate (t: Teardownable, a: Replicable, b: Replicable): Link {
  const s1 = a.replicate(true, { keepAlive: false }) as Pipeable
  const s2 = b.replicate(false, { keepAlive: false }) as Pipeable
  return pipePair(t, s1, s2)
}

/** Pipes two streams both ways; destroys them at teardown. */
export function pipePair (t: Teardownable, s1: Pipeable, s2: Pipeable): Link {
  s1.on('error', noop)
  s2.on('error', noop)
  s1.pipe(s2).pipe(s1)
  const destroy = (): void => {
    s1.destroy()
    s2.destroy()
  }
  t.teardown(destroy)
  return { a: s1, b: s2, destroy }
}

/** Resolves with the arguments of the next `event`; rejects after `ms`. */
export function once<T extends unknown[] = unknown[]> (emitter: { once (e: string, fn: (...args: any[]) => void): unknown, off? (e: string, fn: (...args: any[]) => void): unknown }, event: string, ms = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off?.(event, on)
      reject(new Error('Timed out waiting for ' + event))
    }, ms)
    const on = (...args: any[]): void => {
      clearTimeout(timer)
      resolve(args as T)
    }
    emitter.once(event, on)
  })
}

/** Polls `check` until it is true; rejects after `ms`. */
export async function until (check: () => boolean | Promise<boolean>, ms = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error('Timed out waiting for ' + what)
    await sleep(10)
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Resolves with the error `p` rejects with, or null if it resolves. */
export async function rejection (p: Promise<unknown>): Promise<(Error & { code?: string }) | null> {
  try {
    await p
    return null
  } catch (err) {
    return err as Error & { code?: string }
  }
}

/** Settles to 'resolved' / 'rejected' / 'pending' after `ms`. */
export async function stateAfter (p: Promise<unknown>, ms: number): Promise<'resolved' | 'rejected' | 'pending'> {
  let state: 'resolved' | 'rejected' | 'pending' = 'pending'
  p.then(() => { state = 'resolved' }, () => { state = 'rejected' })
  await sleep(ms)
  return state
}

export function noop (): void {}

// ---------------------------------------------------------------------------
// A fake peer

export interface FakePeerHandlers {
  onopen? (peer: FakePeer, handshake: HandshakeMessage): void
  onsync? (peer: FakePeer, m: SyncMessage): void
  onrequest? (peer: FakePeer, m: RequestMessage): void | Promise<void>
  ondata? (peer: FakePeer, m: DataMessage): void
  onnodata? (peer: FakePeer, m: NoDataMessage): void
  onwant? (peer: FakePeer, m: WantMessage): void
  onbitfield? (peer: FakePeer, m: BitfieldMessage): void
  onrange? (peer: FakePeer, m: RangeMessage): void
  onextension? (peer: FakePeer, m: ExtensionMessage): void
  onclose? (peer: FakePeer): void
  /** Capability to send instead of the right one. */
  capability?: (right: Uint8Array) => Uint8Array
}

/** Bytes to put on the wire as they are, in place of an encoded message. */
class RawBytes {
  constructor (readonly bytes: Uint8Array) {}
}

/** `codec`, except that a RawBytes value is written verbatim. */
function rawable<T> (codec: Codec<T>): Codec<T | RawBytes> {
  return {
    preencode (state, v) {
      if (v instanceof RawBytes) state.end += v.bytes.byteLength
      else codec.preencode(state, v)
    },
    encode (state, v) {
      if (v instanceof RawBytes) {
        state.buffer!.set(v.bytes, state.start)
        state.start += v.bytes.byteLength
      } else {
        codec.encode(state, v)
      }
    },
    decode (state) {
      return codec.decode(state)
    }
  }
}

/**
 * One side of a secret-stream pair, speaking `hypercore/alpha` for `key` by
 * hand with lib/messages codecs. `stream` is the other side, to hand to a
 * core's `replicate()`.
 */
export class FakePeer extends EventEmitter {
  readonly local: NoiseSecretStream
  /** The side to give to the core under test. */
  readonly stream: NoiseSecretStream
  mux: Protomux | null = null
  channel: Protomux.Channel | null = null
  readonly received: Array<{ type: string, message: unknown }> = []
  closed = false
  remoteOpened = false

  constructor (t: Teardownable, readonly key: Uint8Array, readonly handlers: FakePeerHandlers = {}, isInitiator = true) {
    super()
    this.local = new NoiseSecretStream(isInitiator)
    this.stream = new NoiseSecretStream(!isInitiator)
    this.local.on('error', noop)
    this.stream.on('error', noop)
    this.local.rawStream.pipe(this.stream.rawStream).pipe(this.local.rawStream)
    t.teardown(() => this.destroy())
  }

  /** Opens the channel once the Noise handshake is done. */
  async open (): Promise<void> {
    await this.local.opened
    const mux = this.mux = Protomux.from(this.local as unknown as Protomux.MuxStream)
    const h = this.handlers
    const rec = <T>(type: string, fn?: (peer: FakePeer, m: T) => unknown) => (m: T) => {
      this.received.push({ type, message: m })
      this.emit(type, m)
      if (fn !== undefined) void fn(this, m)
    }
    const channel = mux.createChannel({
      protocol: 'hypercore/alpha',
      aliases: ['hypercore'],
      id: discoveryKey(this.key),
      handshake: wire.handshake,
      messages: [
        { encoding: rawable(wire.sync), onmessage: rec<SyncMessage>('sync', h.onsync) },
        { encoding: rawable(wire.request), onmessage: rec<RequestMessage>('request', h.onrequest) },
        { encoding: rawable(wire.cancel), onmessage: rec('cancel') },
        { encoding: rawable(wire.data), onmessage: rec<DataMessage>('data', h.ondata) },
        { encoding: rawable(wire.noData), onmessage: rec<NoDataMessage>('noData', h.onnodata) },
        { encoding: rawable(wire.want), onmessage: rec<WantMessage>('want', h.onwant) },
        { encoding: rawable(wire.unwant), onmessage: rec('unwant') },
        { encoding: rawable(wire.bitfield), onmessage: rec<BitfieldMessage>('bitfield', h.onbitfield) },
        { encoding: rawable(wire.range), onmessage: rec<RangeMessage>('range', h.onrange) },
        { encoding: rawable(wire.extension), onmessage: rec<ExtensionMessage>('extension', h.onextension) },
        // Not a message of Hypercore 11's channel (it never sends one): here to check that peers ignore it.
        { encoding: rawable(wire.reorgHint) }
      ],
      onopen: (m: HandshakeMessage) => {
        this.remoteOpened = true
        this.received.push({ type: 'open', message: m })
        this.emit('open', m)
        h.onopen?.(this, m)
      },
      onclose: () => {
        this.closed = true
        this.emit('close')
        h.onclose?.(this)
      }
    })
    if (channel === null) throw new Error('Channel already open')
    this.channel = channel
    const right = replicateCapability(this.local.isInitiator, this.key, this.local.handshakeHash!)
    channel.open({ seeks: true, capability: h.capability ? h.capability(right) : right })
  }

  private msg<T> (i: number): Protomux.Message<T> {
    return this.channel!.messages[i]! as Protomux.Message<T>
  }

  sendSync (m: Partial<SyncMessage> & { length: number }): void {
    this.msg<SyncMessage>(0).send({ fork: 0, remoteLength: 0, canUpgrade: true, uploading: true, downloading: true, hasManifest: true, allowPush: false, ...m })
  }

  sendRequest (m: RequestMessage): void { this.msg<RequestMessage>(1).send(m) }
  sendData (m: DataMessage): void { this.msg<DataMessage>(3).send(m) }
  sendNoData (m: NoDataMessage): void { this.msg<NoDataMessage>(4).send(m) }
  sendWant (m: WantMessage): void { this.msg<WantMessage>(5).send(m) }
  sendBitfield (m: BitfieldMessage): void { this.msg<BitfieldMessage>(7).send(m) }
  sendRange (m: RangeMessage): void { this.msg<RangeMessage>(8).send(m) }
  sendReorgHint (m: ReorgHintMessage): void { this.msg<ReorgHintMessage>(10).send(m) }

  /**
   * Sends raw bytes as message type `type` of this channel (bypassing our
   * codecs), to deliver malformed messages.
   */
  sendRaw (type: number, bytes: Uint8Array): void {
    this.msg<unknown>(type).send(new RawBytes(bytes))
  }

  count (type: string): number {
    let n = 0
    for (const r of this.received) if (r.type === type) n++
    return n
  }

  destroy (): void {
    this.local.destroy()
    this.stream.destroy()
  }
}

/**
 * Answers a request the honest way from `source` (a nomadcore core holding
 * the data): the data message Hypercore would send.
 */
export async function honestAnswer (source: Hypercore, m: RequestMessage): Promise<DataMessage | NoDataMessage> {
  try {
    const proof = await source.proof({ block: m.block, hash: m.hash, seek: m.seek, upgrade: m.upgrade })
    const value = m.block !== null ? await source.get(m.block.index, { wait: false }) as Uint8Array | null : null
    if (m.block !== null && value === null) return { request: m.id, reason: 1 }
    return {
      request: m.id,
      fork: proof.fork,
      block: proof.block === null ? null : { index: proof.block.index, value: value!, nodes: proof.block.nodes },
      hash: proof.hash,
      seek: proof.seek,
      upgrade: proof.upgrade,
      manifest: m.manifest ? source.manifest : null
    }
  } catch {
    return { request: m.id, reason: 2 }
  }
}

// ---------------------------------------------------------------------------
// Malformed wire messages, in a child process (a crash must not take the test
// runner down with it)

/** What `malformedMessageChild` reports. */
export interface MalformedResult {
  length: number
  has0: boolean
  has4: boolean
  peerRemoved: boolean
  block4: string | null
}

interface VictimLike {
  readonly length: number
  get (index: number, opts?: { timeout?: number }): Promise<unknown>
  has (index: number): Promise<boolean>
  replicate (isInitiator: any, opts?: { keepAlive?: boolean }): any
  on (event: string, fn: (...args: any[]) => void): unknown
}

/**
 * Child-process entry: a reader (`impl`: nomadcore or Hypercore 11) replicating
 * from a fake peer that then sends `hex` as message `type` of the channel.
 * Prints `RESULT {json}` and exits 0 if the process survived.
 */
export async function malformedMessageChild (impl: 'nomad' | 'hc11', type: number, hex: string): Promise<void> {
  const t: Teardownable = { teardown: () => {} }
  const w = new Hypercore(() => new RAM())
  await w.ready()
  await w.append(Array.from({ length: 8 }, (_, i) => b4a.from('block ' + i)))
  let v: VictimLike
  if (impl === 'nomad') {
    const core = new Hypercore(() => new RAM(), w.key)
    await core.ready()
    v = core
  } else {
    v = await makeHypercore(undefined, w.key) as unknown as VictimLike
  }
  const fake = new FakePeer(t, w.key!, {
    onopen: p => {
      p.sendSync({ length: 8 })
      p.sendRange({ drop: false, start: 0, length: 8 })
    },
    onrequest: async (p, m) => {
      const a = await honestAnswer(w, m)
      if ('fork' in a) p.sendData(a)
      else p.sendNoData(a)
    }
  })
  v.replicate(fake.stream)
  await fake.open()
  await v.get(0, { timeout: 3000 })
  let peerRemoved = false
  v.on('peer-remove', () => { peerRemoved = true })
  fake.sendRaw(type, b4a.from(hex, 'hex'))
  await sleep(300)
  const result: MalformedResult = { length: v.length, has0: await v.has(0), has4: await v.has(4), peerRemoved, block4: null }
  const s1 = w.replicate(true, { keepAlive: false }) as Pipeable
  const s2 = v.replicate(false, { keepAlive: false }) as Pipeable
  s1.on('error', noop)
  s2.on('error', noop)
  s1.pipe(s2).pipe(s1)
  result.block4 = await v.get(4, { timeout: 3000 }).then(x => b4a.toString(x as Uint8Array), () => null)
  console.log('RESULT ' + JSON.stringify(result))
  process.exit(0)
}

/** Runs `malformedMessageChild` in a fresh node process. */
export function runMalformedChild (impl: 'nomad' | 'hc11', type: number, hex: string): Promise<{ status: number | null, result: MalformedResult | null, stderr: string }> {
  const modulePath = JSON.stringify(__filename)
  const script = `require(${modulePath}).malformedMessageChild(${JSON.stringify(impl)}, ${type}, ${JSON.stringify(hex)}).catch(err => { console.error(err); process.exit(3) })`
  return new Promise(resolve => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15000 })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.on('close', status => {
      const line = out.split('\n').find(l => l.startsWith('RESULT '))
      resolve({ status, result: line === undefined ? null : JSON.parse(line.slice(7)) as MalformedResult, stderr: err })
    })
  })
}
