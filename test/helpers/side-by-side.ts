/**
 * Running one scenario against nomadcore and against Hypercore 11, so a test
 * can assert that both tell the same story. A scenario gets an `Env` that
 * opens cores of one kind in fresh directories, and returns a transcript
 * (plain values, error codes) to compare.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import { Hypercore as NomadCore } from '../../lib/hypercore'
import { RM_STORE, type Teardownable } from './oracle'

/** The part of Hypercore 11's session API the scenarios use; both implementations have it. */
export interface SessionLike {
  readonly key: Uint8Array | null
  readonly id: string | null
  readonly discoveryKey: Uint8Array | null
  readonly length: number
  readonly signedLength: number
  readonly byteLength: number
  readonly fork: number
  readonly remoteContiguousLength: number
  readonly contiguousLength: number
  readonly writable: boolean
  readonly peers: unknown[]
  readonly readable: boolean
  readonly closed: boolean
  readonly opened: boolean
  readonly keyPair: { publicKey: Uint8Array, secretKey: Uint8Array | null } | null
  ready (): Promise<void>
  close (): Promise<void>
  session (opts?: Record<string, unknown>): SessionLike
  snapshot (opts?: Record<string, unknown>): SessionLike
  append (blocks: unknown, opts?: Record<string, unknown>): Promise<{ length: number, byteLength: number }>
  get (index: number, opts?: Record<string, unknown>): Promise<any>
  has (start: number, end?: number): Promise<boolean>
  truncate (length?: number, opts?: number | Record<string, unknown>): Promise<void>
  clear (start: number, end?: number | Record<string, unknown>, opts?: Record<string, unknown>): Promise<unknown>
  update (opts?: Record<string, unknown>): Promise<boolean>
  download (range?: Record<string, unknown>): { done (): Promise<unknown>, destroy (): void }
  seek (bytes: number, opts?: Record<string, unknown>): Promise<[number, number] | null>
  treeHash (length?: number): Promise<Uint8Array>
  signable (length?: number, fork?: number): Promise<Uint8Array>
  info (opts?: Record<string, unknown>): Promise<Record<string, unknown>>
  setUserData (key: string, value: Uint8Array | string | null): Promise<void>
  getUserData (key: string): Promise<Uint8Array | null>
  createReadStream (opts?: Record<string, unknown>): AsyncIterable<unknown>
  createByteStream (opts?: Record<string, unknown>): AsyncIterable<Uint8Array>
  createWriteStream (): NodeJS.WritableStream
  replicate (isInitiator: boolean, opts?: Record<string, unknown>): { pipe (s: unknown): unknown, destroy (): void, on (e: string, f: (...a: unknown[]) => void): unknown }
  on (event: string, fn: (...args: any[]) => void): unknown
}

type Ctor = new (storage: string, key?: Uint8Array | string | null | Record<string, unknown>, opts?: Record<string, unknown>) => SessionLike

export const HC11 = require('hypercore') as Ctor
const Nomad = NomadCore as unknown as Ctor

export type Kind = 'nomadcore' | 'hypercore'

export interface Env {
  readonly kind: Kind
  /** A fresh directory, removed at teardown. */
  dir (): string
  /** A core of this kind in `dir` (fresh unless given), closed at teardown. */
  open (dir?: string | null, key?: Uint8Array | string | null, opts?: Record<string, unknown>): SessionLike
}

function env (t: Teardownable, kind: Kind): Env {
  const Core = kind === 'nomadcore' ? Nomad : HC11
  const dirs: string[] = []
  t.teardown(() => { for (const d of dirs) fs.rmSync(d, RM_STORE) }, { order: Number.MAX_SAFE_INTEGER })
  const dir = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-sbs-' + kind + '-'))
    dirs.push(d)
    return d
  }
  return {
    kind,
    dir,
    open (d, key, opts = {}) {
      const core = new Core(d ?? dir(), key ?? null, opts)
      t.teardown(() => core.close().catch(() => {}))
      return core
    }
  }
}

/** Runs `scenario` on both implementations; resolves with both transcripts. */
export async function sideBySide<T> (t: Teardownable, scenario: (env: Env) => Promise<T>): Promise<{ ours: T, theirs: T }> {
  const ours = await scenario(env(t, 'nomadcore'))
  const theirs = await scenario(env(t, 'hypercore'))
  return { ours, theirs }
}

/** What a promise came to: its value (bytes as text) or its error code. */
export async function outcome (p: Promise<unknown>): Promise<unknown> {
  try {
    return show(await p)
  } catch (err) {
    return { error: (err as { code?: string }).code ?? String(err) }
  }
}

/** Bytes as text, so transcripts compare and print readably. */
export function show (v: unknown): unknown {
  if (v instanceof Uint8Array) return b4a.toString(v)
  if (Array.isArray(v)) return v.map(show)
  return v
}

/** Every value of a stream, bytes as text. */
export async function drain (stream: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const v of stream) out.push(show(v))
  return out
}

/** Replicates two sessions over a fresh stream pair; the returned function cuts them apart. */
export function link (a: SessionLike, b: SessionLike): () => void {
  const s1 = a.replicate(true, { keepAlive: false })
  const s2 = b.replicate(false, { keepAlive: false })
  s1.on('error', () => {})
  s2.on('error', () => {})
  s1.pipe(s2)
  s2.pipe(s1)
  return () => {
    s1.destroy()
    s2.destroy()
  }
}
