/**
 * Block answers that came before the answer they lean on. A proof sized by
 * `ProofSizing` climbs only to where the answer for the block asked just
 * before it (of the same peer) will have made the way known; an answer that
 * overtakes that one (Hypercore 11 writers answer out of order now and then:
 * 1–4% of a download's answers) does not reach a node we hold yet. Asking
 * again would fetch the block twice; instead the answer waits here until the
 * one it leans on is verified, and is checked again then. If that answer
 * fails, or the tree changes meanwhile, the parked one is let go and its
 * block asked again, as before.
 *
 * Bounded: at most MAX_PARKED answers and MAX_PARKED_BYTES of their blocks
 * wait (copied out of the receive buffer, so none pins a frame); past that
 * an answer is let go at once. A peer answering every request out of order
 * has at most its window in flight (512 by default), so all of it can wait.
 *
 * Never in a circle: answers lean on a block, not on one request for it, so
 * a block asked again (refused, let go) may be sized against a later block
 * whose answer waits, through others, on this very block. Parked, it would
 * wait for itself and the download would stall with nothing in flight;
 * such an answer is let go (`park` says `'circle'`) and asked in full.
 */
import b4a from 'b4a'
import type { Peer } from './peer'
import type { DataMessage } from './messages'
import { unslabProof } from './unslab'

export const MAX_PARKED = 1024
export const MAX_PARKED_BYTES = 16 * 1024 * 1024

export interface ParkedAnswer {
  readonly peer: Peer
  readonly data: DataMessage
  /** The block it answers. */
  readonly index: number
  /** The block whose answer it leans on. */
  readonly after: number
  /** The core's epoch then: after a truncation it proves nothing. */
  readonly epoch: number
}

/** What becomes of a parked answer now. */
export type ParkedVerdict = 'wait' | 'retry' | 'short' | 'stale'

export class ParkedAnswers {
  /** Parked answers by the block they lean on. */
  readonly #byAfter = new Map<number, ParkedAnswer[]>()
  /** The blocks whose answers are parked (so an answer leaning on one waits too), each with the block it leans on. */
  readonly #blocks = new Map<number, number>()
  #bytes = 0

  get size (): number {
    return this.#blocks.size
  }

  has (index: number): boolean {
    return this.#blocks.has(index)
  }

  /**
   * Parks `data`: `'parked'`, `'full'` (no room: let go at once, as when its
   * block is parked already), or `'circle'` (`after` waits, through parked
   * answers, on `index` itself).
   */
  park (peer: Peer, data: DataMessage, index: number, after: number, epoch: number): 'parked' | 'full' | 'circle' {
    const size = data.block!.value.byteLength
    if (this.#blocks.size >= MAX_PARKED || this.#bytes + size > MAX_PARKED_BYTES || this.#blocks.has(index)) return 'full'
    if (this.#leansOn(after, index)) return 'circle'
    unslabProof(data)
    data.block!.value = b4a.from(data.block!.value)
    this.#bytes += size
    const p = { peer, data, index, after, epoch }
    const leaning = this.#byAfter.get(after)
    if (leaning === undefined) this.#byAfter.set(after, [p])
    else leaning.push(p)
    this.#blocks.set(index, after)
    return 'parked'
  }

  /** Whether block `from`'s answer waits, through parked answers, on block `to` (a walk at most MAX_PARKED long). */
  #leansOn (from: number, to: number): boolean {
    let at: number | undefined = from
    while (at !== undefined) {
      if (at === to) return true
      at = this.#blocks.get(at)
    }
    return false
  }

  /** Takes out the answers that lean on block `after` (its answer came). */
  takeLeaningOn (after: number): ParkedAnswer[] {
    const leaning = this.#byAfter.get(after)
    if (leaning === undefined) return []
    this.#byAfter.delete(after)
    for (const p of leaning) this.#forget(p)
    return leaning
  }

  /**
   * Takes out the answers that wait no longer, each with what to do:
   * `judge` says, for one parked answer, whether it still waits (judged
   * with every answer still parked: one leaning on an answer taken out now
   * waits for that one's verdict).
   */
  take (judge: (p: ParkedAnswer) => ParkedVerdict): Array<[ParkedAnswer, ParkedVerdict]> {
    const out: Array<[ParkedAnswer, ParkedVerdict]> = []
    for (const [after, leaning] of this.#byAfter) {
      let kept = 0
      for (const p of leaning) {
        const verdict = judge(p)
        if (verdict === 'wait') leaning[kept++] = p
        else out.push([p, verdict])
      }
      leaning.length = kept
      if (kept === 0) this.#byAfter.delete(after)
    }
    for (const [p] of out) this.#forget(p)
    return out
  }

  #forget (p: ParkedAnswer): void {
    this.#blocks.delete(p.index)
    this.#bytes -= p.data.block!.value.byteLength
  }
}
