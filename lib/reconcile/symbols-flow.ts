/**
 * The coded cells' messages (the cells are coded-symbols.ts, their
 * decoding peel.ts, the batch sizes plan.ts). The side with more ids
 * encodes (or the side that sent a burst, burst.ts: its cells are then the
 * first of the batch); both sides still send one message per round:
 *
 *  - the encoder sends a batch of cells (CELLS), the decoder nothing;
 *  - the decoder peels and confirms with the keyed fingerprints, then sends
 *    the ids it has that the encoder lacks (DONE, in chunks), or asks for
 *    more cells (MORE, with the new batch's sizes), or, when decoding
 *    stalls for good or does not confirm, says so (WALK) and both go on
 *    with the tree walk on the next round.
 */
import { INVALID_MESSAGE, INVALID_OPERATION } from '../errors'
import { ID_BYTES, sortIds } from './ids'
import { SHORT_CELL_BYTES, LONG_BYTES, SHORT_BYTES, type SymbolTable } from './coded-symbols'
import { sumHashes, type Sum64 } from './fingerprint'
import { decode, type DecodeResult } from './peel'
import { MAX_REQUESTS, nextBatch, readBatch, writeBatch, type Batch } from './plan'
import { IdStream, readChunk, writeListChunk } from './bulk'
import type { FlowContext } from './flow-context'
import { Reader, Writer } from './wire'

export const MSG_CELLS = 0x32
export const MSG_MORE = 0x33
export const MSG_DONE = 0x34
export const MSG_WALK = 0x35

export type SymbolsStep =
  /** `knows`: this side now knows the whole difference. */
  | { kind: 'send', msg: Writer | Uint8Array, knows?: boolean }
  | { kind: 'done' }
  | { kind: 'walk' }

type Phase = 'encoded' | 'encoder' | 'decoder' | 'returning' | 'requested' | 'falling'

const EMPTY: SymbolsStep = { kind: 'send', msg: new Uint8Array(0) }
/**
 * A burst holding at least this share of the first batch counts as the
 * whole of it: the hello's estimate is good to about ±37%, so a batch up to
 * twice the burst is most often one the burst decodes, and cells sent
 * meanwhile are wasted (at d = 50 with a burst for 50, sending them took 30
 * of 100 draws past 2.2× the floor for both sides; waiting, 3).
 */
const BURST_SLACK = 2

/** Cells the encoder sent before the flow began (a burst): the decoder's copy of them, 13 and 24 bytes a cell. */
export interface Prior { batch: Batch, short: Uint8Array, long: Uint8Array }

export class SymbolsFlow {
  readonly #ctx: FlowContext
  readonly #encoder: boolean
  #phase: Phase = 'decoder'
  /** Cells [0, S) short and [0, L) long sent so far, and before the last batch. */
  #batch: Batch = { S: 0, L: 0 }
  #prevBatch: Batch = { S: 0, L: 0 }
  /** The decoder: the cells received so far. */
  #shortCells: Uint8Array = new Uint8Array(0)
  #longCells: Uint8Array = new Uint8Array(0)
  #requests = 0
  #lastDecoded = -1
  /** The decoder: our ids the encoder lacks, sorted, and how many are sent. The encoder: how it reads them. */
  #back: Uint8Array | null = null
  #backN = 0
  #backAt = 0
  #backStream: IdStream | null = null
  /** The decoder answered a burst early: the encoder's next message was sent before it knew, and is not read. */
  #skip = false

  constructor (ctx: FlowContext, encoder: boolean, prior: Prior | null = null) {
    this.#ctx = ctx
    this.#encoder = encoder
    this.#phase = encoder ? 'encoder' : 'decoder'
    if (prior !== null) {
      this.#batch = prior.batch
      this.#shortCells = prior.short.subarray(0, prior.batch.S * SHORT_CELL_BYTES)
      this.#longCells = prior.long.subarray(0, prior.batch.L * LONG_BYTES)
    }
  }

