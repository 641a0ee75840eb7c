/**
 * Running a command action: errors become one line on stderr and an exit
 * code; nothing is left half-printed on stdout.
 */
import { Command, Option } from 'commander'
import { CliError, describeError } from './errors'
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

export function fail (err: unknown): number {
  process.stderr.write(`nomadcore: ${describeError(err)}\n`)
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
      code = fail(err)
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

export function withTimeoutOption (cmd: Command, seconds: number, what: string): Command {
  return cmd.addOption(new Option('--timeout <seconds>', what).default(String(seconds)))
}

export function withPeerOptions (cmd: Command): Command {
  return cmd
    .option('--connect <host:port>', 'a peer running `nomadcore serve` (TCP)')
    .option('--swarm', 'find peers on Hyperswarm by the core\'s discovery key instead of TCP')
    .option('--bootstrap <host:port,...>', 'DHT bootstrap nodes for --swarm (default: the public ones; loopback ones keep the DHT on 127.0.0.1)')
}
