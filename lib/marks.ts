/**
 * Mark and sweep: while marking, every block read or marked is remembered;
 * a sweep clears every held block that was not. Marks live in memory for the
 * session (Hypercore 11 keeps them in its database across restarts).
 */
import { Bitfield } from './bitfield'

export class Marks {
  readonly #bits = new Bitfield()

  mark (start: number, end = start + 1): void {
    this.#bits.setRange(start, end, true)
  }

  /** The unmarked ranges [start, end) below `length`, in order. */
  * unmarked (length: number): Generator<[number, number]> {
    let i = 0
    while (i < length) {
      const from = this.#bits.firstUnset(i)
      if (from >= length) return
      const next = this.#bits.firstSet(from)
      const to = next === -1 || next > length ? length : next
      yield [from, to]
      i = to
    }
  }
}
