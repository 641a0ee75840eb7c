import type { Command } from 'commander'
import { openExisting, closeQuietly, hex } from '../util/core'
import { treeHealth, describeHealth } from '../util/health'
import { report, formatBytes } from '../util/output'
import { action, withJson } from '../util/run'

interface Options { json?: boolean }

export function register (program: Command): void {
  withJson(program.command('info')
    .argument('<dir>', 'directory of a core')
    .description('show key, lengths, fork, repair mode, blocks held and tree health (reads only)'))
    .action(action(async (dir: string, opts: Options) => {
      const core = await openExisting(dir, { readOnly: true })
      try {
        const info = await core.info()
        const health = await treeHealth(core, dir)
        const writable = core.keyPair !== null
        const out = {
          dir,
          key: hex(info.key),
          discoveryKey: hex(info.discoveryKey),
          length: info.length,
          byteLength: info.byteLength,
          contiguousLength: info.contiguousLength,
          fork: info.fork,
          writable,
          repairMode: info.repairMode,
          blocks: health.blocks,
          tree: {
            roots: health.roots.length,
            rootsPresent: health.roots.length - health.missingRoots.length,
            missingRoots: health.missingRoots,
            expectedNodes: health.expectedNodes,
            missingNodes: health.missingNodes,
            missing: health.missing
          },
          healthy: health.healthy
        }
        report(opts, out, [
          `key             ${out.key}`,
          `discovery key   ${out.discoveryKey}`,
          `length          ${out.length} blocks`,
          `byte length     ${out.byteLength} bytes (${formatBytes(out.byteLength)})`,
          `fork            ${out.fork}`,
          `writable        ${writable ? 'yes (this is the writer)' : 'no (a copy)'}`,
          `repair mode     ${out.repairMode ? 'ON: appends are refused until the tree is repaired' : 'off'}`,
          `blocks held     ${out.blocks} of ${out.length} (contiguous ${out.contiguousLength})`,
          `tree            ${describeHealth(health)}`,
          `health          ${out.healthy ? 'healthy' + (out.blocks < out.length ? ` (a partial copy: ${out.blocks} of ${out.length} blocks)` : '') : 'DAMAGED: run `nomadcore repair ' + dir + ' --connect HOST:PORT` (or --proof FILE)'}`
        ])
      } finally {
        await closeQuietly(core)
      }
    }))
}
