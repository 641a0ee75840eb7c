import type { Command } from 'commander'
import { once } from 'events'
import b4a from 'b4a'
import { CliError } from '../util/errors'
import { parseCount } from '../util/core'
import { openAccess } from '../util/access'
import { action, withJson } from '../util/run'

interface Options { json?: boolean, start?: string, end?: string, raw?: boolean }

const utf8 = new TextDecoder('utf-8', { fatal: true })

export function register (program: Command): void {
  withJson(program.command('cat')
    .argument('<dir>', 'directory of a core')
    .option('--start <n>', 'first block (default 0)')
    .option('--end <n>', 'stop before this block (default: the length)')
    .option('--raw', 'write blocks back to back, with no newline after each (round-trips append --block-size)')
    .description('print blocks, each followed by a newline (--raw: as stored; --json: an array of {index, text|base64}); asks a running serve if there is one')
    .addHelpText('after', `
With --json, an error found before the first block is the only output
({"error": {...}}); one found midway closes the array and follows it on the
next line.`))
    .action(action(async (dir: string, opts: Options) => {
      const start = opts.start === undefined ? 0 : parseCount(opts.start, '--start')
      const endOpt = opts.end === undefined ? null : parseCount(opts.end, '--end')
      const access = await openAccess(dir)
      const json = opts.json === true
      let opened = false
      try {
        const { length } = await access.status()
        const end = endOpt ?? length
        if (end > length) throw new CliError('USAGE', `--end ${end} is past the length of ${dir} (${length} blocks)`)
        if (start > end) throw new CliError('USAGE', `--start ${start} is after --end ${end}`)
        const out = process.stdout
        const write = async (s: string | Uint8Array): Promise<void> => {
          if (!out.write(s)) await once(out, 'drain')
        }
        for (let i = start; i < end;) {
          const batch = await access.read(i, end)
          for (const block of batch.blocks) {
            if (block === null) throw new CliError('NOT_STORED', `block ${i} is not stored in ${dir} (clone it, or repair it from a peer)`)
            if (json) {
              await write((opened ? ',\n' : '[\n') + JSON.stringify(jsonBlock(i, block)))
              opened = true
            } else {
              await write(block)
              if (opts.raw !== true) await write('\n')
            }
            i++
          }
          if (batch.error !== null) throw batch.error
          if (batch.blocks.length === 0) throw new CliError('INTERNAL', `no progress reading block ${i} of ${dir}`)
        }
        if (json) await write(opened ? '\n]\n' : '[]\n')
      } catch (err) {
        // The error object follows a complete array, on its own line.
        if (json && opened) process.stdout.write('\n]\n')
        throw err
      } finally {
        await access.close()
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
