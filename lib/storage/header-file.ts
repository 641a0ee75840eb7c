/**
 * The header file of a core: two crash-safe slots (format in header-slot.ts),
 * which one to write next, and header writes serialised and coalesced.
 *
 * writeHeader() always writes the slot that does NOT hold the newest valid
 * header, so a torn write can only damage that slot; readHeader() takes the
 * valid slot with the highest sequence number.
 *
 * Apart from CoreStorage because this state (the slots' sequence numbers, the
 * write in flight and the one queued behind it) is the header's alone; the
 * tree, data and bitfield files never touch it.
 */
import type { RandomAccessStorage } from 'random-access-storage'
import { SESSION_CLOSED, STORAGE_CORRUPT } from '../errors'
import { HEADER_SLOT_SIZE, decodeHeaderSlot, encodeUnsealedSlot, looksLikeTornFirstWrite, sealSlot, type DecodedSlot, type Header } from './header-slot'
import { pSize, pWriteSoon, readUpTo, type Ready } from './file-io'

export class HeaderFile {
  readonly #file: RandomAccessStorage
  readonly #ready: Ready
  readonly #closed: () => boolean

  /** Sequence numbers of the valid header in slot 0 / 1, -1 when invalid; null until read. */
  #slotSeq: [number, number] | null = null
  #writing: Promise<void> | null = null
  #pendingSlot: Uint8Array | null = null
  #pendingWrite: Deferred | null = null

  constructor (file: RandomAccessStorage, ready: Ready, closed: () => boolean) {
    this.#file = file
    this.#ready = ready
    this.#closed = closed
  }

  /** True while a header write is queued or in flight. */
  get writing (): boolean {
    return this.#writing !== null
  }

  /**
   * The newest valid header, null if none was ever written (empty file, or a
   * first write that never completed). Throws STORAGE_CORRUPT if the file has
   * been written to but neither slot is valid.
   */
  async readHeader (): Promise<Header | null> {
    return newestOf(await this.#readSettled())
  }

  /**
   * Every valid header, newest first (at most two: the slots). The older one
   * is what a crash during the newer one's write falls back to.
   */
  async readHeaders (): Promise<Header[]> {
    const read = await this.#readSettled()
    if (newestOf(read) === null) return []
    const slots = [read.slot0, read.slot1].filter((s): s is DecodedSlot => s !== null).sort((a, b) => b.seq - a.seq)
    return slots.map(s => s.header)
  }

  /** Both slots as stored once the files are open and no header write is in flight. */
  async #readSettled (): Promise<ReadSlots> {
    const ready = this.#ready()
    if (ready !== null) await ready
    while (this.#writing !== null) await this.#writing
    return this.#readSlots()
  }

  /**
   * Treats the newest slot as invalid from now on, so the next write lands on
   * it and the older slot (the header we fell back to) stays intact.
   */
  async discardNewestHeader (): Promise<void> {
    await this.flushHeader()
    if (this.#slotSeq === null) await this.#readSlots()
    const seqs = this.#slotSeq as [number, number]
    const newest = seqs[0] >= seqs[1] ? 0 : 1
    seqs[newest] = -1
  }

  /**
   * Writes `h` to the slot not holding the newest valid header. Writes are
   * serialised; a write requested while another is in flight is coalesced with
   * later ones (only the latest is written, all their promises resolve then).
   * `h` is validated and encoded before this returns, so it may be reused.
   */
  writeHeader (h: Header): Promise<void> {
    if (this.#closed()) return Promise.reject(SESSION_CLOSED('Storage is closed'))
    let slot: Uint8Array
    try {
      slot = encodeUnsealedSlot(h) // sealed with its sequence number when written
    } catch (err) {
      return Promise.reject(err)
    }
    this.#pendingSlot = slot
    if (this.#pendingWrite === null) this.#pendingWrite = deferred()
    const p = this.#pendingWrite.promise
    if (this.#writing === null) this.#writing = this.#drain()
    return p
  }

  /** Resolves once no header write is queued or in flight. */
  async flushHeader (): Promise<void> {
    while (this.#writing !== null) await this.#writing
  }

  async #drain (): Promise<void> {
    try {
      while (this.#pendingSlot !== null) {
        const slot = this.#pendingSlot
        const d = this.#pendingWrite as Deferred
        this.#pendingSlot = null
        this.#pendingWrite = null
        try {
          await this.#writeSlot(slot)
          d.resolve()
        } catch (err) {
          d.reject(err)
        }
      }
    } finally {
      this.#writing = null
    }
  }

  async #writeSlot (slot: Uint8Array): Promise<void> {
    const ready = this.#ready()
    if (ready !== null) await ready
    if (this.#slotSeq === null) await this.#readSlots()
    const seqs = this.#slotSeq as [number, number]
    const target = seqs[0] <= seqs[1] ? 0 : 1
    const seq = Math.max(seqs[0], seqs[1], 0) + 1
    sealSlot(slot, seq)
    seqs[target] = -1 // unknown until the write lands
    await pWriteSoon(this.#file, target * HEADER_SLOT_SIZE, slot)
    seqs[target] = seq
  }

  /**
   * Reads and decodes both slots. Their sequence numbers are remembered only
   * the first time: after that the in-memory state (we hold the lock) is
   * authoritative, and a read racing a write must not roll it back.
   */
  async #readSlots (): Promise<ReadSlots> {
    const fileSize = await pSize(this.#file)
    const bytes = await readUpTo(this.#file, 0, Math.min(fileSize, 2 * HEADER_SLOT_SIZE))
    const slot0 = decodeHeaderSlot(bytes.subarray(0, Math.min(bytes.byteLength, HEADER_SLOT_SIZE)))
    const slot1 = bytes.byteLength > HEADER_SLOT_SIZE ? decodeHeaderSlot(bytes.subarray(HEADER_SLOT_SIZE)) : null
    if (this.#slotSeq === null) this.#slotSeq = [slot0 === null ? -1 : slot0.seq, slot1 === null ? -1 : slot1.seq]
    return { bytes, slot0, slot1 }
  }

}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

/** The header file's bytes and what each slot decodes to. */
interface ReadSlots {
  bytes: Uint8Array
  slot0: DecodedSlot | null
  slot1: DecodedSlot | null
}

/**
 * The newest valid header, null if none was ever written (empty file, or a
 * first write that never completed). Throws STORAGE_CORRUPT if the file has
 * been written to but neither slot is valid.
 */
function newestOf ({ bytes, slot0, slot1 }: ReadSlots): Header | null {
  if (bytes.byteLength === 0) return null
  if (slot0 !== null && (slot1 === null || slot0.seq >= slot1.seq)) return slot0.header
  if (slot1 !== null) return slot1.header
  // Slot 1 is only written after slot 0 held a valid header, so with nothing
  // past slot 0 the only write ever attempted was the first one.
  if (bytes.byteLength <= HEADER_SLOT_SIZE && looksLikeTornFirstWrite(bytes)) return null
  throw STORAGE_CORRUPT('Neither header slot holds a valid header')
}

function deferred (): Deferred {
  let resolve: () => void = noop
  let reject: (err: unknown) => void = noop
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

function noop (): void {}
