/**
 * Replication between two processes over TCP, the way a user runs it: the
 * writer served by one child process, a clone made by another. nomadcore:
 * `nomadcore serve DIR --json` and `nomadcore clone KEY DIR --connect
 * 127.0.0.1:PORT --json`; Hypercore 11: the same with bench/hypercore-peer.ts.
 * Each side has a process (and, on two cores, a core) of its own.
 */
import * as fs from 'fs'
import * as path from 'path'
import { spawn, type ChildProcess } from 'child_process'
import { buildCore } from './replication'
import { blockPool, fmtInt, fmtOps, type BenchEnv, type Column, type Contender, type Row, type RowResult, type Section, type Trial } from './harness'

const BLOCK_SIZE = 1024
const POOL = blockPool(0xc10e, 256, BLOCK_SIZE)
const DIST = path.join(__dirname, '..')
const NOMADCORE_BIN = path.join(DIST, 'bin', 'nomadcore.js')
const HYPERCORE_PEER = path.join(DIST, 'bench', 'hypercore-peer.js')

/** The writer's directory per contender and size, filled once (untimed) and closed. */
function writerDir (contender: Contender, env: BenchEnv, n: number): Promise<{ dir: string, key: string }> {
  return env.memo(contender, `clone-writer-${n}`, async () => {
    const dir = env.tmpDir(`${contender.name}-clone-writer-${n}`)
    const core = await buildCore(contender, env, dir, n, i => POOL[i % POOL.length]!, 1000)
    const key = Buffer.from(core.key).toString('hex')
    await core.close()
    return { dir, key }
  })
}

/** Lines a child writes to stdout, as they come. */
function lines (child: ChildProcess, online: (line: string) => void): void {
  let buffered = ''
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk
    let nl
    while ((nl = buffered.indexOf('\n')) !== -1) {
      online(buffered.slice(0, nl))
      buffered = buffered.slice(nl + 1)
    }
  })
}

interface Server {
  port: number
  stop (): Promise<void>
}

/** The serving process, kept running across rounds; resolves once it listens. */
function startServer (contender: Contender, dir: string): Promise<Server> {
  const child = contender.name === 'nomadcore'
    ? spawn(process.execPath, [NOMADCORE_BIN, 'serve', dir, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [HYPERCORE_PEER, 'serve', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  return new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`${contender.name} server exited (${code}) before listening`)))
    lines(child, line => {
      let msg: { event?: string, port?: number }
      try { msg = JSON.parse(line) } catch { return }
      if (typeof msg.port !== 'number') return
      resolve({
        port: msg.port,
        async stop () {
          child.kill('SIGTERM')
          await exited
        }
      })
    })
  })
}

