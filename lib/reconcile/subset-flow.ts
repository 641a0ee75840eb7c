/**
 * The one-sided path's messages (the arithmetic is in subset.ts). Both
 * sides still send one message per round:
 *
 *  1. both: their bucket counts;
 *  2. the smaller side: its power sums (the larger: nothing);
 *  3. the larger side: the ids the sums point at, in chunks, the first
 *     saying how many buckets fit no subset and how many ids they lack
 *     (those are not sent);
 *  4. the smaller side: its verdict once it has them all — ACK when its ids
 *     and the learned ones make the larger side's keyed fingerprint; else
 *     RESIDUAL: both go on with coded cells for what is left, the smaller
 *     side's cells and count and fingerprint taken as if it held what it
 *     learned (cells add up, so nothing learned is sent again). RESIDUAL
 *     names the given ids the smaller side already had, so the larger side
 *     checks the fingerprint it states against the ids it gave: an id that
 *     changed on the way cannot enter the cells as one of the smaller side's
 *     own.
 *
 * Counts that show the smaller side with more ids in more than a few
 * buckets end the path after round 1 with coded cells sized from the
 * counts themselves.
 */
import { INVALID_MESSAGE, INVALID_OPERATION } from '../errors'
import { ID_BYTES, IdBuffer } from './ids'
import { withIds, type SymbolTable } from './coded-symbols'
import { sumHashes, type Sum64 } from './fingerprint'
import { estimate, EST1_ERROR } from './plan'
import { IdStream, readChunk, writeListChunk } from './bulk'
import type { FlowContext } from './flow-context'
import { bucketCounts, findLacking, lacking, powerSums, readCounts, readSums, writeCounts, writeSums, type SubsetPlan } from './subset'
import { Reader, Writer } from './wire'

export const MSG_COUNTS = 0x37
export const MSG_SUMS = 0x38
export const MSG_ACK = 0x39
export const MSG_GIVE = 0x3b
export const MSG_RESIDUAL = 0x3c
const MSG_IDS = 0x34

/** The smaller side's state as if it held what it learned: what both sides' coded cells start from. */
export interface Residual {
  /** Ids learned. */
  extra: number
  fp: Sum64
  /** The smaller side's cells with them coded in (on the smaller side only). */
  symbols: SymbolTable | null
}

/** What the session does next. */
export type SubsetStep =
  /** `knows`: this side now knows the whole difference. */
  | { kind: 'send', msg: Writer | Uint8Array, knows?: boolean }
  | { kind: 'done' }
  | { kind: 'est2' }
  | { kind: 'symbols', d: number, error: number, residual: Residual | null }

type Phase = 'counts' | 'lacking' | 'giving' | 'taking' | 'acked' | 'restart'

const EMPTY: SubsetStep = { kind: 'send', msg: new Uint8Array(0) }

export class SubsetFlow {
  readonly #ctx: FlowContext
  readonly #plan: SubsetPlan
  readonly #larger: boolean
  #phase: Phase = 'counts'
  #myBuckets: Uint32Array | null = null
  #lack: Uint8Array | null = null
  #lackTotal = 0
  /** Buckets where the smaller side showed more ids (left out), and how many more in all. */
  #negative = 0
  #negativeExcess = 0
  /** Buckets that fit no subset, and the ids missing in them (the first chunk says). */
  #misfit = 0
  #misfitLack = 0
  /** The larger side: the ids it gives. The smaller: how it reads them. */
  #give: IdBuffer | null = null
  #giveAt = 0
  #stream: IdStream | null = null
  /** The smaller side: how many given ids it has read, and which of them it had already. */
  #read = 0
  readonly #had: number[] = []
  /** What to do on the round after a verdict other than ACK. */
  #then: SubsetStep | null = null

  constructor (ctx: FlowContext, plan: SubsetPlan, larger: boolean) {
    this.#ctx = ctx
    this.#plan = plan
    this.#larger = larger
  }

