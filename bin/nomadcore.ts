#!/usr/bin/env node
/**
 * nomadcore: the operator CLI. Create, fill, read, serve, clone, audit and
 * repair cores from the shell. Every command has --help and --json; bad input
 * gets one line on stderr and a non-zero exit code.
 */
// First: it notes a Ctrl-C that comes while the rest loads (see signals.ts).
import './util/signals'
import { Command } from 'commander'
import * as fs from 'fs'
import * as path from 'path'
import { fail, printError, runCleanups, wantsJson } from './util/run'
import { flushStdout } from './util/output'
import { register as create } from './commands/create'
import { register as append } from './commands/append'
import { register as cat } from './commands/cat'
import { register as info } from './commands/info'
import { register as serve } from './commands/serve'
import { register as clone } from './commands/clone'
import { register as audit } from './commands/audit'
import { register as repair } from './commands/repair'
import { register as proof } from './commands/proof'
import { register as demo } from './commands/demo'
import { register as importCmd } from './commands/import'

function version (): string {
  for (const p of [path.join(__dirname, '..', '..', 'package.json'), path.join(__dirname, '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(fs.readFileSync(p, 'utf-8')) as { name?: string, version?: string }
      if (pkg.name === 'nomadcore' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  return '0.0.0'
}

export async function main (argv: string[]): Promise<number> {
  const program = new Command()
  program
    .name('nomadcore')
    .description('A self-healing, Hypercore 11 compatible append-only log: create, replicate, audit and repair cores.')
    .version(version(), '-V, --version')
    .showSuggestionAfterError()
    .configureOutput({
      // commander's own errors (unknown option, missing argument): one line, our prefix, or JSON.
      outputError: (str, write) => {
        const message = str.replace(/^error: /, '').replace(/\n+$/, '').replace(/\s*\n\s*/g, ' ')
        if (wantsJson(argv)) printError('USAGE', message, true)
        else write('nomadcore: ' + message + '\n')
      }
    })
    .addHelpText('after', `
Try it:
  nomadcore demo                      the whole self-healing story in a temp directory
  nomadcore create ./log && echo hi | nomadcore append ./log - && nomadcore cat ./log`)
  for (const reg of [create, append, cat, info, serve, clone, audit, repair, proof, importCmd, demo]) reg(program)
  await program.parseAsync(argv)
  return typeof process.exitCode === 'number' ? process.exitCode : 0
}

// `nomadcore … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') {
    runCleanups()
    process.exit(0)
  }
})
process.on('uncaughtException', (err) => { runCleanups(); process.exit(fail(err)) })
process.on('unhandledRejection', (err) => { runCleanups(); process.exit(fail(err)) })

main(process.argv).then(
  async (code) => {
    await flushStdout()
    process.exit(code)
  },
  (err) => process.exit(fail(err))
)
