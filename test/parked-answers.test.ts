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
  t.is(parked.park(peer, data, 3, 2, 0), 'parked')
  t.ok(parked.has(3))
  t.not(data.block!.value.buffer, frame.buffer, 'the block is a copy')
  t.not(data.block!.nodes[0]!.hash.buffer, frame.buffer, 'and so are its nodes')
  frame.fill(0)
  t.is(data.block!.value[0], 7, 'the copy keeps the bytes')
})

test('at most MAX_PARKED answers wait, and none twice for one block', t => {
  const parked = new ParkedAnswers()
  let refused = 0
  for (let i = 0; i < MAX_PARKED; i++) if (parked.park(peer, answer(i, b4a.alloc(16)), i, i - 1, 0) !== 'parked') refused++
  t.is(refused, 0, `${MAX_PARKED} answers held`)
  t.is(parked.size, MAX_PARKED)
  t.is(parked.park(peer, answer(MAX_PARKED, b4a.alloc(16)), MAX_PARKED, MAX_PARKED - 1, 0), 'full', 'one more is let go at once')
  const fresh = new ParkedAnswers()
  t.is(fresh.park(peer, answer(5, b4a.alloc(16)), 5, 4, 0), 'parked')
  t.is(fresh.park(peer, answer(5, b4a.alloc(16)), 5, 4, 0), 'full', 'a second answer for a held block is not held')
})

test('at most MAX_PARKED_BYTES of blocks wait, and taking answers out frees their room', t => {
  const parked = new ParkedAnswers()
  const size = 1024 * 1024
  const fit = Math.floor(MAX_PARKED_BYTES / size)
  for (let i = 0; i < fit; i++) parked.park(peer, answer(i, b4a.alloc(size)), i, i - 1, 0)
  t.is(parked.size, fit)
  t.is(parked.park(peer, answer(fit, b4a.alloc(size)), fit, fit - 1, 0), 'full', 'past the byte bound: let go')
  const out = parked.take(p => p.index < 4 ? 'retry' : 'wait')
  t.alike(out.map(([p, v]) => [p.index, v]), [[0, 'retry'], [1, 'retry'], [2, 'retry'], [3, 'retry']])
  t.is(parked.size, fit - 4)
  t.absent(parked.has(0), 'taken out: no longer held')
  t.is(parked.park(peer, answer(fit, b4a.alloc(size)), fit, fit - 1, 0), 'parked', 'room again')
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

test('an answer is never held waiting, through others, for its own block', t => {
  // Block 512 was refused and asked again, sized against block 593, whose
  // answer waits on 592's, ... on 513's, which waits on 512's: held, 512's
  // answer would wait for itself, and nothing would ever let the chain go.
  const parked = new ParkedAnswers()
  for (let i = 513; i <= 593; i++) t.is(parked.park(peer, answer(i, b4a.alloc(8)), i, i - 1, 0), 'parked')
  t.is(parked.park(peer, answer(512, b4a.alloc(8)), 512, 593, 0), 'circle', 'let go: its chain leads back to it')
  t.absent(parked.has(512))
  t.is(parked.size, 81, 'the chain still waits for 512')
  t.is(parked.park(peer, answer(600, b4a.alloc(8)), 600, 593, 0), 'parked', 'an answer leaning on the chain from outside it waits')
  const other = new ParkedAnswers()
  other.park(peer, answer(3, b4a.alloc(8)), 3, 2, 0)
  t.is(other.park(peer, answer(2, b4a.alloc(8)), 2, 3, 0), 'circle', 'two answers leaning on each other')
  t.is(other.park(peer, answer(4, b4a.alloc(8)), 4, 2, 0), 'parked', 'one leaning on a block whose answer is not held')
})
