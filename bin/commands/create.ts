import type { Command } from 'commander'
import type { Hypercore } from '../../lib/hypercore'
import { CliError } from '../util/errors'
import { dirState, openCore, hex, z32, closeQuietly } from '../util/core'
import { report } from '../util/output'
import { action, withJson } from '../util/run'

interface Options { json?: boolean }

export function register (program: Command): void {
  withJson(program.command('create')
    .argument('<dir>', 'directory for the new core (created; must not exist or be empty)')
    .description('create a new writable core in DIR and print its key'))
    .action(action(async (dir: string, opts: Options) => {
      const state = dirState(dir)
      if (state === 'core') throw new CliError('CORE_EXISTS', `${dir} already holds a core: refusing to overwrite it`)
      if (state === 'other') throw new CliError('CORE_EXISTS', `${dir} is not empty: refusing to create a core among other files`)
      const core: Hypercore = await openCore(dir, null, {})
      try {
        const out = { dir, key: hex(core.key), id: z32(core.key), discoveryKey: hex(core.discoveryKey), length: core.length }
        report(opts, out, [
          `created a core in ${dir}`,
          `key            ${out.key}`,
          `id             ${out.id}`,
          `discovery key  ${out.discoveryKey}`
        ])
      } finally {
        await closeQuietly(core)
      }
    }))
}
