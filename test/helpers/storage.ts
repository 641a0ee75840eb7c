/**
 * Helpers for the storage tests: a reopenable in-memory factory that can also
 * count and tamper with I/O, a count of directory files' calls, temp
 * directories, and random headers.
 */
import fs from 'fs'
import os from 'os'
import path from 'path'
import RAM from 'random-access-memory'
import type { RandomAccessStorage } from 'random-access-storage'
import type { Header } from '../../lib/storage'
import { SyncFile } from '../../lib/sync-file'

export interface Counters {
  reads: number
  readBytes: number
  writes: number
  writeSizes: number[]
}

export interface MemoryFiles {
  /** A factory: each call reopens the named file with the latest contents. */
  factory: (name: string) => RandomAccessStorage
  /** Current contents of a file (empty if never created). */
  bytes: (name: string) => Uint8Array
  /** Writes `data` at `offset` into a file, as a crash or another program would. */
  poke: (name: string, offset: number, data: Uint8Array) => Promise<void>
  /** Replaces a whole file. */
  replace: (name: string, data: Uint8Array) => void
  /** I/O counts per file name since the last reset. */
  counters: (name: string) => Counters
  resetCounters: () => void
}

/** In-memory files that survive close/reopen, like a directory on disk. */
export function memoryFiles (): MemoryFiles {
  const files = new Map<string, InstanceType<typeof RAM>>()
  const counts = new Map<string, Counters>()

  function counters (name: string): Counters {
    let c = counts.get(name)
    if (c === undefined) {
      c = { reads: 0, readBytes: 0, writes: 0, writeSizes: [] }
      counts.set(name, c)
    }
    return c
  }

  function open (name: string): InstanceType<typeof RAM> {
    const prev = files.get(name)
    const ram = prev === undefined ? new RAM() : prev.clone()
    files.set(name, ram)
    return ram
  }

  function factory (name: string): RandomAccessStorage {
    const ram = open(name)
    const c = counters(name)
    const read = ram.read.bind(ram)
    const write = ram.write.bind(ram)
    ram.read = (offset, size, cb) => {
      c.reads++
      c.readBytes += size
      read(offset, size, cb)
    }
    ram.write = (offset, data, cb) => {
      if (data.byteLength > 0) { c.writes++; c.writeSizes.push(data.byteLength) }
      write(offset, data, cb)
    }
    return ram
  }

  return {
    factory,
    bytes (name) {
      const ram = files.get(name)
      return ram === undefined ? new Uint8Array(0) : ram.toBuffer()
    },
    poke (name, offset, data) {
      const ram = open(name)
      return new Promise((resolve, reject) => {
        ram.write(offset, data, (err) => {
          if (err) return reject(err)
          ram.close(() => resolve())
        })
      })
    },
    replace (name, data) {
      files.set(name, data.byteLength === 0 ? new RAM() : new RAM(Buffer.from(data)))
    },
    counters,
    resetCounters () {
      for (const c of counts.values()) {
        c.reads = 0
        c.readBytes = 0
        c.writes = 0
        c.writeSizes = []
      }
    }
  }
}

/** A fresh temp directory, removed when the test ends. */
export function tmpDir (t: { teardown (fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-storage-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Deterministic pseudo-random bytes. */
export function bytes (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = (seed * 2654435761 + 1) >>> 0
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/** A header with every optional field set (or not), varied by `seed`. */
export function sampleHeader (seed: number, opts: { full?: boolean, manifestSize?: number } = {}): Header {
  const full = opts.full !== false
  const h: Header = {
    key: bytes(32, seed),
    manifest: full ? bytes(opts.manifestSize ?? 70, seed + 1) : null,
    keyPair: full ? { publicKey: bytes(32, seed + 2), secretKey: bytes(64, seed + 3) } : null,
    tree: {
      fork: seed % 3,
      length: seed * 1000,
      byteLength: seed * 65536 + 17,
      signature: full ? bytes(64, seed + 4) : null
    }
  }
  if (full) h.hints = { contiguousLength: seed * 999, appendedFrom: seed * 7 }
  return h
}

/** Plain-object view of a header for alike() comparisons (Buffers vs Uint8Arrays). */
export function plain (h: Header | null): unknown {
  if (h === null) return null
  const hex = (b: Uint8Array | null): string | null => b === null ? null : Buffer.from(b).toString('hex')
  return {
    key: hex(h.key),
    manifest: hex(h.manifest),
    keyPair: h.keyPair === null ? null : { publicKey: hex(h.keyPair.publicKey), secretKey: hex(h.keyPair.secretKey) },
    tree: { ...h.tree, signature: hex(h.tree.signature) },
    hints: h.hints === undefined ? undefined : { ...h.hints }
  }
}

/** Calls made to directory files, straight to the file (`now`) or through random-access-storage's queue (`queued`). */
export interface FileCalls {
  nowReads: number
  queuedReads: number
  queuedWrites: number
  /** Stops counting (puts SyncFile's methods back). */
  stop: () => void
}

/** Counts the calls made to the SyncFiles `which` picks (every one by default) until `stop()`. */
export function countFileCalls (which: (file: SyncFile) => boolean = () => true): FileCalls {
  const proto = SyncFile.prototype as unknown as {
    readNow: (offset: number, size: number) => Uint8Array | null
    _read: (req: unknown) => void
    _write: (req: unknown) => void
  }
  const { readNow, _read: read, _write: write } = proto
  const calls: FileCalls = {
    nowReads: 0,
    queuedReads: 0,
    queuedWrites: 0,
    stop () {
      proto.readNow = readNow
      proto._read = read
      proto._write = write
    }
  }
  proto.readNow = function (this: SyncFile, offset: number, size: number) {
    if (which(this)) calls.nowReads++
    return readNow.call(this, offset, size)
  }
  proto._read = function (this: SyncFile, req: unknown) {
    if (which(this)) calls.queuedReads++
    read.call(this, req)
  }
  proto._write = function (this: SyncFile, req: unknown) {
    if (which(this)) calls.queuedWrites++
    write.call(this, req)
  }
  return calls
}