/** Runs a clone child to the end; what it printed as JSON. */
function runClone (args: string[], viaPty: boolean): Promise<Record<string, unknown>> {
  // Under `script`, the clone's stderr is a terminal: its progress bar is drawn, as for a user.
  const child = viaPty
    ? spawn('script', ['-qfec', [process.execPath, ...args].map(a => `'${a}'`).join(' '), '/dev/null'], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  lines(child, line => { out += line + '\n' })
  return new Promise((resolve, reject) => {
    child.once('exit', code => {
      if (code !== 0) {
        reject(new Error(`clone exited with ${code}: ${out.slice(-500)}`))
        return
      }
      // One JSON object (nomadcore prints it over several lines); none when the bar was drawn instead.
      try {
        resolve(JSON.parse(out.slice(out.indexOf('{'))))
      } catch {
        resolve({})
      }
    })
  })
}

function cloneRow (id: string, n: number, opts: { bar: boolean, label: string, note: string }): Row {
  return {
    id,
    label: opts.label,
    unit: 'block',
    rounds: { max: 2 },
    warmup: false,
    quick: false,
    note: opts.note,
    ...(opts.bar ? { contenders: ['nomadcore'] } : {}),
    async prepare (contender, env): Promise<Trial> {
      const blocks = env.count(n, 2000)
      const writer = await writerDir(contender, env, blocks)
      const server = await env.shared(contender, `clone-server-${blocks}`, () => startServer(contender, writer.dir), s => s.stop())
      const dir = env.tmpDir(`${contender.name}-clone-${blocks}`)
      fs.rmSync(dir, { recursive: true, force: true })
      const args = contender.name === 'nomadcore'
        ? [NOMADCORE_BIN, 'clone', writer.key, dir, '--connect', `127.0.0.1:${server.port}`, ...(opts.bar ? [] : ['--json'])]
        : [HYPERCORE_PEER, 'clone', writer.key, dir, String(server.port)]
      let result: Record<string, unknown> = {}
      return {
        ops: blocks,
        async run () {
          result = await runClone(args, opts.bar)
          const metrics: Record<string, number> = {}
          if (typeof result.ms === 'number') metrics.cloneMs = result.ms
          return metrics
        },
        async dispose () {
          await fs.promises.rm(dir, { recursive: true, force: true })
          if (!opts.bar && result.length !== blocks) throw new Error(`${contender.name}: clone reported length ${String(result.length)}, not ${blocks}`)
        }
      }
    }
  }
}

export const cloneTcp = cloneRow('clone-tcp', 100_000, {
  bar: false,
  label: `clone ${fmtInt(100_000)} × 1 KiB over TCP, serve and clone in two processes`,
  note: 'A writer of 100,000 blocks of 1 KiB on disk (built untimed), served by a child process (`nomadcore serve DIR --json`; Hypercore 11: bench/hypercore-peer.js, the same over TCP and a Noise secret stream), kept running across rounds. Timed: a second child process that clones it into a fresh directory (`nomadcore clone KEY DIR --connect 127.0.0.1:PORT --json`), from spawning it until it exits: process start, connection, handshake, download, close. The clone table also gives the time the clone itself reports (from asking for the length to the last block).'
})

export const cloneTcpBar = cloneRow('clone-tcp-bar', 100_000, {
  bar: true,
  label: `the same clone with its progress bar drawn (stderr a terminal)`,
  note: 'As clone-tcp for nomadcore, without `--json` and run under `script` so that stderr is a terminal and the progress bar is drawn, as a user sees it. The bar reads the count of blocks held five times a second; nothing is done per block.'
})

export const cloneRows: readonly Row[] = [cloneTcp, cloneTcpBar]

export const cloneSection: Section = {
  title: 'Clone over TCP, two processes',
  rows: cloneRows.map(r => r.id),
  table (results: readonly RowResult[], contenders: readonly Contender[]) {
    const columns: Column[] = [
      { header: 'benchmark', align: 'left' },
      { header: 'blocks', align: 'right' },
      ...contenders.flatMap((c): Column[] => [
        { header: `${c.name} blocks/s (wall)`, align: 'right' },
        { header: `${c.name} s (wall)`, align: 'right' },
        { header: `${c.name} download s (as reported)`, align: 'right' },
        { header: `${c.name} download blocks/s`, align: 'right' }
      ])
    ]
    const rows = results.map(r => {
      const cells = [r.row.id, fmtInt([...r.results.values()][0]?.ops ?? 0)]
      for (const c of contenders) {
        const m = r.results.get(c.name)
        if (m === undefined) {
          cells.push('-', '-', '-', '-')
          continue
        }
        const ms = m.metrics[m.bestRound]?.cloneMs
        cells.push(fmtOps(m.best), (m.ops / m.best).toFixed(2), ms === undefined ? '-' : (ms / 1000).toFixed(2), ms === undefined ? '-' : fmtOps(m.ops / (ms / 1000)))
      }
      return cells
    })
    return { columns, rows }
  },
  notes: 'Best round. *wall*: from spawning the clone process until it exits (Node start, connect, Noise handshake, download, close). *as reported*: the time the clone itself reports, from asking the peer for the length to the last block stored (nomadcore\'s `ms` in `--json`; hypercore-peer.js the same span). clone-tcp-bar draws the progress bar; compare its wall time with clone-tcp\'s.'
}
