import type { Command } from 'commander'
import { once } from 'events'
import b4a from 'b4a'
import { CliError, describeError } from '../util/errors'
import { openExisting, closeQuietly, parseCount } from '../util/core'
import { action, withJson } from '../util/run'

interface Options { json?: boolean, start?: string, end?: string, raw?: boolean }

const utf8 = new TextDecoder('utf-8', { fatal: true })

export function register (program: Command): void {
  withJson(program.command('cat')
    .argument('<dir>', 'directory of a core')
    .option('--start <n>', 'first block (default 0)')
    .option('--end <n>', 'stop before this block (default: the length)')
    .option('--raw', 'write blocks back to back, with no newline after each (round-trips append --block-size)')
    .description('print blocks, each followed by a newline (--raw: as stored; --json: an array of {index, text|base64})'))
    .action(action(async (dir: string, opts: Options) => {
      const start = opts.start === undefined ? 0 : parseCount(opts.start, '--start')
      const endOpt = opts.end === undefined ? null : parseCount(opts.end, '--end')
      const core = await openExisting(dir, { readOnly: true })
      try {
        const end = endOpt ?? core.length
        if (end > core.length) throw new CliError(`--end ${end} is past the length of ${dir} (${core.length} blocks)`)
        if (start > end) throw new CliError(`--start ${start} is after --end ${end}`)
        const out = process.stdout
        const write = async (s: string | Uint8Array): Promise<void> => {
          if (!out.write(s)) await once(out, 'drain')
        }
        if (opts.json === true) await write('[')
        for (let i = start; i < end; i++) {
          let block: Uint8Array | null
          try {
            block = await core.get(i, { wait: false }) as Uint8Array | null
          } catch (err) {
            throw new CliError(`block ${i} of ${dir} cannot be read: ${describeError(err, dir)}`)
          }
          if (block === null) throw new CliError(`block ${i} is not stored in ${dir} (clone it, or repair it from a peer)`)
          if (opts.json === true) {
            await write((i === start ? '\n' : ',\n') + JSON.stringify(jsonBlock(i, block)))
          } else {
            await write(block)
            if (opts.raw !== true) await write('\n')
          }
        }
        if (opts.json === true) await write(end > start ? '\n]\n' : ']\n')
      } finally {
        await closeQuietly(core)
      }
    }))
}

function jsonBlock (index: number, block: Uint8Array): { index: number, byteLength: number, text?: string, base64?: string } {
  try {
    return { index, byteLength: block.byteLength, text: utf8.decode(block) }
  } catch {
    return { index, byteLength: block.byteLength, base64: b4a.toString(block as Buffer, 'base64') }
  }
}
