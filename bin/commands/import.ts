import type { Command } from 'commander'
import type { ImportSummary, CoreRef } from '../../lib/import'
import { CliError, describeError, errorCode } from '../util/errors'
import { progressBar, showProgress } from '../util/progress'
import { report, formatBytes, formatMs } from '../util/output'
import { action, onInterrupt, withJson, withProgress } from '../util/run'

interface Options { json?: boolean, progress?: boolean, copySource?: boolean }

/** Exit status when some cores could not be imported (as `audit` does for damage). */
const EXIT_SOME_FAILED = 2
const EXIT_INTERRUPTED = 130

export function describeImport (s: ImportSummary): string[] {
  const secs = Math.max(0.001, s.ms / 1000)
  const lines = [
    `imported ${count(s.imported.length, 'core')} (${count(s.blocks, 'block')}, ${formatBytes(s.bytes)}) from ${s.src} into ${s.dst} in ${formatMs(s.ms)}` +
      ` (${(s.bytes / 1048576 / secs).toFixed(2)} MiB/s, ${(s.imported.length / secs).toFixed(1)} cores/s)`
  ]
  const updated = s.imported.filter(c => c.status === 'updated').length
  if (updated > 0) lines.push(`  ${count(updated, 'core')} of these replaced an older copy in the destination`)
  if (s.unchanged.length > 0) lines.push(`  ${count(s.unchanged.length, 'core')} already there, nothing new`)
  if (s.source === 'copy') lines.push('  the source needed migrating, so it was read from a temporary copy (the source itself is untouched)')
  lines.push('  primary key: ' + {
    imported: 'adopted from the source (named cores keep their keys)',
    unchanged: 'the same in both',
    different: 'the destination has a different one, kept (cores keep their own key pairs; new named cores will get other keys than in the source)',
    none: 'the source has none'
  }[s.primaryKey])
  for (const c of s.imported) {
    for (const n of c.notes) lines.push(`  note: ${label(c)}: ${n}`)
  }
  if (s.failed.length > 0) {
    lines.push(`NOT imported: ${count(s.failed.length, 'core')}`)
    for (const c of s.failed) lines.push(`  ${label(c)}: ${c.reason} (${c.code})`)
  }
  const left = s.total - s.imported.length - s.unchanged.length - s.failed.length
  if (s.interrupted) lines.push(`interrupted with ${count(left, 'core')} to go: run the same command again to resume`)
  return lines
}

function label (c: CoreRef): string {
  const id = c.key ?? `discovery key ${c.discoveryKey}`
  return c.name === null ? id : `${id} (named '${c.name}')`
}

function count (n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`
}

export function register (program: Command): void {
  withProgress(withJson(program.command('import')
    .argument('<src>', 'a Hypercore 11 / Corestore 7 storage directory (the one given to `new Corestore(dir)`)')
    .argument('<dst>', 'the nomadcore Store directory to import into (created if missing)')
    .option('--copy-source', 'read the source from a temporary copy even when it can be opened read-only')
    .description('import every core of a Hypercore 11 / Corestore 7 store, verified, into a nomadcore Store; the source is never modified')
    .addHelpText('after', `
Every core is checked before it counts: its tree against its signature, every
block against its tree. A damaged core is reported and nothing of it is
written. Running the command again imports only what is new; Ctrl-C and run
it again to resume.

Exit status: 0 everything imported (or already there), 2 some cores could not
be imported (listed, with why), 130 interrupted, 1 error.`)))
    .action(action(async (src: string, dst: string, opts: Options) => {
      const controller = new AbortController()
      const dispose = onInterrupt(() => controller.abort())
      const bar = progressBar('import', showProgress(opts) && opts.json !== true)
      let t0 = 0
      let started = false
      let summary: ImportSummary
      try {
        // Loaded here, not at start-up: every other command, `--help` and `--version` start about 20 ms sooner without it.
        const { importStore } = require('../../lib/import') as typeof import('../../lib/import')
        summary = await importStore(src, dst, {
          signal: controller.signal,
          copySource: opts.copySource === true,
          onprogress: (p) => {
            if (!started) {
              started = true
              t0 = Date.now()
              bar.start(p.totalCores, p.cores, { blocks: 0, speed: '0.00' })
            }
            const secs = Math.max(0.001, (Date.now() - t0) / 1000)
            bar.update(p.cores, { blocks: p.blocks, speed: (p.bytes / 1048576 / secs).toFixed(2) })
          }
        })
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ELOCKED') throw new CliError('CORE_IN_USE', `${dst} is in use by another process (another import, or a Store opening it)`)
        throw err instanceof CliError ? err : new CliError(errorCode(err), describeError(err))
      } finally {
        bar.stop()
        dispose()
      }
      report(opts, summary, describeImport(summary))
      if (summary.interrupted) return EXIT_INTERRUPTED
      return summary.failed.length > 0 ? EXIT_SOME_FAILED : 0
    }))
}
