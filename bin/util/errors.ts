/**
 * Errors the CLI shows: one line on stderr, a non-zero exit code, no stack
 * trace (set NOMADCORE_DEBUG=1 to see one).
 */
import { plainMessage } from '../../lib/errors'

/**
 * What went wrong, as a stable code a script can branch on (with --json it is
 * `error.code`). Errors from the library keep their own code
 * (`STORAGE_CORRUPT`, `INVALID_PROOF`, …) and system errors theirs
 * (`ECONNREFUSED`, `EACCES`, …); these are the CLI's own.
 */
export type CliCode =
  | 'USAGE' // a malformed argument or option
  | 'NO_CORE' // no core where one was named
  | 'CORE_EXISTS' // a core (or other files) where a new one was to go
  | 'CORE_IN_USE' // another process holds the core
  | 'REPAIR_MODE' // the core's tree roots are missing
  | 'NOT_WRITABLE' // a copy without the secret key
  | 'NOT_STORED' // a block the core does not hold
  | 'CONNECT_FAILED' // the peer's address does not answer
  | 'NOT_A_PEER' // it answered, but not with a Noise handshake
  | 'PEER_LACKS_CORE' // a Hypercore peer without this core
  | 'PEER_HUNG_UP' // the peer went away midway
  | 'TIMEOUT' // nothing happened for --timeout seconds
  | 'INCOMPLETE' // fewer blocks than the peer's signed length
  | 'INTERRUPTED' // Ctrl-C
  | 'BAD_PROOF' // not a proof, or for another core, or does not fit
  | 'SERVER_GONE' // the running serve went away midway
  | 'FAILED' // a step failed for a reason given in the message
  | 'INTERNAL' // a bug: please report it

/** An error whose message is already fit to show a person. */
export class CliError extends Error {
  constructor (readonly code: CliCode | string, message: string, readonly exitCode = 1) {
    super(message)
  }

  override get name (): string {
    return 'CliError'
  }
}

interface CodedError {
  code?: unknown
  message?: unknown
  path?: unknown
  syscall?: unknown
  address?: unknown
  port?: unknown
}

const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EEXIST: 'already exists',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host not found',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
  EPIPE: 'broken pipe'
}

/** One line that says what went wrong, for any thrown value. */
export function describeError (err: unknown, dir?: string): string {
  if (err instanceof CliError) return oneLine(err.message)
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as CodedError
  const code = typeof e.code === 'string' ? e.code : ''
  const msg = plainMessage({ code, message: typeof e.message === 'string' ? e.message : String(err) })
  const where = dir !== undefined ? dir : (typeof e.path === 'string' ? e.path : '')
  switch (code) {
    case 'ELOCKED':
      return `${where || 'the core'} is in use by another process (a running \`nomadcore clone\`, \`repair\` or \`audit\`?)`
    case 'STORAGE_EMPTY':
      return `no core in ${where || 'that directory'}`
    case 'STORAGE_CONFLICT':
      return `${where || 'that directory'} holds a different core`
    case 'STORAGE_CORRUPT':
      return `the core in ${where || 'that directory'} is corrupt: ${oneLine(msg)}`
    case 'SESSION_NOT_WRITABLE':
      return `${where || 'the core'} is read-only here (no secret key): only its writer can append`
    case 'ERR_ASSERTION':
      if (/repair mode/i.test(msg)) return `${where || 'the core'} is in repair mode (tree roots missing): run \`nomadcore repair\` first`
      break
  }
  if (code in SYSTEM_ERRORS) {
    const target = typeof e.address === 'string' ? `${e.address}${typeof e.port === 'number' ? ':' + e.port : ''}` : (typeof e.path === 'string' ? e.path : '')
    const verb = typeof e.syscall === 'string' ? e.syscall : ''
    return oneLine(`${verb ? 'cannot ' + verb + ' ' : ''}${target}${target ? ': ' : ''}${SYSTEM_ERRORS[code]}`)
  }
  if (code !== '') return oneLine(`${msg} (${code})`)
  return oneLine(`internal error: ${msg}`)
}

/** The code for any thrown value (see CliCode). */
export function errorCode (err: unknown): string {
  if (err instanceof CliError) return err.code
  const code = typeof (err as CodedError | null)?.code === 'string' ? (err as { code: string }).code : ''
  const msg = typeof (err as CodedError | null)?.message === 'string' ? (err as { message: string }).message : ''
  switch (code) {
    case '': return 'INTERNAL'
    case 'ELOCKED': return 'CORE_IN_USE'
    case 'STORAGE_EMPTY': return 'NO_CORE'
    case 'SESSION_NOT_WRITABLE': return 'NOT_WRITABLE'
    case 'ERR_ASSERTION': return /repair mode/i.test(msg) ? 'REPAIR_MODE' : 'INTERNAL'
  }
  return code
}

export function oneLine (s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/** Wraps a promise so a slow step fails with a clear message instead of hanging. */
export function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return promise
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CliError('TIMEOUT', message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** The short reason of a system error ("connection refused"), else its message. */
export function reason (err: unknown): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as CodedError
  const code = typeof e.code === 'string' ? e.code : ''
  if (code in SYSTEM_ERRORS) return SYSTEM_ERRORS[code]!
  return oneLine(typeof e.message === 'string' ? e.message : String(err))
}
