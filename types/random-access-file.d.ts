// random-access-file ships no types; only what nomadcore uses.
declare module 'random-access-file' {
  import type { RandomAccessStorage } from 'random-access-storage'

  interface RandomAccessFileOptions {
    /** Join `filename` under this directory. */
    directory?: string
    /** Take an exclusive (OFD / flock) lock on open; fails with code ELOCKED. */
    lock?: boolean
    /** Mark the file sparse (Windows). */
    sparse?: boolean
    /** Truncate the file on open. */
    truncate?: boolean
    /** Truncate/extend the file to this size on open. */
    size?: number
    readable?: boolean
    writable?: boolean
    /** Remove empty parent directories (up to `directory`) on unlink. */
    rmdir?: boolean
    /** Share a bounded number of open file descriptors with other files. */
    pool?: RandomAccessFilePool
  }

  /** An opaque pool made by `RandomAccessFile.createPool(maxSize)`. */
  interface RandomAccessFilePool {
    readonly maxSize: number
  }

  interface RandomAccessFile extends RandomAccessStorage {
    readonly filename: string
    readonly fd: number
  }

  const RandomAccessFile: {
    new (filename: string, opts?: RandomAccessFileOptions): RandomAccessFile
    createPool (maxSize: number): RandomAccessFilePool
  }

  export = RandomAccessFile
}
