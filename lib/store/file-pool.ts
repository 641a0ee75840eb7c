/**
 * A bound on the files a store holds open, opens in flight included.
 *
 * random-access-file's own pool counts a file once its open has finished,
 * so a store that learns thousands of cores at once starts thousands of
 * opens and runs out of descriptors (EMFILE) before the pool notices. Here
 * a file takes its slot before it calls open(2) and gives it back after
 * close(2) returns; when every slot is taken, the least recently used open
 * file is suspended (closed, and reopened transparently on its next read or
 * write) and the opener waits for its slot.
 */
import { SyncFile } from '../sync-file'

/** What random-access-storage gives a storage implementation (it ships no types). */
interface Request {
  callback (err: Error | null, value?: unknown): void
}

interface StorageInternals {
  _open (req: Request): void
  _close (req: Request): void
  _read (req: Request): void
  _write (req: Request): void
  _del (req: Request): void
  _truncate (req: Request): void
  _stat (req: Request): void
  suspend (cb?: (err: Error | null) => void): void
  readNow (offset: number, size: number): Uint8Array | null
  /** Operations running, and queued behind a blocking one: a file with neither is idle. */
  readonly _pending: number
  readonly _queued: unknown[]
  readonly closed: boolean
}

type FileBase = new (filename: string, opts?: { directory?: string }) => StorageInternals
const Base = SyncFile as unknown as FileBase

/** Default bound: well under the 1024 descriptors many systems allow a process by default. */
export const DEFAULT_MAX_OPEN_FILES = 512

export class FilePool {
  readonly max: number
  /** Slots taken: files open, opening or closing. */
  #taken = 0
  /** Open files, least recently used first. */
  readonly #open = new Map<PooledFile, true>()
  readonly #suspending = new Set<PooledFile>()
  readonly #waiting: Array<() => void> = []
  /** Most slots ever taken at once (for tests and the bench). */
  peak = 0

  constructor (max = DEFAULT_MAX_OPEN_FILES) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('A file pool holds at least one file')
    this.max = max
  }

  /** Files open or opening now. */
  get size (): number {
    return this.#taken
  }

  /** A file under `filename` whose descriptor counts against this pool. */
  file (filename: string): PooledFile {
    return new PooledFile(filename, this)
  }

  /** @internal Resolves once `file` may call open(2). */
  acquire (): Promise<void> {
    if (this.#taken < this.max) {
      this.#take()
      return Promise.resolve()
    }
    return new Promise(resolve => {
      this.#waiting.push(resolve)
      this.#makeRoom()
    })
  }

  /** @internal `file`'s open finished. */
  opened (file: PooledFile): void {
    this.#open.set(file, true)
    this.#makeRoom()
  }

  /** @internal `file` was used: it goes to the back of the eviction order. */
  touch (file: PooledFile): void {
    if (!this.#open.has(file)) return
    this.#open.delete(file)
    this.#open.set(file, true)
  }

  /** @internal `file` gave its descriptor back (closed, suspended, or its open failed). */
  release (file: PooledFile): void {
    this.#open.delete(file)
    this.#suspending.delete(file)
    this.#taken--
    const next = this.#waiting.shift()
    if (next !== undefined) {
      this.#take()
      next()
    }
  }

  #take (): void {
    this.#taken++
    if (this.#taken > this.peak) this.peak = this.#taken
  }

  /** Suspends as many open files as there are openers waiting, idle ones first. */
  #makeRoom (): void {
    let needed = this.#waiting.length - this.#suspending.size
    if (needed <= 0) return
    for (const pass of [true, false]) {
      for (const file of this.#open.keys()) {
        if (needed <= 0) return
        if (pass && !file.idle) continue
        this.#open.delete(file)
        this.#suspending.add(file)
        file.suspend()
        needed--
      }
    }
  }
}

/**
 * A file that takes a slot of its pool before it opens. A SyncFile, as a
 * directory core's files are (lib/sync-file.ts): a store's cores read and
 * write with the same synchronous calls.
 */
export class PooledFile extends Base {
  readonly #pool: FilePool

  constructor (filename: string, pool: FilePool) {
    super(filename)
    this.#pool = pool
  }

  get idle (): boolean {
    return this._pending === 0 && this._queued.length === 0
  }

  override _open (req: Request): void {
    const pool = this.#pool
    void pool.acquire().then(() => {
      const done = req.callback
      req.callback = (err, value) => {
        req.callback = done
        if (err) pool.release(this)
        done.call(req, err, value)
        // Only now is the file marked open (and no longer suspended): it may be suspended again.
        if (!err) pool.opened(this)
      }
      super._open(req)
    })
  }

  override _close (req: Request): void {
    const done = req.callback
    req.callback = (err, value) => {
      req.callback = done
      // A failed close(2) still gives the descriptor up.
      this.#pool.release(this)
      done.call(req, err, value)
    }
    super._close(req)
  }

  override readNow (offset: number, size: number): Uint8Array | null {
    const data = super.readNow(offset, size)
    if (data !== null) this.#pool.touch(this)
    return data
  }

  override _read (req: Request): void {
    this.#pool.touch(this)
    super._read(req)
  }

  override _write (req: Request): void {
    this.#pool.touch(this)
    super._write(req)
  }

  override _del (req: Request): void {
    this.#pool.touch(this)
    super._del(req)
  }

  override _truncate (req: Request): void {
    this.#pool.touch(this)
    super._truncate(req)
  }

  override _stat (req: Request): void {
    this.#pool.touch(this)
    super._stat(req)
  }
}
