/**
 * One side of a reconciliation: the message flow. Both sides run the same
 * code (no leader) and send one message per round at the same time, so a
 * round is one flight; a side with nothing to say sends an empty message.
 *
 *  1. hello (hello.ts): count, the 16-bucket estimator, and either the
 *     keyed fingerprint of the whole set (when the sides share a secret:
 *     the key is known up front and the set keeps the fingerprint up to
 *     date) or a nonce (the key then comes from both nonces, and the
 *     fingerprints follow in a round of their own). Plus the since list.
 *  2. from the hellos, both decide alike: equal sets are done; the since
 *     path (since.ts) may settle it; an empty or cold side gets ids in bulk
 *     (the walk's bulk tasks); counts far apart with an estimate no larger
 *     than their difference take the one-sided path (subset-flow.ts),
 *     which may end in coded cells for what it leaves; otherwise the side
 *     with more ids encodes, the other decodes, and the estimate sizes the
 *     first batch of cells (plan.ts; a saturated estimate first costs a
 *     round of finer ones).
 *  3. the cells (symbols-flow.ts): the encoder sends them
 *     (coded-symbols.ts); the decoder peels (peel.ts) and confirms with the
 *     keyed fingerprints, then sends the ids it has that the encoder lacks
 *     — or asks for more cells — or, when decoding stalls for good or does
 *     not confirm, has both fall back to the tree walk (walk.ts), which
 *     always finds the exact difference.
 *
 * With a shared secret, one side may follow its hello with a burst of
 * cells (burst.ts). The other side then answers the first round once the
 * burst decodes (the ids the sender lacks, after one flight; the sender's
 * own second message, sent before it knew, is not read), or, when it does
 * not, at its end with what the hellos decide: the burst is then the first
 * batch of the cells, its sender the encoder.
 *
 * Decoding treats the bytes as hostile: anything malformed, inconsistent or
 * over a limit is an INVALID_MESSAGE error, and the session is dead after it.
 */
import b4a from 'b4a'
import sodium from 'sodium-universal'
import { INVALID_MESSAGE, INVALID_OPERATION, BAD_ARGUMENT, isCoded } from '../errors'
import { KeyedHash, deriveSessionKey, deriveSharedKey, NONCE_BYTES } from './hash'
import { ID_BYTES, IdBuffer } from './ids'
import type { TreeData } from './tree-data'
import { ReconcileSet } from './set'
import { BurstCells, MSG_BURST, MSG_BURST_DONE, burstSchedule, usable, writeBurst } from './burst'
import { cellsFor, type SymbolTable } from './coded-symbols'
import { fingerprintOf, type Sum64 } from './fingerprint'
import { EST1_ERROR, EST2_ERROR, estimate, firstBatch, readEst2, writeEst2, type Batch } from './plan'
import { sinceMatches } from './since'
import { HELLO_MAX_BYTES, isHello, readHello, writeHello, type Hello } from './hello'
import { planSubset, type SubsetPlan } from './subset'
import { SubsetFlow, type Residual, type SubsetStep } from './subset-flow'
import { MSG_DONE, SymbolsFlow, type Prior, type SymbolsStep } from './symbols-flow'
import type { FlowContext } from './flow-context'
import { TreeWalk, startsInBulk, type WalkContext } from './walk'
import { KeyedIndex } from './walk-index'
import { Reader, Writer } from './wire'
import { sessionSettings, type ReconcileMode, type SessionOptions } from './session-options'

export type { ReconcileMode, SessionOptions } from './session-options'

// Message types: the first byte (0x20 to 0x27: a hello and its flags, hello.ts).
const MSG_FP = 0x30
const MSG_EST2 = 0x31
// 0x32 to 0x35: coded cells (symbols-flow.ts).
const MSG_ROUND = 0x36
// 0x37 to 0x3c: the one-sided path (subset-flow.ts); 0x3d, 0x3e: the burst (burst.ts).

const EMPTY_BYTES = new Uint8Array(0)

type Phase = 'new' | 'hello' | 'fp' | 'est2' | 'symbols' | 'subset' | 'walk' | 'done' | 'failed'

