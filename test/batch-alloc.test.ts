/**
 * Messages a corked mux queues are encoded into slices of one reused slab;
 * what arrives is still every message, whole and in order.
 */
import test from 'brittle'
import b4a from 'b4a'
import c from 'compact-encoding'
import { batchAlloc } from '../lib/batch-alloc'
import { protocolStream } from '../lib/protocol-stream'
import type NoiseSecretStream from '@hyperswarm/secret-stream'

test('corked, messages share one slab, reused from batch to batch; uncorked, they are the stream\'s own', t => {
  let corked = true
  const own: Uint8Array[] = []
  const alloc = batchAlloc({ alloc: n => { const b = b4a.alloc(n); own.push(b); return b } }, () => corked)

  const first = [alloc(100), alloc(2000), alloc(50)]
  t.ok(first.every(b => b.buffer === first[0]!.buffer), 'one slab for the batch')
  t.is(first[1]!.byteOffset, first[0]!.byteOffset + 100, 'slices follow each other')
  t.is(own.length, 0)

  corked = false
  const frame = alloc(2150)
  t.is(own.length, 1, 'the frame is the stream\'s')
  t.is(frame, own[0])

  corked = true
  const next = alloc(10)
  t.is(next.buffer, first[0]!.buffer, 'the next batch reuses the slab')
  t.is(next.byteOffset, first[0]!.byteOffset, 'from its start')

  const big = alloc(64 * 1024)
  t.not(big.buffer, first[0]!.buffer, 'a message too big for a slice is a buffer of its own')
})

test('a batch bigger than the slab spills into a fresh one without touching what it queued', t => {
  const alloc = batchAlloc({ alloc: n => b4a.alloc(n) }, () => true)
  const slices: Uint8Array[] = []
  for (let i = 0; i < 600; i++) {
    const s = alloc(1100)
    s.fill(i & 0xff)
    slices.push(s)
  }
  t.ok(new Set(slices.map(s => s.buffer)).size > 1, 'more than one slab')
  t.ok(slices.every((s, i) => s.every(byte => byte === (i & 0xff))), 'every slice kept its bytes')
})

test('corked batches over a secret stream arrive whole and in order', async t => {
  const a = protocolStream(true)
  const b = protocolStream(false)
  const sa = a.stream as NoiseSecretStream
  const sb = b.stream as NoiseSecretStream
  sa.pipe(sb).pipe(sa)

  const got: Uint8Array[] = []
  const sent: Uint8Array[] = []
  const total = 5 * 300 + 40
  const done = new Promise<void>(resolve => {
    const ch = b.mux.createChannel({
      protocol: 'batch-alloc-test',
      messages: [{ encoding: c.raw, onmessage: (m: Uint8Array) => { got.push(b4a.from(m)); if (got.length === total) resolve() } }]
    })!
    ch.open()
  })
  const ch = a.mux.createChannel({ protocol: 'batch-alloc-test', messages: [{ encoding: c.raw }] })!
  ch.open()
  const msg = ch.messages[0]!

  let seed = 7
  const next = (): Uint8Array => {
    seed = (seed * 1103515245 + 12345) >>> 0
    const size = seed % 5 === 0 ? 20000 + (seed % 9000) : 1 + (seed % 1500) // some above a slice's bound
    const m = b4a.alloc(size, sent.length & 0xff)
    m[0] = seed & 0xff
    sent.push(m)
    return m
  }
  for (let batch = 0; batch < 5; batch++) {
    a.mux.cork()
    for (let i = 0; i < 300; i++) msg.send(next())
    a.mux.uncork()
    for (let i = 0; i < 8; i++) msg.send(next()) // uncorked between batches
  }
  await done
  t.is(got.length, sent.length)
  t.ok(got.every((m, i) => b4a.equals(m, sent[i]!)), 'every message byte for byte, in order')
  sa.destroy()
  sb.destroy()
})
