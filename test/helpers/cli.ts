/**
 * Running the built CLI (`node dist/bin/nomadcore.js`) the way a person or a
 * script would: exit codes, stdout, stderr and files on disk, nothing else.
 */
import { spawn, type ChildProcess } from 'child_process'
import * as fs from 'fs'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import type test from 'brittle'

/** brittle's test object. */
export type Tst = test.Context

export const BIN = path.join(__dirname, '..', '..', 'bin', 'nomadcore.js')

export interface Result {
  code: number | null
  stdout: Buffer
  stderr: string
}

export interface RunOptions {
  input?: string | Uint8Array
  /** Redirect stdout into this file, as `> FILE` does. */
  stdoutFile?: string
  cwd?: string
  timeout?: number
}

/** Runs the CLI to completion. */
export function run (args: string[], opts: RunOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const out = opts.stdoutFile === undefined ? 'pipe' : fs.openSync(opts.stdoutFile, 'w')
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', out, 'pipe'],
      env: { ...process.env, NOMADCORE_DEBUG: '' }
    })
    if (typeof out === 'number') fs.closeSync(out)
    const stdout: Buffer[] = []
    let stderr = ''
    child.stdout?.on('data', (d: Buffer) => stdout.push(d))
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    if (opts.input !== undefined) child.stdin!.end(opts.input)
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out: nomadcore ${args.join(' ')}\n${stderr}`))
    }, opts.timeout ?? 15000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(stdout), stderr })
    })
  })
}

export async function ok (t: Tst, args: string[], opts: RunOptions = {}): Promise<Result> {
  const r = await run(args, opts)
  if (r.code !== 0) t.fail(`nomadcore ${args.join(' ')} exited ${String(r.code)}: ${r.stderr}`)
  return r
}

export async function json<T = Record<string, unknown>> (t: Tst, args: string[], opts: RunOptions = {}): Promise<T> {
  const r = await ok(t, [...args, '--json'], opts)
  return JSON.parse(r.stdout.toString()) as T
}

export interface Started {
  child: ChildProcess
  /** The stdout line `start` waited for. */
  first: string
  /** Everything on stdout / stderr so far. */
  stdout: () => string
  stderr: () => string
  /** Sends SIGTERM (or `signal`) unless it has exited; resolves with its exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
  /** Resolves with its exit code once it exits on its own. */
  exited: Promise<number | null>
}

/**
 * A long-running command (serve): resolves with the process once a stdout
 * line satisfies `until` (by default, the first line).
 */
export function start (args: string[], until: (line: string) => boolean = () => true): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let seen = 0
    let done = false
    const exited = new Promise<number | null>(res => child.on('close', (code) => res(code)))
    const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    }
    const timer = setTimeout(() => { void stop(); reject(new Error('no output from: nomadcore ' + args.join(' ') + '\n' + err)) }, 15000)
    child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      for (let nl = out.indexOf('\n', seen); nl !== -1 && !done; nl = out.indexOf('\n', seen)) {
        const line = out.slice(seen, nl)
        seen = nl + 1
        if (until(line)) {
          done = true
          clearTimeout(timer)
          resolve({ child, first: line, stdout: () => out, stderr: () => err, stop, exited })
        }
      }
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      if (!done) reject(new Error(`exited ${String(code)}: ${err}`))
    })
  })
}

export function tmp (t: Tst): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-cli-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }), { order: Number.MAX_SAFE_INTEGER })
  return dir
}

/** The text of block i of a core made by `filled`. */
export function lineText (i: number): string {
  return `line ${i} ${'~'.repeat(i % 5)}`
}

/** A core of `n` blocks "line 0" … made through the CLI; returns its key. */
export async function filled (t: Tst, dir: string, n: number): Promise<string> {
  const created = await json<{ key: string }>(t, ['create', dir])
  const lines = Array.from({ length: n }, (_, i) => lineText(i)).join('\n') + '\n'
  await ok(t, ['append', dir, '-'], { input: lines })
  return created.key
}

export function zeroNode (dir: string, index: number): void {
  const fd = fs.openSync(path.join(dir, 'tree'), 'r+')
  fs.writeSync(fd, new Uint8Array(40), 0, 40, 40 * index)
  fs.closeSync(fd)
}

export function flipByte (dir: string, at: number): void {
  const file = path.join(dir, 'data')
  const bytes = fs.readFileSync(file)
  bytes[at] = bytes[at]! ^ 0xff
  fs.writeFileSync(file, bytes)
}

/** Bad input: exactly one line on stderr, exit code ≠ 0, no stack trace, nothing on stdout. */
export function badInput (t: Tst, r: Result, pattern: RegExp, what: string): void {
  const lines = r.stderr.split('\n').filter(l => l !== '')
  t.ok(r.code !== 0 && r.code !== null, `${what}: non-zero exit (${String(r.code)})`)
  t.is(lines.length, 1, `${what}: one line on stderr`)
  t.ok(pattern.test(r.stderr), `${what}: says why (${lines[0] ?? ''})`)
  t.absent(/\n\s+at |Error:|node:internal/.test(r.stderr), `${what}: no stack trace`)
  t.is(r.stdout.length, 0, `${what}: nothing on stdout`)
}

/** With --json: exactly one JSON error object on stdout, nothing on stderr. */
export function jsonError (t: Tst, r: Result, code: string, pattern: RegExp, what: string): void {
  t.ok(r.code !== 0 && r.code !== null, `${what}: non-zero exit (${String(r.code)})`)
  t.is(r.stderr, '', `${what}: nothing on stderr`)
  let parsed: { error?: { code?: unknown, message?: unknown } } = {}
  try {
    parsed = JSON.parse(r.stdout.toString()) as typeof parsed
  } catch {
    t.fail(`${what}: stdout is not one JSON document: ${r.stdout.toString()}`)
  }
  t.is(parsed.error?.code, code, `${what}: error.code ${code}`)
  t.ok(typeof parsed.error?.message === 'string' && pattern.test(parsed.error.message), `${what}: error.message says why (${String(parsed.error?.message)})`)
}

/** A free TCP port on 127.0.0.1 that nothing listens on. */
export function deadPort (): Promise<number> {
  return new Promise(resolve => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}