/**
 * One side of a reconciliation. `start()` gives the first message (then
 * send `burst()`'s packets, if any); hand every message from the remote to
 * `receive()`, which gives the next one to send, or null when both sides
 * are done (they finish on the same round), or undefined while the
 * remote's burst arrives. Then `missing()` holds the ids this side lacks.
 */
export class Session {
  readonly set: ReconcileSet<any>
  readonly #peer: string | null
  readonly #sinceLimit: number
  readonly #recvLimit: number
  readonly #maxLearned: number
  readonly #maxOpen: number
  readonly #secret: Uint8Array | null
  readonly #nonce: Uint8Array | null
  readonly #cover: number

  #phase: Phase = 'new'
  #tree: TreeData | null = null
  #symbols: SymbolTable | null = null
  #hasher: KeyedHash | null = null
  #index: KeyedIndex | null = null
  #peerLimit = 0

  #myCount = 0
  #theirCount = 0
  #myFp: Sum64 = [0, 0]
  #theirFp: Sum64 = [0, 0]
  #mySince: Uint8Array | null = null
  #theirSince: Uint8Array | null = null
  #theirEst1: number[] | null = null
  #estimate = -1
  #oneSided = false

  #walk: TreeWalk | null = null
  #cells: SymbolsFlow | null = null
  #flow: SubsetFlow | null = null
  /** Counts and fingerprints of the two sets as they are (the walk's, and the cells' bound), whatever the one-sided path learned. */
  #base = { mine: 0, theirs: 0, myFp: [0, 0] as Sum64, theirFp: [0, 0] as Sum64 }

  /** Our burst: its packets until taken, and the cells they hold. */
  #outbox: Uint8Array[] = []
  #burstOut: Batch | null = null
  /** Their burst (its packets due and cells so far), whether the hellos settle it without, and whether we answered it. */
  #burstIn: BurstCells | null = null
  #burstIdle = false
  #sinceOk: boolean | null = null
  #answered = false

  readonly #learned = new IdBuffer(64)
  #stateIds = 0
  #mode: ReconcileMode = 'symbols'
  #knowsAllAfter: number | null = null
  #knowsBytes = 0
  #messages = 0
  #received = 0
  #bytesSent = 0
  #bytesReceived = 0

