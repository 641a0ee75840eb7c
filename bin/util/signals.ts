/**
 * Ctrl-C during start-up. `serve` promises a clean stop (exit 0) on SIGINT or
 * SIGTERM, but loading the CLI's modules takes a good part of a second on a
 * busy machine, and a signal before `serve` listens for it would kill the
 * process. This module is the first the CLI loads: for `serve` it notes a
 * signal at once, and `serve` takes it over when it starts.
 */

let early: string | null = null
const note = (sig: string): void => { early ??= sig }

/** The first word of the command line that is not an option. */
function commandName (argv: string[]): string | undefined {
  return argv.slice(2).find(a => !a.startsWith('-'))
}

if (commandName(process.argv) === 'serve') {
  process.on('SIGINT', note)
  process.on('SIGTERM', note)
}

/** Stops noting signals; returns the one that came before, if any. */
export function takeEarlySignal (): string | null {
  process.off('SIGINT', note)
  process.off('SIGTERM', note)
  return early
}