  /**
   * The first batch: the encoder's cells, or the decoder's empty message.
   * When a burst already holds all of it, or nearly (the batch is sized
   * with a margin, and a burst that decodes makes more cells sent meanwhile
   * a waste), the encoder waits and the decoder says what its cells gave.
   */
  start (batch: Batch): SymbolsStep {
    const held = this.#batch
    const next = { S: Math.max(batch.S, held.S), L: Math.max(batch.L, held.L) }
    if (held.S > 0 && next.S <= held.S * BURST_SLACK && next.L <= held.L * BURST_SLACK) {
      if (this.#encoder) return EMPTY
      return this.#verdict()
    }
    return { kind: 'send', msg: this.#nextBatch(next) }
  }

  /**
   * The decoder, as a burst arrives: the ids the encoder lacks (the first
   * chunk, as BURST_DONE) when the cells so far decode and confirm, else
   * null and nothing changed.
   */
  decodeBurst (burstDone: number): SymbolsStep | null {
    const res = this.#decode()
    if (res.kind !== 'done' || !this.#accept(res)) return null
    this.#skip = true
    return { kind: 'send', msg: this.#doneChunk(burstDone), knows: true }
  }

  /** The remote's message (type -1: an empty one). */
  receive (type: number, r: Reader): SymbolsStep {
    switch (this.#phase) {
      case 'encoded':
        // We sent cells; the decoder had nothing to say this round.
        if (type >= 0) throw INVALID_MESSAGE('Expected an empty message')
        this.#phase = 'encoder'
        return EMPTY
      case 'encoder':
        return this.#onDecoderSays(type, r)
      case 'decoder':
        if (type !== MSG_CELLS) throw INVALID_MESSAGE('Expected cells')
        return this.#onCells(r)
      case 'returning':
      case 'requested':
      case 'falling':
        // The encoder waits for us this round.
        if (this.#skip) this.#skip = false
        else if (type >= 0) throw INVALID_MESSAGE('Expected an empty message')
        if (this.#phase === 'requested') {
          this.#phase = 'decoder'
          return EMPTY
        }
        if (this.#phase === 'falling') return { kind: 'walk' }
        if (this.#backAt >= this.#backN) return { kind: 'done' }
        return { kind: 'send', msg: this.#doneChunk() }
    }
    throw INVALID_OPERATION('Unexpected state')
  }

  /** Sends the encoder's cells of `batch` beyond those sent already; the decoder waits for them. */
  #nextBatch (batch: Batch): Writer | Uint8Array {
    const prev = this.#prevBatch = this.#batch
    this.#batch = batch
    if (!this.#encoder) {
      this.#phase = 'decoder'
      return new Uint8Array(0)
    }
    this.#phase = 'encoded'
    const w = new Writer(1 + (batch.S - prev.S) * SHORT_CELL_BYTES + (batch.L - prev.L) * LONG_BYTES)
    w.u8(MSG_CELLS)
    writeCells(w, this.#ctx.symbols, prev, batch)
    return w
  }

  /** The decoder: the encoder's next cells arrived. Decode, confirm, answer. */
  #onCells (r: Reader): SymbolsStep {
    const prev = this.#prevBatch
    const b = this.#batch
    const shortNew = r.fixed((b.S - prev.S) * SHORT_CELL_BYTES)
    const longNew = r.fixed((b.L - prev.L) * LONG_BYTES)
    r.end()
    this.#shortCells = concat(this.#shortCells, shortNew)
    this.#longCells = concat(this.#longCells, longNew)
    return this.#verdict()
  }

  #decode (): DecodeResult {
    const ctx = this.#ctx
    return decode({
      mine: ctx.symbols,
      tree: ctx.tree,
      short: this.#shortCells,
      S: this.#batch.S,
      long: this.#longCells,
      L: this.#batch.L,
      dn: ctx.theirCount - ctx.myCount
    })
  }

  /**
   * Confirms a decode with the keyed fingerprints (ours, plus theirs we
   * lack, less ours they lack) and, if it holds, takes it: what we learn,
   * and what we send back.
   */
  #accept (res: DecodeResult & { kind: 'done' }): boolean {
    const ctx = this.#ctx
    const fp: Sum64 = [ctx.myFp[0], ctx.myFp[1]]
    sumHashes(ctx.hasher, res.theirs, res.nTheirs, fp, 1)
    sumHashes(ctx.hasher, res.mine, res.nMine, fp, -1)
    if (fp[0] !== ctx.theirFp[0] || fp[1] !== ctx.theirFp[1] || res.nTheirs > ctx.maxLearned) return false
    for (let i = 0; i < res.nTheirs; i++) ctx.learn(res.theirs, i * ID_BYTES)
    const { sorted } = sortIds(res.mine, res.nMine)
    this.#back = sorted
    this.#backN = res.nMine
    this.#backAt = 0
    return true
  }

  /** The decoder, holding the cells of `#batch`: the ids back, a request for more, or the fall back to the walk. */
  #verdict (): SymbolsStep {
    const ctx = this.#ctx
    const b = this.#batch
    const res = this.#decode()
    if (res.kind === 'done') {
      if (this.#accept(res)) return { kind: 'send', msg: this.#doneChunk(), knows: true }
      return this.#fallBack()
    }
    if (res.kind === 'fail' || this.#requests >= MAX_REQUESTS) return this.#fallBack()
    if (res.kind === 'short') {
      // More cells decoded nothing more: ids that collide in the code, which no number of cells separates.
      if (res.decoded === this.#lastDecoded) return this.#fallBack()
      this.#lastDecoded = res.decoded
    }
    const d = Math.max(ctx.estimate, 1)
    const next = nextBatch(b, d, ctx.theirCount - ctx.myCount, res.kind === 'short' ? { decoded: res.decoded, left: res.left } : { u: res.u })
    if (next.S > ctx.limit) {
      if (b.S >= ctx.limit) return this.#fallBack()
      next.S = ctx.limit
      next.L = Math.min(next.L, next.S)
    }
    this.#requests++
    this.#prevBatch = b
    this.#batch = next
    this.#phase = 'requested'
    const w = new Writer(16)
    w.u8(MSG_MORE)
    writeBatch(w, next)
    return { kind: 'send', msg: w }
  }

  /** The decoder's next chunk of the ids the encoder lacks. */
  #doneChunk (type = MSG_DONE): Writer {
    this.#phase = 'returning'
    const budget = { ids: this.#ctx.peerLimit }
    const w = new Writer(16 + Math.min(this.#backN - this.#backAt, budget.ids) * ID_BYTES)
    w.u8(type)
    this.#backAt = writeListChunk(this.#back!, this.#backN, this.#backAt, w, budget)
    return w
  }

  #fallBack (): SymbolsStep {
    this.#phase = 'falling'
    return { kind: 'send', msg: new Uint8Array([MSG_WALK]) }
  }

  /** The encoder: what the decoder said about our cells. */
  #onDecoderSays (type: number, r: Reader): SymbolsStep {
    const ctx = this.#ctx
    if (type === MSG_DONE) {
      if (this.#backStream === null) this.#backStream = new IdStream(new Uint8Array(ID_BYTES), 0)
      readChunk(this.#backStream, r, { ids: ctx.recvLimit }, false, ctx)
      r.end()
      return this.#backStream.theirDone ? { kind: 'done' } : EMPTY
    }
    if (type === MSG_MORE) {
      const next = readBatch(r, this.#batch, ctx.limit)
      r.end()
      if (this.#requests++ >= MAX_REQUESTS) throw INVALID_MESSAGE('Too many requests for cells')
      return { kind: 'send', msg: this.#nextBatch(next) }
    }
    if (type === MSG_WALK) {
      r.end()
      return { kind: 'walk' }
    }
    throw INVALID_MESSAGE('Unexpected message')
  }
}

/** The cells of `next` beyond those of `prev`: short ones (13 bytes), then long ones (24). */
export function writeCells (w: Writer, t: SymbolTable, prev: Batch, next: Batch): void {
  const bytes = new Uint8Array(t.xor.buffer, t.xor.byteOffset, t.cells * ID_BYTES)
  for (let c = prev.S; c < next.S; c++) {
    w.fixed(bytes.subarray(c * ID_BYTES, c * ID_BYTES + SHORT_BYTES))
    w.u32(t.chk[c]! >>> 0)
    w.u8(t.cnt[c]! & 255)
  }
  for (let c = prev.L; c < next.L; c++) w.fixed(bytes.subarray(c * ID_BYTES + SHORT_BYTES, (c + 1) * ID_BYTES))
}

export function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.byteLength === 0) return a
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}
