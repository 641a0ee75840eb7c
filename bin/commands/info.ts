import type { Command } from 'commander'
import { openAccess } from '../util/access'
import { describeState } from '../util/info'
import { report, formatBytes } from '../util/output'
import { action, withJson } from '../util/run'

interface Options { json?: boolean }

export function register (program: Command): void {
  withJson(program.command('info')
    .argument('<dir>', 'directory of a core')
    .description('show key, lengths, fork, repair mode, blocks held and tree health (reads only; asks a running serve if there is one)')
    .addHelpText('after', `
The health line is one of: healthy; healthy (a partial copy); BEHIND (a peer
announced a longer length than this copy verified); EMPTY (a copy with nothing
verified yet); DAMAGED (repair mode, or tree nodes missing). With --json:
"state" is healthy, partial, behind, empty or damaged, and "healthy" is true
only for the first two.`))
    .action(action(async (dir: string, opts: Options) => {
      const access = await openAccess(dir)
      try {
        const i = await access.info()
        const remote = i.remoteLength === null ? [] : [`peer length     ${i.remoteLength} blocks (announced by ${i.remoteLengthFrom ?? 'a peer'}, not verified)`]
        const served = i.servedBy === null ? [] : [`served by       nomadcore serve, pid ${i.servedBy} (${i.peers} peer${i.peers === 1 ? '' : 's'} connected)`]
        const { treeSummary, ...out } = i
        report(opts, { dir, ...out }, [
          `key             ${i.key}`,
          `id              ${i.id}`,
          `discovery key   ${i.discoveryKey}`,
          `length          ${i.length} blocks`,
          `byte length     ${i.byteLength} bytes (${formatBytes(i.byteLength)})`,
          `fork            ${i.fork}`,
          `writable        ${i.writable ? 'yes (this is the writer)' : 'no (a copy)'}`,
          `repair mode     ${i.repairMode ? 'ON: appends are refused until the tree is repaired' : 'off'}`,
          `blocks held     ${i.blocks} of ${i.length} (contiguous ${i.contiguousLength})`,
          ...remote,
          ...served,
          `tree            ${treeSummary}`,
          `health          ${describeState(i, dir)}`
        ])
      } finally {
        await access.close()
      }
    }))
}