  /** Round 1: our bucket counts. */
  start (): Writer {
    this.#myBuckets = bucketCounts(this.#ctx.tree, this.#plan.bits)
    const w = new Writer(2 + (2 ** this.#plan.bits) / 2)
    w.u8(MSG_COUNTS)
    writeCounts(w, this.#myBuckets)
    return w
  }

  /** The remote's message (type -1: an empty one). */
  receive (type: number, r: Reader): SubsetStep {
    switch (this.#phase) {
      case 'counts':
        if (type !== MSG_COUNTS) throw INVALID_MESSAGE('Expected bucket counts')
        return this.#onCounts(r)
      case 'lacking':
        if (type !== MSG_SUMS) throw INVALID_MESSAGE('Expected power sums')
        return this.#onSums(r)
      case 'giving':
        return this.#onVerdict(type, r)
      case 'taking':
        return this.#onIds(type, r)
      case 'acked':
      case 'restart':
        if (type >= 0) throw INVALID_MESSAGE('Expected an empty message')
        return this.#phase === 'acked' ? { kind: 'done' } : this.#then!
    }
    throw INVALID_OPERATION('Unexpected state')
  }

  #onCounts (r: Reader): SubsetStep {
    const plan = this.#plan
    const theirs = readCounts(r, 2 ** plan.bits)
    r.end()
    const mine = this.#myBuckets!
    this.#myBuckets = null
    const { k, total, negative, excess } = this.#larger ? lacking(mine, theirs) : lacking(theirs, mine)
    const dn = this.#ctx.theirCount - this.#ctx.myCount
    // A few buckets where the smaller side has more: its own ids, left to the coded cells after (RESIDUAL).
    const fits = negative === 0 ? total === Math.abs(dn) : negative * 32 <= Math.abs(dn)
    if (!fits) {
      // Each side has many ids of its own. The count differences still estimate how many, as the hello's buckets do.
      const K = theirs.length
      const d = K >= 16 ? estimate(mine, theirs, 16, dn, 6 * K) : null
      return d === null ? { kind: 'est2' } : { kind: 'symbols', d, error: Math.sqrt(2 / (K - 1)), residual: null }
    }
    this.#lack = k
    this.#lackTotal = total
    this.#negative = negative
    this.#negativeExcess = excess
    if (this.#larger) {
      this.#phase = 'lacking'
      return EMPTY
    }
    const sums = powerSums(this.#ctx.tree, plan, k)
    this.#phase = 'taking'
    const w = new Writer(1 + sums.length * plan.bytes)
    w.u8(MSG_SUMS)
    writeSums(w, sums, plan)
    return { kind: 'send', msg: w }
  }

  /** The larger side: the smaller side's power sums arrived; give the ids they point at. */
  #onSums (r: Reader): SubsetStep {
    const sums = readSums(r, this.#lackTotal, this.#plan)
    r.end()
    const found = findLacking(this.#ctx.tree, this.#plan, this.#lack!, sums)
    this.#lack = null
    this.#give = found.ids
    this.#giveAt = 0
    this.#misfit = found.misfit
    this.#misfitLack = found.misfitLack
    this.#phase = 'giving'
    return { kind: 'send', msg: this.#chunk(true) }
  }

  /** The next chunk of ids; the first (GIVE) says how many buckets fit no subset and what they lack. */
  #chunk (first: boolean): Writer {
    const give = this.#give!
    const budget = { ids: this.#ctx.peerLimit }
    const w = new Writer(16 + Math.min(give.n - this.#giveAt, budget.ids) * ID_BYTES)
    if (first) {
      w.u8(MSG_GIVE)
      w.uint(this.#misfit)
      w.uint(this.#misfitLack)
    } else {
      w.u8(MSG_IDS)
    }
    this.#giveAt = writeListChunk(give.buf, give.n, this.#giveAt, w, budget)
    return w
  }

  /** The larger side, giving ids: the next chunk, or the smaller side's verdict on them. */
  #onVerdict (type: number, r: Reader): SubsetStep {
    const left = this.#giveAt < this.#give!.n
    if (type < 0) return left ? { kind: 'send', msg: this.#chunk(false) } : EMPTY
    if (left) throw INVALID_MESSAGE('A verdict before all ids were sent')
    if (type === MSG_ACK) {
      r.end()
      return { kind: 'done' }
    }
    if (type !== MSG_RESIDUAL) throw INVALID_MESSAGE('Unexpected message')
    const give = this.#give!
    const extra = r.uint(give.n)
    const fp: Sum64 = [0, 0]
    r.fp(fp)
    const d = r.uint()
    const had = r.uint(give.n)
    if (d < 1) throw INVALID_MESSAGE('A difference of nothing')
    if (had + extra !== give.n) throw INVALID_MESSAGE('Given ids neither had nor learned')
    // What they learned: the ids we gave but those they name as had. Their fingerprint plus those must be the one they state.
    const wasHad = new Uint8Array(give.n)
    for (let k = 0, i = -1; k < had; k++) {
      const step = r.uint(give.n)
      i += step
      if (step < 1 || i >= give.n) throw INVALID_MESSAGE('Had ids out of order')
      wasHad[i] = 1
    }
    r.end()
    const learned = new IdBuffer(Math.max(1, extra))
    for (let i = 0; i < give.n; i++) if (wasHad[i] === 0) learned.push(give.buf, i * ID_BYTES)
    const ctx = this.#ctx
    const sum: Sum64 = [ctx.theirFp[0], ctx.theirFp[1]]
    sumHashes(ctx.hasher, learned.buf, learned.n, sum, 1)
    if (sum[0] !== fp[0] || sum[1] !== fp[1]) throw INVALID_MESSAGE('A residual that is not their set plus the ids given')
    return { kind: 'symbols', d, error: EST1_ERROR, residual: { extra, fp, symbols: null } }
  }

  /** The smaller side, after its power sums: the larger side's ids, then our verdict. */
  #onIds (type: number, r: Reader): SubsetStep {
    if (type < 0) return EMPTY
    if (this.#stream === null) {
      if (type !== MSG_GIVE) throw INVALID_MESSAGE('Expected ids')
      this.#misfit = r.uint(2 ** this.#plan.bits)
      this.#misfitLack = r.uint(this.#lackTotal)
      this.#stream = new IdStream(new Uint8Array(ID_BYTES), 0)
    } else if (type !== MSG_IDS) {
      throw INVALID_MESSAGE('Expected ids')
    }
    const ctx = this.#ctx
    readChunk(this.#stream, r, { ids: ctx.recvLimit }, false, {
      has: (src, at) => {
        const have = ctx.has(src, at)
        if (have) this.#had.push(this.#read)
        this.#read++
        return have
      },
      learn: ctx.learn,
      keep: ctx.keep
    })
    r.end()
    if (!this.#stream.theirDone) return EMPTY
    // Ours plus what we learned must be all of theirs: the keyed fingerprints say whether it is.
    const learned = ctx.learned
    const fp: Sum64 = [ctx.myFp[0], ctx.myFp[1]]
    sumHashes(ctx.hasher, learned.buf, learned.n, fp, 1)
    if (fp[0] === ctx.theirFp[0] && fp[1] === ctx.theirFp[1]) {
      this.#phase = 'acked'
      return { kind: 'send', msg: message(MSG_ACK, () => {}), knows: true }
    }
    // Some ids of ours hid in buckets that looked alike, or showed as more, or theirs in buckets that fit no subset.
    this.#phase = 'restart'
    const symbols = withIds(ctx.symbols, learned.buf, learned.n)
    const d = Math.max(this.#leftAtLeast(), estimate(symbols.est1, ctx.theirEst1, 16, ctx.theirCount - ctx.myCount - learned.n) ?? 0)
    this.#then = { kind: 'symbols', d, error: EST1_ERROR, residual: { extra: learned.n, fp, symbols } }
    return {
      kind: 'send',
      msg: message(MSG_RESIDUAL, w => {
        w.uint(learned.n)
        w.fp(fp[0], fp[1])
        w.uint(d)
        // The given ids we had already, by index, each as the step from the one before (from -1).
        const had = this.#had
        w.uint(had.length)
        for (let i = 0; i < had.length; i++) w.uint(had[i]! - (i === 0 ? -1 : had[i - 1]!))
      })
    }
  }

  /**
   * What is left after the ids the larger side gave, as far as both sides
   * can tell: the ids missing in buckets that fit no subset and one of ours
   * in each; ours counted in buckets that showed more, and theirs there
   * (about as many as in any bucket); at least one more of each side (an id
   * hiding in a bucket that looked alike).
   */
  #leftAtLeast (): number {
    const perBucket = Math.ceil(this.#lackTotal / (2 ** this.#plan.bits))
    return this.#misfitLack + this.#misfit + this.#negativeExcess + this.#negative * perBucket + 2
  }
}

function message (type: number, fn: (w: Writer) => void): Writer {
  const w = new Writer(24)
  w.u8(type)
  fn(w)
  return w
}
