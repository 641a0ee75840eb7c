// random-access-memory ships no types; only what nomadcore uses.
declare module 'random-access-memory' {
  import type { RandomAccessStorage } from 'random-access-storage'

  interface RandomAccessMemoryOptions {
    length?: number
    pageSize?: number
    buffer?: Uint8Array
  }

  interface RandomAccessMemory extends RandomAccessStorage {
    readonly length: number
    toBuffer (): Uint8Array
    clone (): RandomAccessMemory
  }

  const RandomAccessMemory: {
    new (opts?: number | Uint8Array | RandomAccessMemoryOptions): RandomAccessMemory
    /** A factory handing back (a clone of) the same storage per name, so a core can be reopened. */
    reusable (): (name: string) => RandomAccessMemory
  }

  export = RandomAccessMemory
}
