/**
 * Replication between two cores of one process shares the event loop: its
 * storage answers at once, so without care requests, answers and writes
 * would chain in microtasks from the first block to the last, and no timer
 * or socket of the process would run until the download ended (as it was:
 * a 100,000-block download held the loop for two seconds). Hypercore 11's
 * timers run throughout such a download; so must ours.
 */
import test from 'brittle'
import b4a from 'b4a'
import { freshDir, openCore } from './helpers/core'
import { ramCore, replicate } from './helpers/replication'
import type { Hypercore } from '../lib/hypercore'
import type { Tst } from './helpers/cli'

const BLOCKS = 20_000

function kibBlocks (from: number, n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, k) => b4a.alloc(1024, (from + k) & 0xff))
}

async function fill (core: Hypercore): Promise<void> {
  for (let i = 0; i < BLOCKS; i += 1000) await core.append(kibBlocks(i, 1000))
}

/** How often a 1 ms interval fired while `reader` downloaded everything from `writer`. */
async function ticksDuringDownload (t: Tst, writer: Hypercore, reader: Hypercore): Promise<number> {
  replicate(t, writer, reader)
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 1)
  try {
    await reader.download({ start: 0, end: BLOCKS }).done()
  } finally {
    clearInterval(timer)
  }
  t.is(reader.contiguousLength, BLOCKS, 'every block stored')
  return ticks
}

test('timers keep firing while two in-memory cores of the process replicate 20,000 blocks', async t => {
  const writer = await ramCore(t)
  await fill(writer)
  const reader = await ramCore(t, writer.key)
  const ticks = await ticksDuringDownload(t, writer, reader)
  t.ok(ticks >= 1, `the interval fired ${ticks} times during the download`)
})

test('timers keep firing while two on-disk cores of the process replicate 20,000 blocks', async t => {
  const writer = await openCore(t, freshDir(t, 'writer'))
  await fill(writer)
  const reader = await openCore(t, freshDir(t, 'reader'), { key: writer.key })
  const ticks = await ticksDuringDownload(t, writer, reader)
  t.ok(ticks >= 1, `the interval fired ${ticks} times during the download`)
})
