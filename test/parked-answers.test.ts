/**
 * The answers a reader holds while the answer they lean on is to come:
 * bounded in number and bytes, copied out of the buffer they arrived in,
 * and let go by the verdict the reader gives each.
 */
import test from 'brittle'
import b4a from 'b4a'
import { ParkedAnswers, MAX_PARKED, MAX_PARKED_BYTES } from '../lib/parked-answers'
import type { DataMessage } from '../lib/messages'
import type { Peer } from '../lib/peer'

const peer = {} as unknown as Peer

function answer (index: number, value: Uint8Array): DataMessage {
  return {
    request: index + 1,
    fork: 0,
    block: { index, value, nodes: [{ index: 2 * index + 2, size: value.byteLength, hash: b4a.alloc(32, 1) }] },
    hash: null,
    seek: null,
    upgrade: null,
    manifest: null
  }
}

test('a held answer no longer pins the frame it came in', t => {
  const parked = new ParkedAnswers()
  const frame = b4a.alloc(8192, 7)
  const data = answer(3, frame.subarray(100, 1124))
  t.ok(parked.park(peer, data, 3, 2, 0))
  t.ok(parked.has(3))
  t.not(data.block!.value.buffer, frame.buffer, 'the block is a copy')
  t.not(data.block!.nodes[0]!.hash.buffer, frame.buffer, 'and so are its nodes')
  frame.fill(0)
  t.is(data.block!.value[0], 7, 'the copy keeps the bytes')
})

test('at most MAX_PARKED answers wait, and none twice for one block', t => {
  const parked = new ParkedAnswers()
  let refused = 0
  for (let i = 0; i < MAX_PARKED; i++) if (!parked.park(peer, answer(i, b4a.alloc(16)), i, i - 1, 0)) refused++
  t.is(refused, 0, `${MAX_PARKED} answers held`)
  t.is(parked.size, MAX_PARKED)
  t.absent(parked.park(peer, answer(MAX_PARKED, b4a.alloc(16)), MAX_PARKED, MAX_PARKED - 1, 0), 'one more is let go at once')
  const fresh = new ParkedAnswers()
  t.ok(fresh.park(peer, answer(5, b4a.alloc(16)), 5, 4, 0))
  t.absent(fresh.park(peer, answer(5, b4a.alloc(16)), 5, 4, 0), 'a second answer for a held block is not held')
})

test('at most MAX_PARKED_BYTES of blocks wait, and taking answers out frees their room', t => {
  const parked = new ParkedAnswers()
  const size = 1024 * 1024
  const fit = Math.floor(MAX_PARKED_BYTES / size)
  for (let i = 0; i < fit; i++) parked.park(peer, answer(i, b4a.alloc(size)), i, i - 1, 0)
  t.is(parked.size, fit)
  t.absent(parked.park(peer, answer(fit, b4a.alloc(size)), fit, fit - 1, 0), 'past the byte bound: let go')
  const out = parked.take(p => p.index < 4 ? 'retry' : 'wait')
  t.alike(out.map(([p, v]) => [p.index, v]), [[0, 'retry'], [1, 'retry'], [2, 'retry'], [3, 'retry']])
  t.is(parked.size, fit - 4)
  t.absent(parked.has(0), 'taken out: no longer held')
  t.ok(parked.park(peer, answer(fit, b4a.alloc(size)), fit, fit - 1, 0), 'room again')
})

test('answers are judged with every answer still held: one leaning on an answer taken out now is still held then', t => {
  const parked = new ParkedAnswers()
  parked.park(peer, answer(10, b4a.alloc(8)), 10, 9, 0)
  parked.park(peer, answer(11, b4a.alloc(8)), 11, 10, 0)
  const seen: boolean[] = []
  const out = parked.take(p => {
    if (p.index === 11) seen.push(parked.has(10))
    return p.index === 10 ? 'short' : 'wait'
  })
  t.alike(seen, [true], 'block 10 still held while 11 was judged')
  t.alike(out.map(([p, v]) => [p.index, v]), [[10, 'short']])
  t.absent(parked.has(10))
  t.ok(parked.has(11))
})
