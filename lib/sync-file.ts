/**
 * random-access-file with its reads, writes, stats and truncations made as
 * synchronous system calls. Opening, locking, closing, deleting and the
 * request queue stay random-access-file's own.
 *
 * Why: a core's files live in the page cache while it is busy, where a
 * system call costs about 2 µs, while an asynchronous one goes through
 * libuv's thread pool and costs 12 µs (many in flight) to 130 µs (one at a
 * time, on a busy 2-core machine; measured with `fs.read` of 1,240 bytes).
 * A download or a run of reads makes thousands of them; the thread pool
 * round trip, not the disk, was what they cost. A read that misses the page
 * cache blocks the event loop for the disk's latency instead.
 */
import fs from 'fs'
import RandomAccessFile from 'random-access-file'

/** The part of random-access-storage's request a file implementation sees. */
interface FileRequest {
  offset: number
  size: number
  data: Uint8Array | null
  callback (err: Error | null, value?: unknown): void
}

interface FileBase {
  new (filename: string, opts?: { lock?: boolean }): FileBase
  fd: number
  filename: string
  opened: boolean
  closed: boolean
  suspended: boolean
  _queued: unknown[]
  _pending: number
}

const Base = RandomAccessFile as unknown as FileBase

export class SyncFile extends Base {
  /**
   * `size` bytes at `offset` read at once, bypassing the request queue, when
   * nothing is queued (an open or close under way); null when the read must
   * go through the queue, or the file ends first. For reads that would
   * otherwise wait a promise or two for a call that takes 2 µs.
   */
  readNow (offset: number, size: number): Uint8Array | null {
    if (!this.#takesCallsNow()) return null
    const data = Buffer.allocUnsafe(size)
    try {
      return readInto(this.fd, data, offset) < size ? null : data
    } catch {
      return null // the queued read reports it
    }
  }

  /**
   * `parts` written one after another from `offset` with one system call
   * (writev), bypassing the request queue, when nothing is queued; false
   * when the write must go through the queue instead. Saves the queue's
   * request and callback around a call of a few microseconds, and for a
   * batch of blocks, joining them into one buffer first (a copy of every
   * byte). Throws what the system call throws.
   */
  writeNow (offset: number, parts: readonly Uint8Array[]): boolean {
    if (!this.#takesCallsNow()) return false
    writevAll(this.fd, parts, offset)
    return true
  }

  /** Open and nothing queued or running (an open or close under way): a call may go straight to the file. */
  #takesCallsNow (): boolean {
    return this.opened && !this.closed && !this.suspended && this._queued.length === 0 && this._pending === 0
  }

  _read (req: FileRequest): void {
    const data = Buffer.allocUnsafe(req.size)
    let at: number
    try {
      at = readInto(this.fd, data, req.offset)
    } catch (err) {
      req.callback(err as Error)
      return
    }
    if (at < req.size) {
      req.callback(partialRead(this.filename, req.offset, req.size))
      return
    }
    req.callback(null, data)
  }

  _write (req: FileRequest): void {
    const data = req.data!
    let at = 0
    try {
      while (at < req.size) at += fs.writeSync(this.fd, data, at, req.size - at, req.offset + at)
    } catch (err) {
      req.callback(err as Error)
      return
    }
    req.callback(null)
  }

  _stat (req: FileRequest): void {
    let st
    try {
      st = fs.fstatSync(this.fd)
    } catch (err) {
      req.callback(err as Error)
      return
    }
    req.callback(null, st)
  }

  _truncate (req: FileRequest): void {
    try {
      fs.ftruncateSync(this.fd, req.offset)
    } catch (err) {
      req.callback(err as Error)
      return
    }
    req.callback(null)
  }
}

/**
 * Writes every byte of `parts`, in order, from byte `offset` of the file.
 * writev may write less than asked (libuv passes at most IOV_MAX buffers,
 * 1,024 on Linux, and a signal can cut a write short): the rest follows.
 */
function writevAll (fd: number, parts: readonly Uint8Array[], offset: number): void {
  let list = parts
  let left = 0
  for (const p of list) left += p.byteLength
  let at = offset
  while (left > 0) {
    const n = fs.writevSync(fd, list, at)
    if (!(n > 0)) throw new Error(`writev wrote nothing at byte ${at}`)
    at += n
    left -= n
    if (left === 0) break
    // Drop the n bytes written from the front of the list.
    let k = 0
    let skip = n
    while (skip >= list[k]!.byteLength) skip -= list[k++]!.byteLength
    list = [list[k]!.subarray(skip), ...list.slice(k + 1)]
  }
}

/** Fills `data` from byte `offset` of the file; how many bytes it got (fewer where the file ends). */
function readInto (fd: number, data: Uint8Array, offset: number): number {
  let at = 0
  while (at < data.byteLength) {
    const n = fs.readSync(fd, data, at, data.byteLength - at, offset + at)
    if (n === 0) break
    at += n
  }
  return at
}

/** random-access-file's error for a read past the end of the file. */
function partialRead (path: string, offset: number, size: number): Error {
  const err = new Error('EPARTIALREAD: Could not satisfy length') as Error & { code: string, path: string, offset: number, size: number }
  err.code = 'EPARTIALREAD'
  err.path = path
  err.offset = offset
  err.size = size
  return err
}
