/** Printing results: human lines, or one JSON document with --json. */

export interface OutputOptions {
  json?: boolean
}

export function printJson (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

export function printLines (lines: string[]): void {
  if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n')
}

/** The result of a command: JSON with --json, else the human lines. */
export function report (opts: OutputOptions, value: unknown, lines: string[]): void {
  if (opts.json === true) printJson(value)
  else printLines(lines)
}

/** A remark for a person on stderr (not with --json). */
export function note (opts: OutputOptions, line: string): void {
  if (opts.json !== true) process.stderr.write(line + '\n')
}

export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = -1
  do {
    v /= 1024
    u++
  } while (v >= 1024 && u < units.length - 1)
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`
}

export function formatMs (ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`
  const m = Math.floor(ms / 60000)
  return `${m} min ${Math.round((ms - m * 60000) / 1000)} s`
}

/** Resolves once everything written to stdout has been handed to the OS. */
export function flushStdout (): Promise<void> {
  return new Promise(resolve => {
    if (process.stdout.destroyed || !process.stdout.writable) return resolve()
    process.stdout.write('', () => resolve())
  })
}
