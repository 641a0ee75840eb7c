/**
 * The requests in flight, oldest first, as a linked list: they are sent in
 * time order, so the oldest is always at the head. One timer for a whole
 * core looks at the head only: each request is looked at once when it
 * passes HOTSWAP_MS (a cursor walks past it) and once when it times out,
 * never on every tick, however many are in flight.
 */

/** A request unanswered this long is given up on (and asked of someone else). */
export const REQUEST_TIMEOUT_MS = 20000
/** A block request unanswered this long is also asked of another peer, if one has it. */
export const HOTSWAP_MS = 1000

/** What the list needs of a request: when it was sent, whether it is for a block, and its links. */
export interface Timed {
  sent: number
  kind: string
  /** Neighbours in the list, oldest first (owned by `Deadlines`). */
  older: this | null
  newer: this | null
}

export class Deadlines<R extends Timed> {
  #head: R | null = null
  #tail: R | null = null
  /** The oldest request not yet past HOTSWAP_MS. */
  #swapCursor: R | null = null
  #timer: ReturnType<typeof setTimeout> | null = null
  #due = Infinity

  /** `onexpired(timedOut, hotswap)`: requests past the timeout, and whether a block request passed HOTSWAP_MS. */
  readonly #onexpired: (timedOut: R[], hotswap: boolean) => void

  constructor (onexpired: (timedOut: R[], hotswap: boolean) => void) {
    this.#onexpired = onexpired
  }

  add (req: R): void {
    req.older = this.#tail
    req.newer = null
    if (this.#tail !== null) this.#tail.newer = req
    else this.#head = req
    this.#tail = req
    if (this.#swapCursor === null) this.#swapCursor = req
    this.#arm(req.sent + HOTSWAP_MS)
  }

  remove (req: R): void {
    if (this.#swapCursor === req) this.#swapCursor = req.newer
    if (req.older !== null) req.older.newer = req.newer
    else if (this.#head === req) this.#head = req.newer
    if (req.newer !== null) req.newer.older = req.older
    else if (this.#tail === req) this.#tail = req.older
    req.older = req.newer = null
    if (this.#head === null) this.#disarm()
  }

  destroy (): void {
    this.#disarm()
    this.#head = this.#tail = this.#swapCursor = null
  }

  #arm (at: number): void {
    if (this.#timer !== null && this.#due <= at) return
    this.#disarm()
    this.#due = at
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()))
    this.#timer.unref?.()
  }

  #disarm (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#due = Infinity
  }

  #fire (): void {
    this.#timer = null
    this.#due = Infinity
    const now = Date.now()
    let hotswap = false
    while (this.#swapCursor !== null && now - this.#swapCursor.sent >= HOTSWAP_MS) {
      if (this.#swapCursor.kind === 'block') hotswap = true
      this.#swapCursor = this.#swapCursor.newer
    }
    const timedOut: R[] = []
    for (let r = this.#head; r !== null && now - r.sent >= REQUEST_TIMEOUT_MS; r = r.newer) timedOut.push(r)
    this.#onexpired(timedOut, hotswap)
    const next = Math.min(
      this.#swapCursor === null ? Infinity : this.#swapCursor.sent + HOTSWAP_MS,
      this.#head === null ? Infinity : this.#head.sent + REQUEST_TIMEOUT_MS
    )
    if (next !== Infinity) this.#arm(next)
  }
}
