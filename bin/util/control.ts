/**
 * The control socket of a running `nomadcore serve`: how `info`, `cat`,
 * `proof` and `append` reach a core that another process holds open.
 *
 * Why a socket, not a second read-only open of the files: the serving
 * process owns the core. Its header can be ahead of what another process
 * would read (blocks and header are written together, but not atomically as
 * seen from outside), an open runs crash recovery that may write, and its
 * audit and verify may clear blocks a second opener still believes in. Going
 * through the owner reads the one in-memory state, under its mutex, and an
 * append through it is announced to its peers at once.
 *
 * The socket is a unix socket named `serve.sock` in the core's directory (a
 * named pipe on Windows), so whoever may touch the core's files may talk to
 * it and nobody else (it is made 0600). A directory whose path is too long
 * for a socket address gets one under a private directory in the temp dir,
 * named by a hash of the core's real path, so both ends find it.
 *
 * Frames: a 4-byte big-endian length of a JSON header, a 4-byte length of a
 * binary payload, the header, the payload. Blocks and proofs travel as raw
 * bytes in the payload, cut by the `sizes` the header lists.
 */
import * as crypto from 'crypto'
import * as fs from 'fs'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import { CliError, describeError, errorCode } from './errors'

/** Bigger frames are refused (a peer that sends one is dropped). */
export const MAX_HEADER_BYTES = 1 << 20
export const MAX_PAYLOAD_BYTES = 64 << 20

/** Unix socket addresses hold at most 107 bytes on Linux, 103 on macOS. */
const MAX_SOCKET_PATH = 100

export interface Frame {
  header: Record<string, unknown>
  parts: Uint8Array[]
}

/** Where the serve process of `dir` listens. */
export function controlPath (dir: string): string {
  const abs = realOrResolved(dir)
  const hash = crypto.createHash('sha256').update(abs).digest('hex').slice(0, 24)
  if (process.platform === 'win32') return `\\\\.\\pipe\\nomadcore-${hash}`
  const inDir = path.join(abs, 'serve.sock')
  if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH) return inDir
  return path.join(privateTmp(), `${hash}.sock`)
}

function realOrResolved (dir: string): string {
  try {
    return fs.realpathSync(dir)
  } catch {
    return path.resolve(dir)
  }
}

function privateTmp (): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  return path.join(os.tmpdir(), `nomadcore-${uid}`)
}

/** The fallback directory must be ours alone: a socket there accepts appends. */
function ensurePrivate (dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const st = fs.lstatSync(dir)
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new CliError('FAILED', `${dir} is not a private directory of this user: refusing to put a control socket there`)
  }
}

export function encodeFrame (header: Record<string, unknown>, parts: Uint8Array[] = []): Uint8Array {
  const h = b4a.from(JSON.stringify(parts.length > 0 ? { ...header, sizes: parts.map(p => p.byteLength) } : header))
  let payload = 0
  for (const p of parts) payload += p.byteLength
  const out = b4a.allocUnsafe(8 + h.byteLength + payload)
  const view = new DataView(out.buffer, out.byteOffset, 8)
  view.setUint32(0, h.byteLength)
  view.setUint32(4, payload)
  out.set(h, 8)
  let at = 8 + h.byteLength
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

/** Cuts a byte stream into frames; throws on a frame that is too big or malformed. */
export class FrameDecoder {
  #chunks: Uint8Array[] = []
  #buffered = 0

  push (chunk: Uint8Array): Frame[] {
    this.#chunks.push(chunk)
    this.#buffered += chunk.byteLength
    const frames: Frame[] = []
    for (;;) {
      if (this.#buffered < 8) return frames
      const head = this.#peek(8)
      const view = new DataView(head.buffer, head.byteOffset, 8)
      const hlen = view.getUint32(0)
      const plen = view.getUint32(4)
      if (hlen > MAX_HEADER_BYTES || plen > MAX_PAYLOAD_BYTES) throw new Error('control frame too large')
      if (this.#buffered < 8 + hlen + plen) return frames
      const all = this.#take(8 + hlen + plen)
      frames.push(decodeBody(all.subarray(8, 8 + hlen), all.subarray(8 + hlen)))
    }
  }

  #peek (n: number): Uint8Array {
    if (this.#chunks[0]!.byteLength < n) this.#chunks = [b4a.concat(this.#chunks)]
    return this.#chunks[0]!.subarray(0, n)
  }

  #take (n: number): Uint8Array {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : b4a.concat(this.#chunks)
    const rest = all.subarray(n)
    this.#chunks = rest.byteLength > 0 ? [rest] : []
    this.#buffered = rest.byteLength
    return all.subarray(0, n)
  }
}

function decodeBody (h: Uint8Array, payload: Uint8Array): Frame {
  const header = JSON.parse(b4a.toString(h as Buffer)) as unknown
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('control frame header is not an object')
  const parts: Uint8Array[] = []
  const sizes = (header as { sizes?: unknown }).sizes
  if (sizes !== undefined) {
    if (!Array.isArray(sizes)) throw new Error('control frame sizes is not a list')
    let at = 0
    for (const n of sizes) {
      if (!Number.isSafeInteger(n) || n < 0 || at + n > payload.byteLength) throw new Error('control frame sizes do not fit its payload')
      parts.push(b4a.from(payload.subarray(at, at + (n as number))))
      at += n as number
    }
  }
  return { header: header as Record<string, unknown>, parts }
}

// ---------------------------------------------------------------------------
// Server

/** Answers one request; what it throws goes back as `{ error: { code, message } }`. */
export type Handler = (req: Frame) => Promise<Frame>

export interface ControlServer {
  readonly path: string
  close (): Promise<void>
}

/**
 * Listens on the control socket of `dir`. Call it only while holding the
 * core's lock: a socket file left there is then stale (its serve was
 * killed) and is replaced. Requests on one connection are answered in order.
 */
export async function listenControl (dir: string, handle: Handler): Promise<ControlServer> {
  const where = controlPath(dir)
  if (process.platform !== 'win32') {
    if (path.dirname(where) === privateTmp()) ensurePrivate(privateTmp())
    try {
      if (fs.lstatSync(where).isSocket()) fs.unlinkSync(where)
    } catch {}
  }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
    const decoder = new FrameDecoder()
    let queue = Promise.resolve()
    // Answered one at a time; a client that sends faster is paused, so memory stays bounded.
    let waiting = 0
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[]
      try {
        frames = decoder.push(chunk)
      } catch {
        socket.destroy()
        return
      }
      for (const f of frames) {
        if (++waiting > 4) socket.pause()
        queue = queue.then(async () => {
          let res: Frame
          try {
            res = await handle(f)
          } catch (err) {
            res = { header: { error: { code: errorCode(err), message: describeError(err, dir) } }, parts: [] }
          }
          if (!socket.destroyed) socket.write(encodeFrame({ ...res.header, id: f.header.id }, res.parts))
          if (--waiting <= 1 && socket.isPaused()) socket.resume()
        })
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(where, () => {
      server.off('error', reject)
      server.on('error', () => {})
      resolve()
    })
  }).catch((err: unknown) => {
    throw new CliError('FAILED', `cannot open the control socket ${where}: ${(err as Error).message}`)
  })
  if (process.platform !== 'win32') {
    try { fs.chmodSync(where, 0o600) } catch {}
  }
  return {
    path: where,
    close: () => new Promise<void>(resolve => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
      // A unix socket file outlives its server unless removed.
      if (process.platform !== 'win32') {
        try { fs.unlinkSync(where) } catch {}
      }
    })
  }
}

