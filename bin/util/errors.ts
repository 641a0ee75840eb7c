/**
 * Errors the CLI shows: one line on stderr, a non-zero exit code, no stack
 * trace (set NOMADCORE_DEBUG=1 to see one).
 */

/** An error whose message is already fit to show a person. */
export class CliError extends Error {
  constructor (message: string, readonly exitCode = 1) {
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
  const raw = typeof e.message === 'string' ? e.message : String(err)
  // Our errors read "CODE: message".
  const msg = raw.startsWith(code + ': ') ? raw.slice(code.length + 2) : raw
  const where = dir !== undefined ? dir : (typeof e.path === 'string' ? e.path : '')
  switch (code) {
    case 'ELOCKED':
      return `${where || 'the core'} is in use by another process (a running \`nomadcore serve\`, \`clone\` or \`repair\`?)`
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

export function oneLine (s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/** Wraps a promise so a slow step fails with a clear message instead of hanging. */
export function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return promise
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CliError(message)), ms)
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
