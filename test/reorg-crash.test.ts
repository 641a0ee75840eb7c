/**
 * A reorg cut short at every write it makes: the core reopens on the old
 * fork or the new one (in repair mode at worst), never reads a block of the
 * fork it is not on, and follows the writer again once connected.
 */
import test from 'brittle'
import b4a from 'b4a'
import type { RandomAccessStorage } from 'random-access-storage'
import { Hypercore } from '../lib/hypercore'
import { blocks } from './helpers/core'
import { memoryFiles } from './helpers/storage'
import { ramCore, replicate, until, sleep } from './helpers/replication'
import { forkBlocks, follows, differingBlocks, type AnyCore } from './helpers/forks'

const FILES = ['header', 'tree', 'data', 'bitfield']

/** In-memory files where, once armed, every write after the first `budget` fails and lands nothing: a crash. */
function crashableFiles (): { factory: (name: string) => RandomAccessStorage, snapshot (): Map<string, Uint8Array>, restore (s: Map<string, Uint8Array>): void, arm (budget: number): void, disarm (): void, readonly crashed: boolean, readonly used: number } {
  const files = memoryFiles()
  let budget = Infinity
  let used = 0
  let crashed = false
  const factory = (name: string): RandomAccessStorage => {
    const ram = files.factory(name) as unknown as Record<string, (...args: unknown[]) => void>
    for (const op of ['write', 'del', 'truncate']) {
      const real = ram[op]!.bind(ram)
      ram[op] = (...args: unknown[]) => {
        const cb = args[args.length - 1] as (err: Error | null) => void
        if (used >= budget) {
          crashed = true
          cb(new Error('Crashed'))
          return
        }
        used++
        real(...args)
      }
    }
    return ram as unknown as RandomAccessStorage
  }
  return {
    factory,
    snapshot: () => new Map(FILES.map(n => [n, b4a.from(files.bytes(n))])),
    restore: s => { for (const [n, bytes] of s) files.replace(n, bytes) },
    arm: n => {
      crashed = false
      used = 0
      budget = n
    },
    disarm: () => { budget = Infinity },
    get crashed () { return crashed },
    get used () { return used }
  }
}

test('a reorg interrupted at any of its writes reopens without a block of the other fork, and follows the writer', async t => {
  const w = await ramCore(t)
  const old = blocks(40)
  await w.append(old)
  const files = crashableFiles()

  // A reader that holds all 40 blocks of fork 0.
  {
    const r = new Hypercore(files.factory, w.key)
    await r.ready()
    const link = replicate(t, w, r)
    await r.download({ start: 0, end: 40 }).done()
    link.destroy()
    await r.close()
  }
  const before = files.snapshot()
  await w.truncate(25)
  await w.append(forkBlocks(1, 25, 10))

  // How many writes the reorg makes, uninterrupted.
  files.restore(before)
  let writes: number
  {
    const r = new Hypercore(files.factory, w.key)
    await r.ready()
    files.arm(Infinity)
    const link = replicate(t, w, r)
    await until(() => r.fork === 1 && r.length === 35)
    writes = files.used
    link.destroy()
    await r.close()
  }
  t.ok(writes >= 4, 'the reorg makes ' + writes + ' writes')

  const outcomes = new Set<string>()
  for (let k = 0; k < writes; k++) {
    files.restore(before)
    files.disarm()
    const r = new Hypercore(files.factory, w.key)
    await r.ready()
    files.arm(k)
    const link = replicate(t, w, r)
    await until(() => files.crashed || r.fork === 1, 5000)
    await sleep(20)
    link.destroy()
    await r.close().catch(() => {})
    files.disarm()

    const again = new Hypercore(files.factory, w.key)
    await again.ready()
    outcomes.add('fork ' + again.fork + (again.repairMode ? ' in repair mode' : ''))
    let wrong = 0
    for (let i = 0; i < again.length; i++) {
      let block: Uint8Array | null
      try {
        block = await again.get(i, { wait: false }) as Uint8Array | null
      } catch (err) {
        if ((err as { code?: string }).code === undefined) throw err
        continue // a coded error (a node it must repair first) is fine; a wrong byte is not
      }
      if (block === null) continue
      const expected = again.fork === 0 ? old[i]! : await w.get(i) as Uint8Array
      if (!b4a.equals(block, expected)) wrong++
    }
    t.is(wrong, 0, 'crash after ' + k + ' writes: reopened on fork ' + again.fork + (again.repairMode ? ' (repair mode)' : '') + ', no block of another fork')
    replicate(t, w, again)
    await follows(again as unknown as AnyCore, w as unknown as AnyCore, 10000)
    t.alike(await differingBlocks(again as unknown as AnyCore, w as unknown as AnyCore, 5000), [], 'crash after ' + k + ' writes: follows the writer again')
    await again.close()
  }
  t.comment('reopened as: ' + [...outcomes].join(', '))
})
