/**
 * A map from non-negative integer keys to values, for keys that come and go
 * in a sliding window: request ids, handed out in order and answered soon,
 * and the blocks of a download being asked for, verified or read for a peer.
 *
 * Why not a Map: a Map that keys keep passing through (each added once,
 * deleted a little later) reallocates its hash table every few hundred
 * changes, and during a download those tables live long enough to be
 * promoted to the old generation. Measured (a process filling a
 * 50,000-block core and downloading it three times, three runs each): young
 * collections promoted 54-59 MB with the request and serving bookkeeping in
 * Maps and Sets, 13-22 MB with it in key rings.
 *
 * Here key k lives in slot k mod the slot count; a key whose slot is taken
 * by another live key goes to a Map on the side (a request left hanging, or
 * keys that do not slide, such as random reads). The ring starts small and
 * doubles, up to a bound, while the side Map holds more than a quarter of
 * it, so an idle core costs a few hundred bytes.
 */

const MIN_SLOTS = 16
const MAX_SLOTS = 4096

export class KeyRing<V> {
  /** key + 1 of the entry in each slot; 0 = empty. */
  #keys = new Float64Array(MIN_SLOTS)
  #values: Array<V | undefined> = new Array<V | undefined>(MIN_SLOTS).fill(undefined)
  #mask = MIN_SLOTS - 1
  /** Entries whose slot was taken when they came. */
  readonly #spill = new Map<number, V>()
  #size = 0

  get size (): number {
    return this.#size
  }

  get (key: number): V | undefined {
    const s = key & this.#mask
    if (this.#keys[s] === key + 1) return this.#values[s]
    return this.#spill.size === 0 ? undefined : this.#spill.get(key)
  }

  has (key: number): boolean {
    return this.#keys[key & this.#mask] === key + 1 || (this.#spill.size > 0 && this.#spill.has(key))
  }

  set (key: number, value: V): void {
    const s = key & this.#mask
    const held = this.#keys[s]!
    if (held === key + 1) {
      this.#values[s] = value
    } else if (this.#spill.size > 0 && this.#spill.has(key)) {
      this.#spill.set(key, value)
    } else if (held === 0) {
      this.#keys[s] = key + 1
      this.#values[s] = value
      this.#size++
    } else {
      this.#spill.set(key, value)
      this.#size++
      if (this.#spill.size > this.#keys.length / 4 && this.#keys.length < MAX_SLOTS) this.#grow()
    }
  }

  /** Whether `key` was there. */
  delete (key: number): boolean {
    const s = key & this.#mask
    if (this.#keys[s] === key + 1) {
      this.#keys[s] = 0
      this.#values[s] = undefined
      this.#size--
      return true
    }
    if (this.#spill.size === 0 || !this.#spill.delete(key)) return false
    this.#size--
    return true
  }

  /** Every value, in no particular order. */
  * values (): IterableIterator<V> {
    const keys = this.#keys
    for (let s = 0; s < keys.length; s++) if (keys[s] !== 0) yield this.#values[s]!
    yield * this.#spill.values()
  }

  /** Every key with its value, in no particular order. */
  * entries (): IterableIterator<[number, V]> {
    const keys = this.#keys
    for (let s = 0; s < keys.length; s++) if (keys[s] !== 0) yield [keys[s]! - 1, this.#values[s]!]
    yield * this.#spill.entries()
  }

  clear (): void {
    this.#keys.fill(0)
    this.#values.fill(undefined)
    this.#spill.clear()
    this.#size = 0
  }

  #grow (): void {
    const entries: Array<[number, V]> = []
    for (let s = 0; s < this.#keys.length; s++) if (this.#keys[s] !== 0) entries.push([this.#keys[s]! - 1, this.#values[s]!])
    for (const e of this.#spill) entries.push(e)
    const slots = this.#keys.length * 2
    this.#keys = new Float64Array(slots)
    this.#values = new Array<V | undefined>(slots).fill(undefined)
    this.#mask = slots - 1
    this.#spill.clear()
    for (const [key, value] of entries) {
      const s = key & this.#mask
      if (this.#keys[s] === 0) {
        this.#keys[s] = key + 1
        this.#values[s] = value
      } else {
        this.#spill.set(key, value)
      }
    }
  }
}
