import type { Command } from 'commander'
import * as fs from 'fs'
import * as path from 'path'
import type { Hypercore } from '../../lib/hypercore'
import { CliError, describeError, errorCode, withTimeout } from '../util/errors'
import { CORE_FILES, dirState, openCore, closeQuietly, parseKey, parseSeconds, firstMissingAncestor, hex, z32 } from '../util/core'
import { peerTarget, dial, awaitPeer, describeTarget, type PeerLink, type PeerOptions } from '../util/peers'
import { openAlone } from '../util/access'
import { REMOTE_FILE, announcedLength, writeRemote } from '../util/remote'
import { progressBar, showProgress, type Progress } from '../util/progress'
import { report, formatBytes, formatMs } from '../util/output'
import { action, onInterrupt, withJson, withProgress, withPeerOptions } from '../util/run'

interface Options extends PeerOptions { json?: boolean, progress?: boolean, timeout: string }

export interface CloneResult {
  length: number
  byteLength: number
  /** Blocks held before this run (a resumed clone starts above 0). */
  had: number
  downloaded: number
  downloadedBytes: number
  ms: number
  /** The longest length a peer announced (its signed length, by its word), or null with no peer left to ask. */
  remoteLength: number | null
}

/** How often the progress bar and the stall check look at what is stored. */
const POLL_MS = 200

/**
 * Downloads every block of `core` (its length as learned from peers) and
 * resolves when all are stored. Fails if the peer goes away or nothing
 * arrives for `stallMs`. Progress is read from the core's count of held
 * blocks a few times a second, never followed block by block: the bar costs
 * the download nothing.
 */
export async function downloadAll (core: Hypercore, link: PeerLink | null, bar: Progress, stallMs: number): Promise<CloneResult> {
  const started = Date.now()
  await withTimeout(core.update({ wait: true }), stallMs, 'the peer did not tell the length of the core in time')
  const length = core.length
  const heldNow = async (): Promise<number> => (await core.info()).blocks
  const had = await heldNow()
  let held = had
  const t0 = Date.now()
  /** Rate over this run (a resumed clone counts only what it fetched); bytes by the core's mean block size. */
  const payload = (): Record<string, string> => {
    const secs = Math.max(0.001, (Date.now() - t0) / 1000)
    const got = held - had
    const eta = got === 0 ? '--' : formatEta((length - held) / (got / secs))
    const bytes = length === 0 ? 0 : got * core.byteLength / length
    return { speed: (bytes / 1048576 / secs).toFixed(2), remaining: eta }
  }
  let lastProgress = Date.now()
  bar.start(length, had, payload())
  const dl = core.download({ start: 0, end: length })
  let timer: ReturnType<typeof setInterval> | null = null
  try {
    const failures: Array<Promise<never>> = []
    if (link !== null && link.target.kind === 'tcp') {
      failures.push(link.closed.then(() => { throw new CliError('PEER_HUNG_UP', `${describeTarget(link.target)} hung up after ${held}/${length} blocks: run the same command again to resume`) }))
    }
    failures.push(new Promise<never>((_resolve, reject) => {
      timer = setInterval(() => {
        heldNow().then(now => {
          if (now !== held) {
            held = now
            lastProgress = Date.now()
          }
          bar.update(held, payload())
          if (stallMs > 0 && Date.now() - lastProgress > stallMs) reject(new CliError('TIMEOUT', `no block arrived for ${Math.round(stallMs / 1000)} s (${held}/${length} stored): run the same command again to resume`))
        }, () => {})
      }, POLL_MS)
    }))
    await Promise.race([dl.done(), ...failures])
    held = await heldNow()
    bar.update(held, payload())
  } finally {
    if (timer !== null) clearInterval(timer)
    dl.destroy()
    bar.stop()
  }
  const now = await heldNow()
  const downloadedBytes = now === length && had === 0 ? core.byteLength : (length === 0 ? 0 : Math.round((now - had) * core.byteLength / length))
  return { length, byteLength: core.byteLength, had, downloaded: now - had, downloadedBytes, ms: Date.now() - started, remoteLength: announcedLength(core)?.length ?? null }
}

function formatEta (secs: number): string {
  if (!Number.isFinite(secs)) return '--'
  const s = Math.ceil(secs)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
}

