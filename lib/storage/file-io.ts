/**
 * random-access-storage's callback calls as promises, `readUpTo` (the read
 * that tolerates a file ending first) and `readAll`, and the argument checks
 * of the storage calls.
 *
 * Apart because every file of a core (header, tree, data, bitfield) and the
 * store's own small files go through them: the layout modules speak in
 * promises and never see a callback.
 */
import b4a from 'b4a'
import type { RandomAccessStorage } from 'random-access-storage'

export const EMPTY = new Uint8Array(0)

/** Bytes (of `len` bytes, when given): what the storage calls check their arguments with. */
export function isBytes (b: unknown, len?: number): b is Uint8Array {
  return b instanceof Uint8Array && (len === undefined || b.byteLength === len)
}

/** A non-negative safe integer: an offset, a size, an index. */
export function isUint (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/**
 * Resolves once the core's files are open; null when they already are (so a
 * hot path need not await); rejects with SESSION_CLOSED once they are closing.
 */
export type Ready = () => Promise<void> | null

export function pRead (s: RandomAccessStorage, offset: number, size: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    s.read(offset, size, (err, data) => {
      if (err) reject(err)
      else resolve(data as Uint8Array)
    })
  })
}

export function pWrite (s: RandomAccessStorage, offset: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    s.write(offset, data, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

/** What a file that takes calls at once (SyncFile) adds to random-access-storage's calls. */
export interface CallsNow {
  readNow?: (offset: number, size: number) => Uint8Array | null
  writeNow?: (offset: number, parts: readonly Uint8Array[]) => boolean
}

const DONE = Promise.resolve()

/**
 * `parts` written one after another from `offset`: at once, with one system
 * call, when the file takes calls at once (SyncFile.writeNow: open and
 * nothing queued, so no earlier write can land after it), else joined and
 * through its queue. Saves the queue's request and callback and a promise's
 * turn around a system call of a few microseconds, and for a batch of
 * blocks the join (a copy of every byte).
 */
export function pWritePartsSoon (s: RandomAccessStorage, offset: number, parts: readonly Uint8Array[]): Promise<void> {
  const file = s as unknown as CallsNow
  try {
    if (file.writeNow !== undefined && file.writeNow(offset, parts)) return DONE
  } catch (err) {
    return Promise.reject(err)
  }
  const bytes = parts.length === 1 ? parts[0]! : b4a.concat(parts as Uint8Array[])
  return bytes.byteLength > 0 ? pWrite(s, offset, bytes) : DONE
}

/** `pWrite` of one buffer, at once when the file takes it (see pWritePartsSoon). */
export function pWriteSoon (s: RandomAccessStorage, offset: number, data: Uint8Array): Promise<void> {
  return pWritePartsSoon(s, offset, [data])
}

export function pDel (s: RandomAccessStorage, offset: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.del(offset, size, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

export function pTruncate (s: RandomAccessStorage, offset: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.truncate(offset, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

export function pSize (s: RandomAccessStorage): Promise<number> {
  return new Promise((resolve, reject) => {
    s.stat((err, st) => {
      if (err) reject(err)
      else resolve(st === undefined ? 0 : st.size)
    })
  })
}

export function pClose (s: RandomAccessStorage): Promise<void> {
  return new Promise((resolve, reject) => {
    s.close((err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

export function pUnlink (s: RandomAccessStorage): Promise<void> {
  return new Promise((resolve, reject) => {
    s.unlink((err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

/**
 * Reads [offset, offset + size), or less when the file ends first (both
 * random-access-file and random-access-memory error on short reads).
 */
export async function readUpTo (s: RandomAccessStorage, offset: number, size: number): Promise<Uint8Array> {
  if (size === 0) return EMPTY
  // At once when the file takes it (SyncFile.readNow); a short or failed read goes the queue's way below.
  const now = (s as unknown as CallsNow).readNow?.(offset, size)
  if (now !== undefined && now !== null) return now
  try {
    return await pRead(s, offset, size)
  } catch (err) {
    const fileSize = await pSize(s)
    // The file holds the range after all (it grew meanwhile): read again once.
    if (fileSize >= offset + size) return await pRead(s, offset, size)
    if (fileSize <= offset) return EMPTY
    return await pRead(s, offset, fileSize - offset)
  }
}

/** The whole file, empty when it does not exist yet (the store's small files). */
export async function readAll (s: RandomAccessStorage): Promise<Uint8Array> {
  const size = await pSize(s).catch(() => 0)
  return size === 0 ? EMPTY : await pRead(s, 0, size)
}
