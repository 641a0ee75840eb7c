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
import * as fs from 'fs'
import { content } from './fixtures/crash-writer'
import { batch } from './fixtures/append-and-die'

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
    const { acked, inFlight } = await runAndKill(dir, 1000 + round, 120 + round * 23, state)
    state = await checkConsistent(t, dir, acked, inFlight)
  }
})

/** Runs the child that appends `a` then `b` blocks and SIGKILLs itself. */
function appendAndDie (dir: string, a: number, b: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'append-and-die.js'), dir, String(a), String(b)], { stdio: 'inherit' })
    child.on('error', reject)
    child.on('close', () => resolve())
  })
}

async function reopened (dir: string): Promise<{ length: number, blocks: Uint8Array[], hasAll: boolean }> {
  const core = new Hypercore(dir)
  await core.ready()
  try {
    const blocks: Uint8Array[] = []
    for (let i = 0; i < core.length; i++) blocks.push(await core.get(i, { wait: false }) as Uint8Array)
    return { length: core.length, blocks, hasAll: await core.has(0, core.length) }
  } finally {
    await core.close()
  }
}

test('a crash after an append fully landed keeps it, even if its bitfield write was lost', async t => {
  const dir = freshDir(t, 'tail-whole')
  await appendAndDie(dir, 10, 5)
  // Bits of the tail (blocks 10..14) lost; 8 and 9 were written by the first append.
  const fd = fs.openSync(path.join(dir, 'bitfield'), 'r+')
  fs.writeSync(fd, Uint8Array.of(0b00000011), 0, 1, 1)
  fs.closeSync(fd)
  const r = await reopened(dir)
  t.is(r.length, 15)
  t.ok(r.hasAll, 'bits of the checked tail are set again')
  t.alike(r.blocks, batch(0, 15))
})

test('a crash that lost the data of the last append rolls back to the state before it', async t => {
  const dir = freshDir(t, 'tail-data')
  await appendAndDie(dir, 10, 5)
  const sizeBefore = batch(0, 10).reduce((s, b) => s + b.byteLength, 0)
  fs.truncateSync(path.join(dir, 'data'), sizeBefore + 3)
  const r = await reopened(dir)
  t.is(r.length, 10, 'back to the last append that fully landed')
  t.ok(r.hasAll)
  t.alike(r.blocks, batch(0, 10))
  const again = await reopened(dir)
  t.is(again.length, 10, 'and stays there')
})

test('a crash that lost tree nodes of the last append rolls back too, and the core appends on', async t => {
  const dir = freshDir(t, 'tail-tree')
  await appendAndDie(dir, 16, 4)
  const fd = fs.openSync(path.join(dir, 'tree'), 'r+')
  fs.writeSync(fd, new Uint8Array(40), 0, 40, 40 * 35) // parent of blocks 17 and 18
  fs.closeSync(fd)
  const core = new Hypercore(dir)
  await core.ready()
  t.is(core.length, 16)
  t.is(core.repairMode, false)
  await core.append(batch(16, 4))
  t.is(core.length, 20)
  await core.close()
  const r = await reopened(dir)
  t.alike(r.blocks, batch(0, 20))
})
