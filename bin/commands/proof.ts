import type { Command } from 'commander'
import * as fs from 'fs'
import b4a from 'b4a'
import { CliError, describeError, errorCode } from '../util/errors'
import { parseCount } from '../util/core'
import { openAccess } from '../util/access'
import { report, note } from '../util/output'
import { action, withJson } from '../util/run'

interface Options { json?: boolean, output?: string }

export function register (program: Command): void {
  withJson(program.command('proof')
    .argument('<dir>', 'directory of a healthy core')
    .argument('<node>', 'tree node index (node i covers blocks; block b is node 2b)')
    .option('-o, --output <file>', 'write the proof to FILE instead of stdout')
    .description('write a fully remote proof for tree node NODE (binary, to stdout): `nomadcore repair OTHER --proof FILE` restores the node; asks a running serve if there is one')
    .addHelpText('after', `
The proof carries the core's discovery key and is checked against the signed
tree, so it can travel over any channel. Hypercore 11 accepts it too.

Example:
  nomadcore proof ./healthy 15 > node15.proof
  nomadcore repair ./damaged --proof node15.proof`))
    .action(action(async (dir: string, nodeArg: string, opts: Options) => {
      const node = parseCount(nodeArg, 'NODE')
      if (opts.output === undefined && opts.json !== true && process.stdout.isTTY === true) {
        throw new CliError('USAGE', 'refusing to write a binary proof to a terminal: redirect stdout to a file, or use --output FILE')
      }
      const access = await openAccess(dir)
      let bytes: Uint8Array
      let discoveryKey: string
      try {
        discoveryKey = (await access.status()).discoveryKey
        bytes = await access.proof(node)
      } finally {
        await access.close()
      }
      if (opts.output !== undefined) {
        try {
          fs.writeFileSync(opts.output, bytes)
        } catch (err) {
          throw new CliError(errorCode(err), describeError(err))
        }
        report(opts, { node, bytes: bytes.byteLength, output: opts.output, discoveryKey },
          [`wrote a proof for tree node ${node} (${bytes.byteLength} bytes) to ${opts.output}`])
      } else if (opts.json === true) {
        report(opts, { node, bytes: bytes.byteLength, discoveryKey, proof: b4a.toString(bytes as Buffer, 'base64') }, [])
      } else {
        process.stdout.write(bytes)
        note(opts, `proof for tree node ${node}: ${bytes.byteLength} bytes`)
      }
    }))
}
