/**
 * The ranges of blocks sessions asked to download (`core.download()`): how
 * far each is stored, where the next scheduling pass looks, and when each is
 * done. Apart from the replicator because a range's cursors are its own
 * state: the replicator only says when blocks arrive, the tree is cut, or a
 * pass should look again; asking for a block is handed in (`BlockAsker`).
 */
import { REQUEST_CANCELLED } from './errors'
import type { Core } from './core'
import { lowerBound } from './sorted'

/** Blocks looked at per range per scheduling pass, so a pass stays short. */
const MAX_SCAN = 4096

/**
 * What asking for one block came to: held (or on its way to disk), sent,
 * already asked, every holder busy, or nobody has it (yet).
 */
export type Asked = 'have' | 'sent' | 'inflight' | 'busy' | 'nobody'
/**
 * Who asks for blocks: an object with a method rather than a closure, so
 * the code V8 optimises around it outlives the core that made it (see
 * `Peer`'s handlers).
 */
export interface BlockAsker {
  askBlock (index: number): Asked
}

export interface Range {
  start: number
  /** Exclusive; Infinity follows the core as it grows. */
  end: number
  blocks: number[] | null
  /** Everything before this is stored. */
  cursor: number
  /** Everything before this is stored or asked for: where the next pass looks. */
  scanFrom: number
  resolve (): void
  reject (err: Error): void
  done: Promise<void>
}

/** A download in progress, as `core.download()` returns it. */
export class Download {
  readonly #ranges: DownloadRanges
  readonly #range: Range

  constructor (ranges: DownloadRanges, range: Range) {
    this.#ranges = ranges
    this.#range = range
  }

  /** Resolves when every block of the range is stored locally. */
  done (): Promise<void> {
    return this.#range.done
  }

  /** Stops downloading; `done()` rejects with REQUEST_CANCELLED. */
  destroy (): void {
    this.#ranges.remove(this.#range, cancelledByDestroy)
  }
}

export class DownloadRanges {
  readonly #core: Core
  readonly #ranges = new Set<Range>()
  #checkQueued = false

  constructor (core: Core) {
    this.#core = core
  }

  /** Downloads [start, end) or the listed blocks; end Infinity follows appends. */
  add (start: number, end: number, blocks: number[] | null): Download {
    let resolve!: () => void
    let reject!: (err: Error) => void
    const done = new Promise<void>((res, rej) => { resolve = res; reject = rej })
    done.catch(noop)
    const cursor = blocks === null ? start : 0
    const range: Range = { start, end, blocks: blocks === null ? null : [...blocks].sort((a, b) => a - b), cursor, scanFrom: cursor, resolve, reject, done }
    this.#ranges.add(range)
    return new Download(this, range)
  }

  /**
   * Stops downloading `range`: its `done()` rejects with the error `reason`
   * makes. Made only for a range still running: an error captures a stack,
   * tens of microseconds, and a core closing with none running (most of the
   * cores a Store opens and closes) has nobody to give it to.
   */
  remove (range: Range, reason: () => Error): void {
    if (!this.#ranges.delete(range)) return
    range.reject(reason())
  }

  /** Rejects every range with the error `reason` makes (one for all). */
  clear (reason: () => Error): void {
    if (this.#ranges.size === 0) return
    const err = reason()
    const same = (): Error => err
    for (const range of [...this.#ranges]) this.remove(range, same)
  }

  /** Moves cursors over blocks now stored; resolves the ranges that are complete. */
  check (): void {
    const core = this.#core
    for (const range of this.#ranges) {
      if (range.blocks !== null) {
        while (range.cursor < range.blocks.length && core.has(range.blocks[range.cursor]!)) range.cursor++
        if (range.cursor >= range.blocks.length) this.#complete(range)
        continue
      }
      range.cursor = core.bitfield.firstUnset(range.cursor)
      if (range.end !== Infinity && range.cursor >= range.end) this.#complete(range)
    }
  }

  /**
   * `check()` after the `download` events of blocks just stored, which follow
   * in microtasks: a range's done() must not resolve ahead of them (as in Hypercore 11).
   */
  checkSoon (): void {
    if (this.#checkQueued) return
    this.#checkQueued = true
    setImmediate(() => {
      this.#checkQueued = false
      this.check()
    })
  }

  #complete (range: Range): void {
    this.#ranges.delete(range)
    range.resolve()
  }

  /** Our blocks from `length` on are gone: ranges go back to fetch them again. */
  ontruncate (length: number): void {
    for (const range of this.#ranges) {
      if (range.blocks === null) range.cursor = Math.max(range.start, Math.min(range.cursor, length))
      else range.cursor = Math.min(range.cursor, lowerBound(range.blocks, length))
      range.scanFrom = range.cursor
    }
  }

  /** A request failed or a peer left: the next pass looks again from each range's cursor. */
  rescan (): void {
    for (const range of this.#ranges) range.scanFrom = range.cursor
  }

  /** One scheduling pass: asks for what each range lacks, up to MAX_SCAN blocks a range. */
  fill (asker: BlockAsker): void {
    for (const range of this.#ranges) this.#fill(range, asker)
  }

  #fill (range: Range, asker: BlockAsker): void {
    const core = this.#core
    let i = Math.max(range.cursor, range.scanFrom)
    let pending = false
    if (range.blocks !== null) {
      for (let scanned = 0; i < range.blocks.length && scanned < MAX_SCAN; i++, scanned++) {
        const r = asker.askBlock(range.blocks[i]!)
        if (r === 'busy') break
        if (r === 'nobody') pending = true
        if (!pending) range.scanFrom = i + 1
      }
      return
    }
    const end = Math.min(range.end, core.length)
    for (let scanned = 0; i < end && scanned < MAX_SCAN; scanned++) {
      i = core.bitfield.firstUnset(i)
      if (i >= end) break
      const r = asker.askBlock(i)
      if (r === 'busy') break
      // Blocks nobody has yet must be looked at again on the next pass.
      if (r === 'nobody') pending = true
      i++
      if (!pending) range.scanFrom = i
    }
  }

  /** Whether some range wants block `index`. */
  wants (index: number): boolean {
    for (const range of this.#ranges) {
      if (range.blocks === null ? index >= range.start && index < range.end : range.blocks[lowerBound(range.blocks, index)] === index) return true
    }
    return false
  }

  /**
   * The first block at or past `length` (our length) that some range wants
   * and that lies below `below`, taking ranges in the order they were added;
   * -1 if none. An open-ended or longer range wants `length` itself.
   */
  firstFrom (length: number, below: number): number {
    for (const range of this.#ranges) {
      if (range.blocks === null && range.end > length) return length
      if (range.blocks !== null) {
        const next = range.blocks[lowerBound(range.blocks, length)]
        if (next !== undefined && next < below) return next
      }
    }
    return -1
  }
}

function noop (): void {}

function cancelledByDestroy (): Error {
  return REQUEST_CANCELLED('Download was destroyed')
}