export function register (program: Command): void {
  withProgress(withJson(withPeerOptions(program.command('clone')
    .argument('<key>', 'the core\'s key: 64 hex characters or its 52-character z-base-32 id, as `nomadcore info` prints them')
    .argument('<dir>', 'directory to download into (created; an earlier partial clone is resumed)')
    .description('download a whole core from a peer, with a progress bar; Ctrl-C and run again to resume'))))
    .addHelpText('after', `
A clone succeeds only when it holds every block of the length the peer
announced. A peer that cannot prove its length (a core in repair mode) makes it
fail (exit 1, code INCOMPLETE); a new directory is then removed again.

Example:
  nomadcore serve ./log --port 7000        # on the source
  nomadcore clone <key> ./copy --connect 127.0.0.1:7000`)
    .action(action(async (keyArg: string, dir: string, opts: Options) => {
      const key = parseKey(keyArg)
      const target = peerTarget(opts)!
      const timeoutMs = parseSeconds(opts.timeout, '--timeout')
      const state = dirState(dir)
      if (state === 'other') throw new CliError('CORE_EXISTS', `${dir} is not empty and holds no core: refusing to clone into it`)
      const createdRoot = state === 'missing' ? firstMissingAncestor(dir) : null

      let core: Hypercore | null = null
      let link: PeerLink | null = null
      const bar = progressBar('download', showProgress(opts) && opts.json !== true)
      let stop: ((err: Error) => void) | null = null
      const stopped = new Promise<never>((_resolve, reject) => { stop = reject })
      stopped.catch(() => {})
      const dispose = onInterrupt(() => {
        stop?.(new CliError('INTERRUPTED', `interrupted at ${core?.contiguousLength ?? 0}/${core?.length ?? 0} blocks: run the same command again to resume`, 130))
      })
      try {
        // Before creating anything: an unreachable peer leaves no directory behind.
        if (state === 'core') core = await openAlone(dir, 'a clone into it', () => openCore(dir, key, { createIfMissing: false }))
        link = await Promise.race([dial(target, timeoutMs), stopped])
        if (core === null) core = await openCore(dir, key, {})
        link.attach(core)
        await Promise.race([awaitPeer(core, link, timeoutMs), stopped])
        const r = await Promise.race([downloadAll(core, link, bar, timeoutMs), stopped])
        const from = describeTarget(link.target)
        if (r.remoteLength !== null) writeRemote(dir, { length: r.remoteLength, fork: core.fork }, from)
        if (r.remoteLength !== null && r.length < r.remoteLength) {
          const kept = r.length === 0 && state !== 'core' ? 'nothing kept' : `${dir} keeps ${r.length} verified blocks`
          throw new CliError('INCOMPLETE', `clone incomplete: ${from} announced ${r.remoteLength} blocks but proved a length of only ${r.length} ` +
            `(a peer in repair mode cannot prove its length); ${kept}: clone from a healthy peer`)
        }
        const rate = r.downloadedBytes / 1048576 / Math.max(0.001, r.ms / 1000)
        report(opts, { key: hex(key), id: z32(key), dir, ...r, complete: true }, [
          r.downloaded === 0 && r.had === r.length
            ? `${dir} already holds all ${r.length} blocks of ${hex(key)}`
            : `cloned ${r.length} blocks (${formatBytes(r.byteLength)}) into ${dir}: ${r.downloaded} downloaded in ${formatMs(r.ms)} (${rate.toFixed(2)} MiB/s)` +
              (r.had > 0 ? `, ${r.had} were already here` : '')
        ])
      } catch (err) {
        // A clone that got nothing leaves nothing: remove what this run created.
        bar.stop()
        if (state !== 'core' && core !== null && core.length === 0) {
          await closeQuietly(core)
          if (createdRoot !== null) fs.rmSync(createdRoot, { recursive: true, force: true })
          else for (const f of [...CORE_FILES, REMOTE_FILE]) fs.rmSync(path.join(dir, f), { force: true })
        }
        throw err instanceof CliError ? err : new CliError(errorCode(err), describeError(err, dir))
      } finally {
        dispose()
        await link?.close()
        await closeQuietly(core)
      }
    }))
}
