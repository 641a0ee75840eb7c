/**
 * Streams over a session, with Hypercore 11's options and meaning: a read
 * stream of blocks (a snapshot of the length at open unless `live`), a byte
 * stream over a byte range (prefetching the blocks ahead), and a write stream
 * that appends each chunk as a block.
 */
import { Readable, Writable } from 'node:stream'
import type { GetOptions } from './hypercore'

/** The part of a session the streams use. */
export interface StreamSource {
  readonly length: number
  readonly byteLength: number
  readonly wait: boolean
  readonly timeout: number
  ready (): Promise<void>
  update (): Promise<boolean>
  get (index: number, opts?: GetOptions): Promise<unknown>
  seek (bytes: number): Promise<[number, number] | null>
  append (blocks: unknown[]): Promise<unknown>
  download (range: { start: number, end: number, linear?: boolean }): { destroy (): void }
}

export interface ReadStreamOptions {
  start?: number
  /** Exclusive; default: the length when the stream opens (or, with `snapshot: false`, at every read). */
  end?: number
  /** Keep reading blocks as they are appended (no end). */
  live?: boolean
  /** Fix the end at the length when the stream opens (default true unless `live`). */
  snapshot?: boolean
  wait?: boolean
  timeout?: number
  valueEncoding?: GetOptions['valueEncoding']
}

export function createReadStream (session: StreamSource, opts: ReadStreamOptions = {}): Readable {
  let next = opts.start ?? 0
  let end = typeof opts.end === 'number' ? opts.end : -1
  const snapshot = opts.live !== true && opts.snapshot !== false
  const live = end === -1 && opts.live === true
  const getOpts: GetOptions = {
    wait: typeof opts.wait === 'boolean' ? opts.wait : session.wait,
    timeout: opts.timeout ?? session.timeout
  }
  if (opts.valueEncoding !== undefined) getOpts.valueEncoding = opts.valueEncoding
  let opened: Promise<void> | null = null
  const open = async (): Promise<void> => {
    if (end === -1) await session.update()
    else await session.ready()
    if (snapshot && end === -1) end = session.length
  }
  const stream: Readable = new Readable({
    objectMode: true,
    read () {
      if (opened === null) opened = open()
      opened
        .then(() => {
          const last = live ? -1 : end === -1 ? session.length : end
          if (last >= 0 && next >= last) return null
          return session.get(next++, getOpts)
        })
        .then(value => stream.push(value), err => stream.destroy(err))
    }
  })
  return stream
}

export interface ByteStreamOptions {
  byteOffset?: number
  /** Default: to the end of the core. */
  byteLength?: number
  /** Blocks to download ahead of the one being read. */
  prefetch?: number
}

export function createByteStream (session: StreamSource, opts: ByteStreamOptions = {}): Readable {
  const byteOffset = opts.byteOffset ?? 0
  let remaining = typeof opts.byteLength === 'number' ? opts.byteLength : -1
  const prefetch = typeof opts.prefetch === 'number' ? opts.prefetch : 32
  let index = 0
  let seeked = byteOffset === 0
  let range: { destroy (): void } | null = null
  let opened: Promise<void> | null = null

  const open = async (): Promise<void> => {
    if (remaining !== -1) return
    await session.update()
    remaining = Math.max(session.byteLength - byteOffset, 0)
  }

  const readChunk = async (): Promise<Uint8Array | null> => {
    if (remaining === 0) return null
    let skip = 0
    if (!seeked) {
      seeked = true
      const at = await session.seek(byteOffset)
      if (at === null) return null
      index = at[0]
      skip = at[1]
    }
    range?.destroy()
    range = session.download({ start: index + 1, end: index + 1 + prefetch, linear: true })
    let data = await session.get(index++, { valueEncoding: 'binary' }) as Uint8Array | null
    if (data === null) return null
    if (skip > 0) data = data.subarray(skip)
    if (data.byteLength > remaining) data = data.subarray(0, remaining)
    remaining -= data.byteLength
    return data
  }

  const stream: Readable = new Readable({
    read () {
      if (opened === null) opened = open()
      opened
        .then(readChunk)
        .then(data => {
          if (data === null) {
            stream.push(null)
            return
          }
          stream.push(data)
          if (remaining === 0) stream.push(null)
        }, err => stream.destroy(err))
    },
    destroy (err, cb) {
      range?.destroy()
      cb(err)
    }
  })
  return stream
}

/** Appends each written chunk as one block (writes that queue up are appended as one batch). */
export function createWriteStream (session: StreamSource): Writable {
  return new Writable({
    objectMode: true,
    writev (chunks, cb) {
      session.append(chunks.map(c => c.chunk)).then(() => cb(), cb)
    }
  })
}