  constructor (set: ReconcileSet<any> | readonly Uint8Array[], opts: SessionOptions = {}) {
    if (set instanceof ReconcileSet) this.set = set
    else if (Array.isArray(set)) this.set = new ReconcileSet(set)
    else throw BAD_ARGUMENT('A session reconciles a ReconcileSet or an array of ids')
    const o = sessionSettings(opts)
    this.#peer = o.peer
    this.#sinceLimit = o.sinceLimit
    this.#recvLimit = o.recvLimit
    this.#maxLearned = o.maxLearned
    this.#maxOpen = o.maxOpen
    this.#cover = o.cover
    this.#secret = o.secret
    if (this.#secret === null) {
      this.#nonce = b4a.alloc(NONCE_BYTES)
      sodium.randombytes_buf(this.#nonce)
    } else {
      this.#nonce = null
    }
  }

  /** True once the exchange is complete (receive() returned null). */
  get done (): boolean {
    return this.#phase === 'done'
  }

  /** How the sets were reconciled: coded symbols, the since path, bulk transfer, or the tree walk. */
  get mode (): ReconcileMode {
    return this.#mode
  }

  /** Messages sent (= rounds, once done). */
  get messages (): number {
    return this.#messages
  }

  get bytesSent (): number {
    return this.#bytesSent
  }

  get bytesReceived (): number {
    return this.#bytesReceived
  }

  /** Messages received when this side knew the whole difference (both ways), or null if not yet. */
  get knowsAllAfter (): number | null {
    return this.#knowsAllAfter
  }

  /** Bytes sent and received by then (a burst's packets counted as they came). */
  get knowsAllBytes (): number | null {
    return this.#knowsAllAfter === null ? null : this.#knowsBytes
  }

  /** The ids this side lacks (what it learned so far; complete once done). */
  missing (): Uint8Array[] {
    return this.#learned.list()
  }

  /** The first message. */
  start (): Uint8Array {
    if (this.#phase !== 'new') throw INVALID_OPERATION('Session already started')
    this.#tree = this.set.snapshot()
    this.#symbols = this.set.symbols()
    this.#myCount = this.#tree.size
    if (this.#secret !== null) {
      const key = deriveSharedKey(this.#secret)
      this.#hasher = new KeyedHash(key)
      this.#myFp = this.set.fingerprint(key)
    }
    if (this.#peer !== null && this.#sinceLimit > 0) this.#mySince = this.set.addedSince(this.#peer, this.#sinceLimit)
    // No more cells than the remote expects of our count (a table that shrank by deletes keeps more).
    const packets = this.#cover > 0 && this.#secret !== null && this.#myCount > 0 ? burstSchedule(this.#cover, cellsFor(this.#myCount)) : []
    const w = new Writer(48 + (this.#mySince?.byteLength ?? 0))
    writeHello(w, {
      nonce: this.#nonce,
      count: this.#myCount,
      limit: this.#recvLimit,
      fp: this.#secret !== null ? this.#myFp : null,
      est1: this.#symbols.est1,
      since: this.#mySince,
      burst: packets.length > 0 ? this.#cover : 0
    })
    this.#phase = 'hello'
    let prev: Batch = { S: 0, L: 0 }
    for (const next of packets) {
      const packet = writeBurst(this.#symbols, prev, next)
      this.#bytesSent += packet.byteLength
      this.#outbox.push(packet)
      this.#burstOut = prev = next
    }
    return this.#send(w)
  }

  /** The burst's packets, to send right behind the first message and before anything else (none without the `burst` option); once. */
  burst (): Uint8Array[] {
    const out = this.#outbox
    this.#outbox = []
    return out
  }

  /**
   * Takes the remote's next message; returns ours, or null when done, or
   * undefined when there is nothing to send yet (only while the remote's
   * burst arrives: the answer comes with one of its packets).
   */
  receive (msg: Uint8Array): Uint8Array | null | undefined {
    if (this.#phase === 'new') throw INVALID_OPERATION('Call start() first')
    if (this.#phase === 'done') throw INVALID_OPERATION('Session is done')
    if (this.#phase === 'failed') throw INVALID_OPERATION('Session failed')
    try {
      if (!(msg instanceof Uint8Array)) throw INVALID_MESSAGE('A message is bytes')
      this.#bytesReceived += msg.byteLength
      let out: Writer | Uint8Array | null | undefined
      if (this.#burstIn !== null && this.#burstIn.due > 0) {
        out = this.#onBurst(msg)
      } else {
        this.#received++
        out = this.#step(msg)
      }
      if (out === undefined) return undefined
      if (out === null) {
        this.#phase = 'done'
        this.#knowAll()
        return null
      }
      return this.#send(out)
    } catch (err) {
      this.#phase = 'failed'
      if (isCoded(err)) throw err
      throw INVALID_MESSAGE('Cannot decode: ' + (err instanceof Error ? err.message : String(err)))
    }
  }

  // ---------------------------------------------------------------------
  // What the tree walk, the bulk reader, the one-sided path and the cells
  // read of the session (getters: counts, fingerprints and cells change
  // after the one-sided path)

  readonly #ctx: WalkContext & FlowContext = ((session: Session): WalkContext & FlowContext => ({
    get tree () { return session.#tree! },
    index: () => {
      if (session.#index === null) session.#index = new KeyedIndex(session.#tree!, session.#hasher!)
      return session.#index
    },
    hashOne: (src, at, out) => session.#hasher!.one(src, at, out, 0),
    has: (src, at) => session.#tree!.has(src, at),
    learn: (src, at) => session.#learn(src, at),
    keep: () => session.#keep(),
    get recvLimit () { return session.#recvLimit },
    get peerLimit () { return session.#peerLimit },
    get maxOpen () { return session.#maxOpen },
    get estimate () { return session.#estimate },
    get oneSided () { return session.#oneSided },
    get symbols () { return session.#symbols! },
    get hasher () { return session.#hasher! },
    get myCount () { return session.#myCount },
    get theirCount () { return session.#theirCount },
    get myFp () { return session.#myFp },
    get theirFp () { return session.#theirFp },
    get theirEst1 () { return session.#theirEst1! },
    get learned () { return session.#learned },
    get limit () { return session.#limit },
    get maxLearned () { return session.#maxLearned }
  }))(this)

  #learn (src: Uint8Array, at: number): void {
    this.#keep()
    this.#learned.push(src, at)
  }

  #knowAll (): void {
    if (this.#knowsAllAfter !== null) return
    this.#knowsAllAfter = this.#received
    this.#knowsBytes = this.#bytesSent + this.#bytesReceived
  }

  #keep (): void {
    if (this.#stateIds >= this.#maxLearned) throw INVALID_MESSAGE('Too many ids for one session')
    this.#stateIds++
  }

  // ---------------------------------------------------------------------
  // The flow

  #send (w: Writer | Uint8Array): Uint8Array {
    const out = w instanceof Uint8Array ? w : w.finish()
    this.#messages++
    this.#bytesSent += out.byteLength
    return out
  }

  /** Handles one message; returns our next one (an empty array: nothing to say), null when done, undefined for no answer yet. */
  #step (msg: Uint8Array): Writer | Uint8Array | null | undefined {
    const idle = msg.byteLength === 0
    const r = new Reader(msg)
    const type = idle ? -1 : r.u8()
    if (type === MSG_BURST_DONE && this.#burstOut !== null && this.#received === 2) return this.#onBurstDone(r)
    switch (this.#phase) {
      case 'hello':
        if (!isHello(type)) throw INVALID_MESSAGE('Expected a hello (of this protocol version)')
        if (msg.byteLength > HELLO_MAX_BYTES) throw INVALID_MESSAGE('Message too large')
        this.#onHello(readHello(r, type, this.#secret !== null))
        r.end()
        if (this.#burstIn !== null) return undefined
        if (this.#secret !== null) return this.#settle()
        this.#myFp = fingerprintOf(this.#tree!, this.#hasher!)
        this.#phase = 'fp'
        return this.#message(MSG_FP, w => w.fp(this.#myFp[0], this.#myFp[1]))
      case 'fp':
        if (type !== MSG_FP) throw INVALID_MESSAGE('Expected fingerprints')
        r.fp(this.#theirFp)
        r.end()
        return this.#settle()
      case 'est2': {
        if (type !== MSG_EST2) throw INVALID_MESSAGE('Expected estimates')
        const theirs = readEst2(r)
        r.end()
        const d = estimate(this.#symbols!.est2, theirs, 256, this.#theirCount - this.#myCount)
        return d === null ? this.#startWalk('tree') : this.#startSymbols(d, EST2_ERROR)
      }
      case 'symbols':
        return this.#onStep(this.#cells!.receive(type, r))
      case 'subset':
        return this.#onStep(this.#flow!.receive(type, r))
      case 'walk': {
        if (type !== MSG_ROUND) throw INVALID_MESSAGE('Expected a round of the tree walk')
        if (msg.byteLength > this.#walk!.maxMessageBytes) throw INVALID_MESSAGE('Message too large')
        this.#walk!.receive(r)
        r.end()
        return this.#walkMessage()
      }
    }
    throw INVALID_OPERATION('Unexpected state')
  }

  /** A packet of their burst: answer it once it decodes, or at its end with what the hellos decide. */
  #onBurst (msg: Uint8Array): Writer | Uint8Array | null | undefined {
    const r = new Reader(msg)
    if (msg.byteLength === 0 || r.u8() !== MSG_BURST) throw INVALID_MESSAGE('Expected a burst packet')
    const burst = this.#burstIn!
    // Answered already: the rest of the burst was sent before the sender knew, and is not read.
    if (this.#answered) {
      burst.skip()
      return undefined
    }
    burst.read(r)
    if (!this.#burstIdle) {
      const flow = new SymbolsFlow(this.#ctx, false, this.#burstPrior(false))
      const step = flow.decodeBurst(MSG_BURST_DONE)
      if (step !== null) {
        this.#answered = true
        this.#mode = 'symbols'
        this.#phase = 'symbols'
        this.#cells = flow
        return this.#onStep(step)
      }
    }
    if (burst.due > 0) return undefined
    this.#answered = true
    return this.#settle()
  }

  /**
   * Our burst decoded at the remote, which answered before our second
   * message reached it and does not read it: whatever the hellos began here
   * is dropped, and what it sends is what we lack.
   */
  #onBurstDone (r: Reader): Writer | Uint8Array | null {
    this.#walk = null
    this.#flow = null
    this.#learned.n = 0
    this.#stateIds = 0
    this.#mode = 'symbols'
    this.#phase = 'symbols'
    this.#cells = new SymbolsFlow(this.#ctx, true, this.#burstPrior(true))
    return this.#onStep(this.#cells.receive(MSG_DONE, r))
  }

  /** The burst's cells as the first batch of the cells, for the encoder (its sender) or the decoder. */
  #burstPrior (encoder: boolean): Prior {
    if (encoder) return { batch: usable(this.#burstOut!, this.#limit), short: EMPTY_BYTES, long: EMPTY_BYTES }
    return this.#burstIn!.prior(this.#limit)
  }

  #message (type: number, fn: (w: Writer) => void, size = 64): Writer {
    const w = new Writer(size)
    w.u8(type)
    fn(w)
    return w
  }

  #onHello (h: Hello): void {
    this.#theirCount = h.count
    this.#peerLimit = h.limit
    if (h.fp !== null) this.#theirFp = h.fp
    this.#theirEst1 = h.est1 as number[] | null
    this.#theirSince = h.since
    if (h.nonce !== null) this.#hasher = new KeyedHash(deriveSessionKey(this.#nonce!, h.nonce, null))
    if (h.burst > 0) {
      if (this.#burstOut !== null) throw INVALID_MESSAGE('Both sides sent a burst')
      this.#burstIn = new BurstCells(h.burst, h.count)
      // The hellos settle it with nothing more to send (the since path, or equal sets): the burst is not decoded.
      this.#burstIdle = this.#sinceSettles() || this.#equalSets()
      this.#fixBase()
    }
  }

  /** The two sets as they are, before any path learns of them. */
  #fixBase (): void {
    this.#base = { mine: this.#myCount, theirs: this.#theirCount, myFp: [this.#myFp[0], this.#myFp[1]], theirFp: [this.#theirFp[0], this.#theirFp[1]] }
  }

  #equalSets (): boolean {
    return this.#myCount === this.#theirCount && this.#myFp[0] === this.#theirFp[0] && this.#myFp[1] === this.#theirFp[1]
  }

  /** Whether the since lists settle it (hashed once: a burst's receiver asks at the hello and again when it settles). */
  #sinceSettles (): boolean {
    this.#sinceOk ??= this.#mySince !== null && this.#theirSince !== null &&
      sinceMatches(this.#hasher!, this.#myCount, this.#myFp, this.#mySince, this.#theirCount, this.#theirFp, this.#theirSince)
    return this.#sinceOk
  }

  /** Both counts and fingerprints are known: decide how to go on. */
  #settle (): Writer | Uint8Array | null {
    const mc = this.#myCount
    const tc = this.#theirCount
    this.#fixBase()
    if (this.#sinceSettles()) {
      this.#mode = 'since'
      const s = this.#theirSince!
      for (let at = 0; at < s.byteLength; at += ID_BYTES) if (!this.#tree!.has(s, at)) this.#learn(s, at)
      return null
    }
    if (this.#equalSets()) return null
    if (startsInBulk(mc, tc)) return this.#startWalk('bulk')
    const d = estimate(this.#symbols!.est1, this.#theirEst1!, 16, tc - mc)
    // Counts far apart and an estimate no larger than their difference (or too large to tell): most likely one set holds the other.
    const dn = Math.abs(tc - mc)
    const plan = d === null || dn * 5 >= d * 4 ? planSubset(dn, Math.max(mc, tc)) : null
    if (plan !== null) return this.#startSubset(plan)
    if (d !== null) return this.#startSymbols(d, EST1_ERROR)
    return this.#askEst2()
  }

  #askEst2 (): Writer {
    this.#phase = 'est2'
    return this.#message(MSG_EST2, w => writeEst2(w, this.#symbols!.est2), 136)
  }

  /** Whether we encode (the side with more ids; on a tie, the larger fingerprint). */
  get #encoder (): boolean {
    const mc = this.#myCount
    const tc = this.#theirCount
    if (mc !== tc) return mc > tc
    const [a, b] = [this.#myFp, this.#theirFp]
    return a[1] !== b[1] ? a[1] > b[1] : a[0] > b[0]
  }

  get #limit (): number {
    return Math.min(cellsFor(this.#base.mine), cellsFor(this.#base.theirs))
  }

  /**
   * Coded cells for a difference of about `d`. After the one-sided path,
   * either from scratch (what it learned is dropped: the cells find it
   * again) or, with `residual`, for what is left of it.
   */
  #startSymbols (d: number, error: number, residual: Residual | null = null): Writer | Uint8Array | null {
    // A burst is the first batch of cells from scratch, its sender the encoder.
    const burst = residual === null && (this.#burstOut !== null || this.#burstIn !== null)
    const encoder = burst ? this.#burstOut !== null : this.#encoder
    if (residual === null) {
      this.#learned.n = 0
      this.#stateIds = 0
    } else if (residual.symbols !== null) {
      this.#symbols = residual.symbols
      this.#myCount += residual.extra
      this.#myFp = residual.fp
    } else {
      this.#theirCount += residual.extra
      this.#theirFp = residual.fp
    }
    const dn = encoder ? this.#myCount - this.#theirCount : this.#theirCount - this.#myCount
    this.#estimate = d
    this.#oneSided = Math.abs(dn) * 5 >= d * 4
    const batch = firstBatch(d, dn, error)
    if (batch.S > this.#limit) return this.#startWalk('tree')
    // Cells for what the one-sided path left: it moved most of the difference, and keeps the name.
    this.#mode = residual === null ? 'symbols' : 'subset'
    this.#phase = 'symbols'
    this.#cells = new SymbolsFlow(this.#ctx, encoder, burst ? this.#burstPrior(encoder) : null)
    return this.#onStep(this.#cells.start(batch))
  }

  // ---------------------------------------------------------------------
  // The one-sided path (subset-flow.ts)

  #startSubset (plan: SubsetPlan): Writer {
    this.#mode = 'subset'
    this.#phase = 'subset'
    this.#flow = new SubsetFlow(this.#ctx, plan, this.#encoder)
    return this.#flow.start()
  }

  /** What the one-sided path or the cells say to do next. */
  #onStep (step: SubsetStep | SymbolsStep): Writer | Uint8Array | null {
    if (step.kind === 'send') {
      if (step.knows === true) this.#knowAll()
      return step.msg
    }
    this.#flow = null
    this.#cells = null
    switch (step.kind) {
      case 'done': return null
      case 'est2': return this.#askEst2()
      case 'symbols': return this.#startSymbols(step.d, step.error, step.residual)
      case 'walk': return this.#startWalk('tree')
    }
  }

  #startWalk (mode: ReconcileMode): Writer | null {
    this.#mode = mode
    if (this.#hasher === null) throw INVALID_OPERATION('No session key')
    // Whatever the symbols path learned is dropped: the walk finds all of it again.
    this.#learned.n = 0
    this.#stateIds = 0
    const { mine, theirs, myFp, theirFp } = this.#base
    this.#walk = new TreeWalk(this.#ctx, mine, theirs, myFp[0], myFp[1], theirFp[0], theirFp[1])
    this.#phase = 'walk'
    return this.#walkMessage()
  }

  #walkMessage (): Writer | null {
    if (this.#walk!.done) return null
    const w = new Writer(256)
    w.u8(MSG_ROUND)
    this.#walk!.compose(w)
    return w
  }
}
