/**
 * Progress bars (cli-progress) on stderr, and only when stderr is a terminal:
 * piped output and --json stay clean.
 */
import type * as CliProgress from 'cli-progress'

export interface Progress {
  readonly enabled: boolean
  start (total: number, value: number, payload?: Record<string, unknown>): void
  update (value: number, payload?: Record<string, unknown>): void
  setTotal (total: number): void
  stop (): void
}

export function showProgress (opts: { progress?: boolean }): boolean {
  return opts.progress !== false && process.stderr.isTTY === true
}

const FORMATS = {
  download: '{bar} {percentage}% | {value}/{total} blocks | {speed} MiB/s | ETA {remaining}',
  audit: '{bar} {percentage}% | {value}/{total} blocks checked | {duration_formatted}',
  repair: '{bar} {phase} | {duration_formatted}',
  import: '{bar} {percentage}% | {value}/{total} cores | {blocks} blocks | {speed} MiB/s | ETA {eta_formatted}'
}

export function progressBar (kind: keyof typeof FORMATS, enabled: boolean): Progress {
  if (!enabled) {
    return { enabled: false, start () {}, update () {}, setTotal () {}, stop () {} }
  }
  const cliProgress = require('cli-progress') as typeof CliProgress
  const bar = new cliProgress.SingleBar({
    format: FORMATS[kind],
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: false,
    etaBuffer: 50,
    fps: 10
  }, cliProgress.Presets.shades_classic)
  let running = false
  return {
    enabled: true,
    start (total, value, payload) {
      running = true
      bar.start(total, value, payload)
    },
    update (value, payload) {
      if (running) bar.update(value, payload)
    },
    setTotal (total) {
      if (running) bar.setTotal(total)
    },
    stop () {
      if (!running) return
      running = false
      bar.stop()
    }
  }
}
