// Types only: the callback API shared by random-access-file and
// random-access-memory (both built on random-access-storage, which ships no
// types). Import with `import type`; nothing here exists at runtime.
declare module 'random-access-storage' {
  import type { EventEmitter } from 'events'

  export interface RandomAccessStat {
    size: number
  }

  /** The part of random-access-storage's callback API nomadcore relies on. */
  export interface RandomAccessStorage extends EventEmitter {
    readonly opened: boolean
    readonly closed: boolean
    readonly unlinked: boolean
    read (offset: number, size: number, cb: (err: Error | null, data?: Uint8Array) => void): void
    write (offset: number, data: Uint8Array, cb?: (err: Error | null) => void): void
    del (offset: number, size: number, cb?: (err: Error | null) => void): void
    truncate (offset: number, cb?: (err: Error | null) => void): void
    stat (cb: (err: Error | null, st?: RandomAccessStat) => void): void
    open (cb?: (err: Error | null) => void): void
    close (cb?: (err: Error | null) => void): void
    unlink (cb?: (err: Error | null) => void): void
  }
}
