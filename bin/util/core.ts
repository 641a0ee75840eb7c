/**
 * Opening cores for the CLI without surprises: a command that only reads
 * never creates a directory or a file, and every failure is one clear line.
 */
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import * as idEncoding from 'hypercore-id-encoding'
import type { Hypercore, HypercoreOptions } from '../../lib/hypercore'
import { CliError, describeError, errorCode } from './errors'

/** The four files a core keeps in its directory (see README, "On disk"). */
export const CORE_FILES = ['header', 'tree', 'data', 'bitfield'] as const

export type DirState = 'missing' | 'empty' | 'core' | 'other'

/** What is at `dir`: nothing, an empty directory, a core, or something else. */
export function dirState (dir: string): DirState {
  let st: fs.Stats
  try {
    st = fs.statSync(dir)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return 'missing'
    throw new CliError(errorCode(err), describeError(err))
  }
  if (!st.isDirectory()) throw new CliError('NO_CORE', `${dir} is not a directory`)
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch (err) {
    throw new CliError(errorCode(err), describeError(err))
  }
  if (names.length === 0) return 'empty'
  try {
    if (fs.statSync(path.join(dir, 'header')).size > 0) return 'core'
  } catch {}
  return 'other'
}

/** Fails unless `dir` holds a core; never creates anything. */
export function assertCore (dir: string): void {
  const state = dirState(dir)
  if (state === 'missing') throw new CliError('NO_CORE', `no core at ${dir}: the directory does not exist`)
  if (state !== 'core') throw new CliError('NO_CORE', `no core at ${dir}: it has no header file`)
}

export interface OpenOptions {
  /** Open read-only (the default for commands that only read). */
  readOnly?: boolean
  key?: Uint8Array | null
}

/** Opens the core stored in `dir`, which must exist. */
export async function openExisting (dir: string, opts: OpenOptions = {}): Promise<Hypercore> {
  assertCore(dir)
  const hopts: HypercoreOptions = { createIfMissing: false }
  if (opts.readOnly === true) hopts.writable = false
  return openCore(dir, opts.key ?? null, hopts)
}

/** Opens (or creates) a core and waits until it is ready, failing with one line. */
export async function openCore (dir: string, key: Uint8Array | null, opts: HypercoreOptions): Promise<Hypercore> {
  let core: Hypercore
  try {
    // Loaded here, not at start-up: commands that fail on their arguments stay quick.
    const { Hypercore: Core } = require('../../lib/hypercore') as typeof import('../../lib/hypercore')
    core = key === null ? new Core(dir, opts) : new Core(dir, key, opts)
    await core.ready()
  } catch (err) {
    throw new CliError(errorCode(err), describeError(err, dir))
  }
  return core
}

export async function closeQuietly (core: Hypercore | null | undefined): Promise<void> {
  if (core === null || core === undefined) return
  await core.close().catch(() => {})
}

/** A core key: 64 hex characters or 52 z-base-32 ones (Hypercore's `id`), as hypercore-id-encoding reads them. */
export function parseKey (s: string): Uint8Array {
  const t = s.trim()
  // hypercore-id-encoding reads hex leniently (Buffer.from stops at the first bad pair): check the form first.
  const hexOk = /^[0-9a-fA-F]{64}$/.test(t)
  const z32Ok = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}$/.test(t)
  if (hexOk || z32Ok) {
    try {
      return idEncoding.decode(t)
    } catch {}
  }
  throw new CliError('USAGE', `malformed key "${shorten(s)}": expected 64 hex characters or a 52-character z-base-32 id`)
}

/** A key as Hypercore's `id` (z-base-32), the form `nomadcore info` prints next to the hex. */
export function z32 (key: Uint8Array | null | undefined): string {
  return key === null || key === undefined ? '' : idEncoding.encode(b4a.from(key as Buffer))
}

/** A non-negative integer option or argument. */
export function parseCount (s: string, what: string, min = 0): number {
  if (!/^\d+$/.test(s.trim())) throw new CliError('USAGE', `${what} must be a whole number ≥ ${min}, not "${shorten(s)}"`)
  const n = Number(s.trim())
  if (!Number.isSafeInteger(n) || n < min) throw new CliError('USAGE', `${what} must be a whole number ≥ ${min}, not "${shorten(s)}"`)
  return n
}

/** Seconds as milliseconds (0 = no limit). */
export function parseSeconds (s: string, what: string): number {
  const n = Number(s)
  if (s.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError('USAGE', `${what} must be a number of seconds ≥ 0, not "${shorten(s)}"`)
  return Math.round(n * 1000)
}

export function hex (b: Uint8Array | null | undefined): string {
  return b === null || b === undefined ? '' : b4a.toString(b as Buffer, 'hex')
}

export function shorten (s: string, n = 40): string {
  return s.length > n ? s.slice(0, n) + '…' : s
}

/** The topmost ancestor of `dir` (or `dir` itself) that does not exist yet, or null. */
export function firstMissingAncestor (dir: string): string | null {
  let missing: string | null = null
  let cur = path.resolve(dir)
  for (;;) {
    if (fs.existsSync(cur)) return missing
    missing = cur
    const up = path.dirname(cur)
    if (up === cur) return missing
    cur = up
  }
}