// ---------------------------------------------------------------------------
// Client

export interface ControlClient {
  /** What the serve process said about itself on connect. */
  readonly hello: Record<string, unknown>
  request (header: Record<string, unknown>, parts?: Uint8Array[]): Promise<Frame>
  close (): void
}

/** Connects to the serve process of `dir`; null when none runs there. */
export async function connectControl (dir: string): Promise<ControlClient | null> {
  const where = controlPath(dir)
  const socket = await new Promise<net.Socket | null>((resolve, reject) => {
    const s = net.connect(where)
    s.once('connect', () => {
      s.removeAllListeners('error')
      resolve(s)
    })
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy()
      // Nothing there, or a socket file whose serve was killed.
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') resolve(null)
      else reject(new CliError(err.code ?? 'FAILED', `cannot reach the running \`nomadcore serve\` of ${dir} at ${where}: ${err.message}`))
    })
  })
  if (socket === null) return null
  const client = clientOn(socket, dir)
  try {
    const hello = await client.request({ op: 'hello' })
    return { ...client, hello: hello.header }
  } catch (err) {
    client.close()
    // A serve that is shutting down: as good as none.
    if (err instanceof CliError && err.code === 'SERVER_GONE') return null
    throw err
  }
}

function clientOn (socket: net.Socket, dir: string): Omit<ControlClient, 'hello'> {
  const decoder = new FrameDecoder()
  const pending = new Map<number, { resolve: (f: Frame) => void, reject: (e: Error) => void }>()
  let nextId = 1
  let gone: Error | null = null
  const failAll = (err: Error): void => {
    gone ??= err
    for (const p of pending.values()) p.reject(gone)
    pending.clear()
  }
  socket.on('error', () => {})
  socket.on('close', () => failAll(new CliError('SERVER_GONE', `the running \`nomadcore serve\` of ${dir} went away: run the command again`)))
  socket.on('data', (chunk: Buffer) => {
    let frames: Frame[]
    try {
      frames = decoder.push(chunk)
    } catch (err) {
      socket.destroy()
      failAll(new CliError('INTERNAL', `the running \`nomadcore serve\` of ${dir} sent a malformed answer: ${(err as Error).message}`))
      return
    }
    for (const f of frames) {
      const p = pending.get(f.header.id as number)
      if (p === undefined) continue
      pending.delete(f.header.id as number)
      const e = f.header.error as { code?: unknown, message?: unknown } | undefined
      if (e !== undefined) p.reject(new CliError(String(e.code ?? 'FAILED'), String(e.message ?? 'the running serve refused')))
      else p.resolve(f)
    }
  })
  return {
    request (header, parts = []) {
      if (gone !== null) return Promise.reject(gone)
      const id = nextId++
      return new Promise<Frame>((resolve, reject) => {
        pending.set(id, { resolve, reject })
        socket.write(encodeFrame({ ...header, id }, parts))
      })
    },
    close () {
      socket.destroy()
    }
  }
}
