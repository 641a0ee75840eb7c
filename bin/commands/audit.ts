import type { Command } from 'commander'
import type { Hypercore, AuditSummary as CoreAudit } from '../../lib/hypercore'
import { CliError, describeError, errorCode } from '../util/errors'
import { openAlone } from '../util/access'
import { openExisting, closeQuietly } from '../util/core'
import { treeHealth, describeHealth, type TreeHealth } from '../util/health'
import { report, formatMs } from '../util/output'
import { progressBar, showProgress, type Progress } from '../util/progress'
import { action, withJson, withProgress } from '../util/run'

interface Options { json?: boolean, progress?: boolean, force?: boolean }

/** The core's audit report, and what the command saw around it. */
export interface AuditSummary extends CoreAudit {
  /** Blocks that were held before the audit and are not now (cleared as corrupt). */
  cleared: number[]
  repairMode: boolean
  health: TreeHealth
  ms: number
}

/**
 * Audits a core. audit() reads in long sequential runs and reports no
 * progress of its own (it checks tens of MiB a second), so the bar shows the
 * blocks to check and then that they were.
 */
export async function runAudit (core: Hypercore, dir: string, bar: Progress): Promise<AuditSummary> {
  const started = Date.now()
  const held: number[] = []
  for (let i = 0; i < core.length; i++) if (await core.has(i)) held.push(i)
  bar.start(held.length, 0)
  let result: Awaited<ReturnType<Hypercore['audit']>>
  try {
    result = await core.audit()
  } catch (err) {
    throw new CliError(errorCode(err), `audit of ${dir} failed: ${describeError(err, dir)}`)
  } finally {
    bar.update(held.length)
    bar.stop()
  }
  const cleared: number[] = []
  for (const i of held) if (!(await core.has(i))) cleared.push(i)
  const health = await treeHealth(core, dir)
  return { ...result, cleared, repairMode: core.repairMode, health, ms: Date.now() - started }
}

export function describeAudit (s: AuditSummary): string[] {
  const lines = [
    `checked ${s.blocks} block${s.blocks === 1 ? '' : 's'} in ${formatMs(s.ms)}: ${s.verifiedBlocks} verified, ` +
      `${s.corruptBlocks} corrupt${s.corruptBlocks > 0 ? ' (cleared' + (s.cleared.length > 0 ? ': ' + list(s.cleared) : '') + ')' : ''}, ` +
      `${s.unverifiedBlocks} not verifiable now (not read or served until they are), ` +
      `${s.restoredNodes} rotten tree node${s.restoredNodes === 1 ? '' : 's'} restored, ` +
      `${s.droppedNodes} dropped`,
    `tree: ${describeHealth(s.health)}; repair mode ${s.repairMode ? 'ON' : 'off'}`
  ]
  return lines
}

function list (xs: number[]): string {
  return xs.slice(0, 10).join(', ') + (xs.length > 10 ? `, … (${xs.length})` : '')
}

export function register (program: Command): void {
  withProgress(withJson(program.command('audit')
    .argument('<dir>', 'directory of a core')
    .option('--force', 'audit even in repair mode (blocks that cannot be located then may be cleared although intact)')
    .description('check every held block and tree node against the signed roots; clears corrupt blocks and drops rotten nodes')
    .addHelpText('after', `
What audit finds is cleared (corrupt blocks) or dropped (rotten tree nodes),
so it can never be served to a peer; \`nomadcore repair DIR --connect HOST:PORT\`
fetches it back, verified.

Exit status: 0 clean, 2 damage found, 1 error.`)))
    .action(action(async (dir: string, opts: Options) => {
      const core = await openAlone(dir, 'an audit', () => openExisting(dir, { readOnly: true }))
      try {
        if (core.repairMode && opts.force !== true) {
          const h = await treeHealth(core, dir)
          throw new CliError('REPAIR_MODE', `${dir} is in repair mode (${describeHealth(h)}): restore its roots first with \`nomadcore repair ${dir} --connect HOST:PORT\` (it audits too) or --proof FILE; an audit now may clear intact blocks it cannot locate (--force to audit anyway)`)
        }
        const s = await runAudit(core, dir, progressBar('audit', showProgress(opts)))
        const damaged = s.corruptBlocks > 0 || s.unverifiedBlocks > 0 || s.droppedNodes > 0 || s.restoredNodes > 0 || !s.health.healthy
        const lines = describeAudit(s)
        if (s.health.blocks < s.health.length) lines.push(`${s.health.blocks} of ${s.health.length} blocks held`)
        lines.push(damaged
          ? `DAMAGED: fetch what is missing with \`nomadcore repair ${dir} --connect HOST:PORT\``
          : 'clean')
        report(opts, {
          dir,
          blocks: s.blocks,
          verifiedBlocks: s.verifiedBlocks,
          corruptBlocks: s.corruptBlocks,
          unverifiedBlocks: s.unverifiedBlocks,
          restoredNodes: s.restoredNodes,
          droppedNodes: s.droppedNodes,
          clearedBlocks: s.cleared,
          repairMode: s.repairMode,
          tree: { missingRoots: s.health.missingRoots, missingNodes: s.health.missingNodes, missing: s.health.missing },
          clean: !damaged,
          ms: s.ms
        }, lines)
        return damaged ? 2 : 0
      } finally {
        await closeQuietly(core)
      }
    }))
}
