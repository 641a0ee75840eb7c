import type { Command } from 'commander'
import b4a from 'b4a'
import { CliError, describeError, errorCode } from '../util/errors'
import { parseCount } from '../util/core'
import { openAccess } from '../util/access'
import { report, formatBytes } from '../util/output'
import { action, withJson } from '../util/run'

interface Options { json?: boolean, blockSize?: string }

/** Blocks per append call, and bytes: each call is one atomic write. */
const BATCH_BLOCKS = 1024
const BATCH_BYTES = 4 * 1024 * 1024

export function register (program: Command): void {
  withJson(program.command('append')
    .argument('<dir>', 'directory of a core you created (writable)')
    .argument('[text]', 'one block to append; "-" (or nothing, with piped input) reads stdin')
    .option('--block-size <n>', 'split the input into blocks of N bytes instead of one block per line')
    .description('append blocks: TEXT as one block, or stdin one block per line (the newline is not stored)')
    .addHelpText('after', `
Examples:
  nomadcore append ./log "hello world"
  printf 'a\\nb\\nc\\n' | nomadcore append ./log -
  nomadcore append ./log - --block-size 65536 < video.mp4`))
    .action(action(async (dir: string, text: string | undefined, opts: Options) => {
      const blockSize = opts.blockSize === undefined ? 0 : parseCount(opts.blockSize, '--block-size', 1)
      const fromStdin = text === '-' || (text === undefined && !process.stdin.isTTY)
      if (text === undefined && !fromStdin) throw new CliError('USAGE', 'nothing to append: give TEXT, or pipe data in with "-"')

      const access = await openAccess(dir, { write: true })
      try {
        // An empty append checks that appending is possible at all, before any input is read.
        const before = await access.append([])
        let after = before
        const appendAll = async (blocks: Uint8Array[]): Promise<void> => {
          if (blocks.length === 0) return
          try {
            after = await access.append(blocks)
          } catch (err) {
            throw new CliError(errorCode(err), `append failed after ${after.length - before.length} blocks: ${describeError(err, dir)}`)
          }
        }
        if (fromStdin) await appendStream(process.stdin, blockSize, appendAll)
        else await appendAll(split(b4a.from(text!), blockSize))

        const added = after.length - before.length
        if (added === 0 && text === undefined) throw new CliError('USAGE', 'nothing to append: give TEXT, or pipe data in with "-"')
        const bytes = after.byteLength - before.byteLength
        const via = access.servedBy === null ? '' : ` (through the running serve, pid ${access.servedBy})`
        report(opts, { dir, appended: added, appendedBytes: bytes, length: after.length, byteLength: after.byteLength, servedBy: access.servedBy },
          [`appended ${added} block${added === 1 ? '' : 's'} (${formatBytes(bytes)}) to ${dir}${via}: length ${after.length}, ${formatBytes(after.byteLength)}`])
      } finally {
        await access.close()
      }
    }))
}

function split (bytes: Uint8Array, blockSize: number): Uint8Array[] {
  if (blockSize === 0) return [bytes]
  const out: Uint8Array[] = []
  for (let at = 0; at < bytes.byteLength; at += blockSize) out.push(bytes.subarray(at, at + blockSize))
  return out
}

/** Reads `input` into blocks (lines or fixed-size), appending in batches as it goes. */
async function appendStream (input: NodeJS.ReadableStream, blockSize: number, appendAll: (blocks: Uint8Array[]) => Promise<void>): Promise<void> {
  let batch: Uint8Array[] = []
  let batchBytes = 0
  let pending: Uint8Array = b4a.alloc(0)
  const push = async (block: Uint8Array): Promise<void> => {
    // A batch stays under BATCH_BYTES unless one block alone is bigger.
    if (batch.length > 0 && batchBytes + block.byteLength > BATCH_BYTES) {
      const full = batch
      batch = []
      batchBytes = 0
      await appendAll(full)
    }
    batch.push(block)
    batchBytes += block.byteLength
    if (batch.length >= BATCH_BLOCKS || batchBytes >= BATCH_BYTES) {
      const full = batch
      batch = []
      batchBytes = 0
      await appendAll(full)
    }
  }
  for await (const chunk of input as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? b4a.from(chunk) : chunk
    const buf = pending.byteLength === 0 ? bytes : b4a.concat([pending, bytes])
    if (blockSize > 0) {
      let at = 0
      for (; at + blockSize <= buf.byteLength; at += blockSize) await push(b4a.from(buf.subarray(at, at + blockSize)))
      pending = b4a.from(buf.subarray(at))
    } else {
      let start = 0
      for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
        await push(b4a.from(buf.subarray(start, nl)))
        start = nl + 1
      }
      pending = b4a.from(buf.subarray(start))
    }
  }
  if (pending.byteLength > 0) await push(pending)
  if (batch.length > 0) await appendAll(batch)
}
