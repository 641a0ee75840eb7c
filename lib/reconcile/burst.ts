/**
 * The burst: coded cells a side sends right behind its hello, before it
 * knows anything of the other side, so that a small difference decodes in
 * one flight (the other side knows what it lacks on the first message it
 * gets, and the sender on the second).
 *
 * The sender cannot size cells it sends blind, so it sends a growing prefix
 * of them in packets (1, 2, 4, 8, 16 cells, then steps of about a twelfth
 * of the whole), up to enough for the difference it was asked to cover,
 * which its hello names: both sides derive the packets' sizes from it and
 * the sender's count, so a packet is its type byte and its cells. Long
 * cells (the ids' last 24 bytes, see peel.ts) come in the proportion a
 * difference split evenly between the sides needs, and the first cell is
 * whole, so one differing id decodes from the first packet whichever side
 * holds it. The receiver tries to decode after every packet and answers as
 * soon as the keyed fingerprints confirm a decode; what the sender sent past
 * that point is the burst's price, with the bytes of every sync whose
 * difference turns out larger or that another path settles. A burst that
 * does not decode is not lost: it is the first batch of the coded cells,
 * which then start from it.
 */
import { SHORT_CELL_BYTES, LONG_BYTES, cellsFor, type SymbolTable } from './coded-symbols'
import { longCells, shortCells, type Batch } from './plan'
import { concat, writeCells, type Prior } from './symbols-flow'
import { Reader, Writer } from './wire'

export const MSG_BURST = 0x3d
/** The receiver decoded the burst: the first chunk of the ids the sender lacks (later chunks are plain DONE messages). */
export const MSG_BURST_DONE = 0x3e
/** Most packets in one burst. */
export const MAX_BURST_PACKETS = 32
/** The largest difference a burst may be sized for (a hello naming more is refused). */
export const MAX_BURST_COVER = 4096

/** The burst's packets, as the cells it holds after each (both counts growing), for a difference of `cover` and a table of `cells`. */
export function burstSchedule (cover: number, cells: number): Batch[] {
  const d = Math.min(Math.max(1, Math.floor(cover)), MAX_BURST_COVER)
  const S0 = Math.min(shortCells(Math.ceil(1.08 * d)), cells)
  const L0 = Math.min(longCells(Math.ceil(d / 2)), S0)
  const step = Math.max(8, Math.ceil(S0 / 12))
  const out: Batch[] = []
  let L = 1
  for (let S = 1; ; S = S < 16 ? S * 2 : S + step) {
    const s = Math.min(S, S0)
    L = Math.max(L, Math.min(s, Math.round(s * L0 / S0)))
    out.push({ S: s, L })
    if (s === S0 || out.length === MAX_BURST_PACKETS) break
  }
  if (out[out.length - 1]!.S !== S0) out[out.length - 1] = { S: S0, L: Math.max(L, L0) }
  return out
}

/** One packet: the cells of `next` beyond those of `prev`. */
export function writeBurst (t: SymbolTable, prev: Batch, next: Batch): Uint8Array {
  const w = new Writer(1 + (next.S - prev.S) * SHORT_CELL_BYTES + (next.L - prev.L) * LONG_BYTES)
  w.u8(MSG_BURST)
  writeCells(w, t, prev, next)
  return w.finish()
}

/** The receiver's side: the packets due, and the cells of those that came. */
export class BurstCells {
  #batch: Batch = { S: 0, L: 0 }
  #short: Uint8Array = new Uint8Array(0)
  #long: Uint8Array = new Uint8Array(0)
  readonly #schedule: Batch[]
  #next = 0

  /** A burst for `cover` differences from a sender of `count` ids. */
  constructor (cover: number, count: number) {
    this.#schedule = burstSchedule(cover, cellsFor(count))
  }

  /** Packets still to come. */
  get due (): number {
    return this.#schedule.length - this.#next
  }

  /** Reads the next packet (its type byte read already). */
  read (r: Reader): void {
    const prev = this.#batch
    const next = this.#schedule[this.#next++]!
    this.#short = concat(this.#short, r.fixed((next.S - prev.S) * SHORT_CELL_BYTES))
    this.#long = concat(this.#long, r.fixed((next.L - prev.L) * LONG_BYTES))
    r.end()
    this.#batch = next
  }

  /** The cells so far as the decoder's first batch, of a session whose sides offer `limit` cells. */
  prior (limit: number): Prior {
    return { batch: usable(this.#batch, limit), short: this.#short, long: this.#long }
  }

  /** Skips the next packet (answered already: it is not read). */
  skip (): void {
    this.#next++
  }
}

/** The cells of a burst both sides use, of a session whose sides offer `limit` cells. */
export function usable (b: Batch, limit: number): Batch {
  const S = Math.min(b.S, limit)
  return { S, L: Math.min(b.L, S) }
}
