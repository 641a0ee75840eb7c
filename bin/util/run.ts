/**
 * Running a command action: errors become one line on stderr and an exit
 * code; nothing is left half-printed on stdout.
 */
import { Command, Option } from 'commander'
import { CliError, describeError, errorCode } from './errors'
import { flushStdout } from './output'

export const DEBUG = process.env.NOMADCORE_DEBUG === '1'

const cleanups = new Set<() => void>()

/** A synchronous clean-up to run if the process has to exit early (closed pipe, Ctrl-C); returns its removal. */
export function atExit (fn: () => void): () => void {
  cleanups.add(fn)
  return () => { cleanups.delete(fn) }
}

export function runCleanups (): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn)
    try { fn() } catch {}
  }
}

/**
 * Calls `stop` on the first SIGINT or SIGTERM (`early`, a signal that came
 * before, counts as that first one): the command stops cleanly. A second one
 * gives up on that: the clean-ups run and the process exits 130 at once.
 * Returns the removal of the handlers.
 */
export function onInterrupt (stop: (sig: string) => void, early: string | null = null): () => void {
  let stopping = false
  const on = (sig: string): void => {
    if (stopping) {
      runCleanups()
      process.exit(130)
    }
    stopping = true
    stop(sig)
  }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  if (early !== null) on(early)
  return () => {
    process.off('SIGINT', on)
    process.off('SIGTERM', on)
  }
}

/** True when the command line asks for JSON (also for errors before an action runs). */
export function wantsJson (argv: string[] = process.argv): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/** One error, the same way everywhere: a JSON object on stdout with --json, else one line on stderr. */
export function printError (code: string, message: string, json: boolean): void {
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n')
  else process.stderr.write(`nomadcore: ${message}\n`)
}

/** Reports `err` and returns the exit code it calls for. */
export function fail (err: unknown, json = wantsJson()): number {
  printError(errorCode(err), describeError(err), json)
  if (DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n')
  return err instanceof CliError ? err.exitCode : 1
}

/** Wraps an action: its return value is the exit code (default 0). */
export function action<A extends unknown[]> (fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: number
    try {
      code = (await fn(...args)) ?? 0
    } catch (err) {
      // commander passes the options, then the command, last.
      const cmd = args[args.length - 1] as Command | undefined
      const json = typeof cmd?.opts === 'function' ? cmd.opts().json === true : wantsJson()
      code = fail(err, json)
    }
    await flushStdout()
    process.exitCode = code
  }
}

/** Options most commands share. */
export function withJson (cmd: Command): Command {
  return cmd.option('--json', 'print machine-readable JSON on stdout')
}

export function withProgress (cmd: Command): Command {
  return cmd.option('--no-progress', 'no progress bar (it is shown only when stderr is a terminal anyway)')
}

/**
 * The one timeout policy of every command that talks to a peer (clone,
 * repair): give up when the peer cannot be reached, does not complete its
 * handshake, does not take up the core, or sends nothing new, for this long.
 * A slow transfer that keeps making progress never times out.
 */
export const PEER_TIMEOUT_SECONDS = 20

export function withPeerOptions (cmd: Command): Command {
  return cmd
    .option('--connect <host:port>', 'a peer running `nomadcore serve` (TCP)')
    .option('--swarm', 'find peers on Hyperswarm by the core\'s discovery key instead of TCP')
    .option('--bootstrap <host:port,...>', 'DHT bootstrap nodes for --swarm (default: the public ones; loopback ones keep the DHT on 127.0.0.1)')
    .addOption(new Option('--timeout <seconds>', 'give up when the peer cannot be reached, or answers but sends nothing new, for this many seconds (0 = wait forever)')
      .default(String(PEER_TIMEOUT_SECONDS)))
}
