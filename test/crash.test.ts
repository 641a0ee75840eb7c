/**
 * SIGKILL at any moment, mid-append or mid-truncate: the core reopens
 * consistent. Every operation that resolved is there, no block lacks its
 * tree nodes, and the length is never beyond what is stored.
 */
import test from 'brittle'
import { spawn } from 'child_process'
import * as path from 'path'
import b4a from 'b4a'
import { Hypercore, freshDir } from './helpers/core'
import { content } from './fixtures/crash-writer'

interface State { length: number, fork: number, blocks: Map<number, Uint8Array> }

function apply (s: State, line: string): State {
  const [, op, a, b, c] = line.split(' ')
  const next: State = { length: s.length, fork: s.fork, blocks: new Map(s.blocks) }
  if (op === 'append') {
    const fork = Number(a)
    const start = Number(b)
    const n = Number(c)
    for (let i = 0; i < n; i++) next.blocks.set(start + i, content(fork, start + i))
    next.length = start + n
  } else {
    next.length = Number(a)
    next.fork = Number(b)
    for (const k of [...next.blocks.keys()]) if (k >= next.length) next.blocks.delete(k)
  }
  return next
}

/** Runs the writer, kills it after `ms`, returns the acked state and the one in flight. */
function runAndKill (dir: string, seed: number, ms: number, start: State): Promise<{ acked: State, inFlight: State | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'crash-writer.js'), dir, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let acked = start
    let inFlight: State | null = null
    let buf = ''
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString()
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.startsWith('begin')) inFlight = apply(acked, line)
        else if (line === 'done' && inFlight !== null) {
          acked = inFlight
          inFlight = null
        }
      }
    })
    setTimeout(() => child.kill('SIGKILL'), ms)
    child.on('error', reject)
    // 'close', not 'exit': lines still in the pipe after the kill must be read.
    child.on('close', () => resolve({ acked, inFlight }))
  })
}

async function checkConsistent (t: { ok: (v: unknown, m?: string) => void, is: (a: unknown, b: unknown, m?: string) => void }, dir: string, acked: State, inFlight: State | null): Promise<State> {
  const core = new Hypercore(dir)
  await core.ready()
  try {
    const matches = (s: State | null): boolean => s !== null && s.length === core.length && s.fork === core.fork
    const state = matches(acked) ? acked : inFlight
    t.ok(matches(acked) || matches(inFlight), `reopened at length ${core.length} fork ${core.fork}; acked ${acked.length}/${acked.fork}`)
    t.is(core.repairMode, false, 'no repair mode after a crash')
    if (state === null) return acked
    // Whole tree still proves under the stored signature.
    if (core.length > 0) {
      const proof = await core.proof({ upgrade: { start: 0, length: core.length } })
      const verified = await core.verifyFullyRemote(proof)
      t.is(verified.length, core.length, 'signed tree verifies')
    }
    let good = 0
    for (let i = 0; i < core.length; i++) {
      const block = await core.get(i, { wait: false }) as Uint8Array | null
      if (block !== null && b4a.equals(block, state.blocks.get(i)!)) good++
    }
    t.is(good, core.length, 'every block is stored and right')
    await core.append(b4a.from('after crash'))
    await core.truncate(core.length - 1, core.fork)
    return state
  } finally {
    await core.close()
  }
}

test('a writer killed with SIGKILL at random moments always reopens consistent', async t => {
  const dir = freshDir(t, 'crash')
  let state: State = { length: 0, fork: 0, blocks: new Map() }
  for (let round = 0; round < 8; round++) {
    const { acked, inFlight } = await runAndKill(dir, 1000 + round, 150 + round * 37, state)
    state = await checkConsistent(t, dir, acked, inFlight)
  }
})
