/**
 * Hypercore 11's own fork scenarios (its test/replicate.js: replication from
 * a fork, eager replication from a bigger fork, a high-latency reorg,
 * contiguous length after a fork), each between nomadcore peers and with
 * Hypercore 11 on either side: the peers converge. And a watchdog: peers on
 * forks that cannot agree exchange a handful of messages, not a flood, and
 * the event loop stays free.
 */
import test from 'brittle'
import { spawn } from 'child_process'
import * as path from 'path'
import { Transform } from 'stream'
import b4a from 'b4a'
import { makeCore, connect, forkBlocks, follows, differingBlocks, type AnyCore, type Impl } from './helpers/forks'
import type { Pipeable } from './helpers/replication'
import type { WatchdogResult } from './fixtures/fork-watchdog'

const PAIRS: Array<[Impl, Impl]> = [['nomad', 'nomad'], ['hc11', 'nomad'], ['nomad', 'hc11']]

function letters (s: string): Uint8Array[] {
  return s.split('').map(c => b4a.from(c))
}

for (const [w, r] of PAIRS) {
  const pair = w + ' writer → ' + r + ' reader'

  test(pair + ': replication from a fork', async t => {
    const a = await makeCore(t, w)
    await a.append(letters('abcde'))
    await a.truncate(4)
    await a.append(letters('e'))
    t.is(a.fork, 1)
    const b = await makeCore(t, r, a.key)
    connect(t, a, b)
    let downloads = 0
    b.on('download', () => downloads++)
    await b.download({ start: 0, end: a.length }).done()
    t.is(downloads, 5, 'each block downloaded once')
    t.is(b.fork, a.fork)
    t.alike(await differingBlocks(b, a), [])
  })

  test(pair + ': eager replication from a bigger fork', async t => {
    const a = await makeCore(t, w)
    const b = await makeCore(t, r, a.key)
    await a.append(letters('abcdeghijk'))
    await a.truncate(4)
    await a.append([b4a.from('FORKED'), ...letters('ghijk')])
    connect(t, a, b) // only now: the fork is not learned from an upgrade
    t.is(a.fork, 1)
    let downloads = 0
    b.on('download', () => downloads++)
    await b.download({ start: 0, end: a.length }).done()
    t.is(downloads, a.length)
    t.is(b.fork, a.fork)
    t.alike(await differingBlocks(b, a), [])
  })

  test(pair + ': a high-latency reorg', async t => {
    const a = await makeCore(t, w)
    const b = await makeCore(t, r, a.key)
    const first = connect(t, a, b)
    for (let i = 0; i < 50; i++) await a.append([b4a.from('data')])
    await b.download({ start: 0, end: a.length }).done()
    first.destroy()
    await a.truncate(30)
    for (let i = 0; i < 50; i++) await a.append([b4a.from('fork')])
    slowLink(t, a, b, 25) // every chunk each way arrives 25 ms late
    await b.download({ start: 0, end: a.length }).done()
    let same = 0
    for (let i = 0; i < a.length; i++) {
      if (b4a.equals(await a.get(i) as Uint8Array, await b.get(i) as Uint8Array)) same++
    }
    t.is(a.fork, 1)
    t.is(b.fork, a.fork)
    t.is(same, 80)
  })

  test(pair + ': contiguous length after a fork', async t => {
    const a = await makeCore(t, w)
    const b = await makeCore(t, r, a.key)
    const first = connect(t, a, b)
    await a.append(letters('abcde'))
    await follows(b, a)
    first.destroy()
    await a.truncate(2)
    await a.append(letters('f'))
    t.is(a.contiguousLength, 3)
    connect(t, a, b)
    await b.download({ start: 0, end: a.length }).done()
    t.is(b.contiguousLength, 3, 'the reader holds every block of the fork')
    t.is(b.fork, a.fork)
    t.alike(await differingBlocks(b, a), [])
  })
}

test('nomadcore writer on a fork → Hypercore 11 relay → nomadcore reader: blocks of the new fork only', async t => {
  const a = await makeCore(t, 'nomad')
  await a.append(forkBlocks(0, 0, 40))
  await a.truncate(25)
  await a.append(forkBlocks(1, 25, 5))
  const relay = await makeCore(t, 'hc11', a.key)
  const b = await makeCore(t, 'nomad', a.key)
  connect(t, a, relay)
  connect(t, relay, b)
  relay.download({ start: 0, end: -1 })
  await follows(b, a)
  t.alike(await differingBlocks(b, a), [])
})

// ---------------------------------------------------------------------------
// Watchdog

function runWatchdog (which: string): Promise<{ status: number | null, result: WatchdogResult | null, stderr: string }> {
  const script = path.join(__dirname, 'fixtures', 'fork-watchdog.js')
  return new Promise(resolve => {
    // A loop that starves the event loop never prints: the kill ends it.
    const child = spawn(process.execPath, [script, which], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.on('close', status => {
      const line = out.split('\n').find(l => l.startsWith('RESULT '))
      resolve({ status, result: line === undefined ? null : JSON.parse(line.slice(7)) as WatchdogResult, stderr: err })
    })
  })
}

test('watchdog: peers on forks that cannot agree stay connected 5 s with few messages and a free event loop', async t => {
  const cases = ['nomad-nomad', 'nomad-hc11', 'hc11-nomad', 'refusing']
  const runs = await Promise.all(cases.map(runWatchdog))
  for (let k = 0; k < cases.length; k++) {
    const { status, result, stderr } = runs[k]!
    const name = cases[k]!
    t.is(status, 0, name + ': the child finished' + (stderr ? ' (' + stderr.trim().split('\n')[0] + ')' : ''))
    if (result === null) continue
    t.ok(result.messages < 50, name + ': ' + result.messages + ' messages in 5 s')
    t.ok(result.ticks > 0, name + ': the timer fired')
    t.ok(result.connected, name + ': still connected')
    t.not(result.forks[0], result.forks[1], name + ': still on different forks (neither can follow the other)')
  }
})

/** Connects `a` and `b` with every chunk, each way, delayed by `ms` (order kept). */
function slowLink (t: { teardown (fn: () => unknown): void }, a: AnyCore, b: AnyCore, ms: number): void {
  const s1 = a.replicate(true, { keepAlive: false }) as Pipeable
  const s2 = b.replicate(false, { keepAlive: false }) as Pipeable
  const delay = (): Transform => new Transform({
    transform (chunk, _enc, done) {
      setTimeout(() => done(null, chunk), ms)
    }
  })
  const noop = (): void => {}
  s1.on('error', noop)
  s2.on('error', noop)
  s1.pipe(delay()).pipe(s2).pipe(delay()).pipe(s1)
  t.teardown(() => {
    s1.destroy()
    s2.destroy()
  })
}
