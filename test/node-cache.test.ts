/**
 * The tree-node cache: direct-mapped tables that keep what was verified, and
 * a low table that starts with a slot for every other low node and grows to
 * one for each only when reads keep finding nodes missing, so that a core
 * that only downloads (or reads in order) holds half the memory.
 */
import test from 'brittle'
import { NodeCache, VERIFIED, STORED, slotsFor } from '../lib/node-cache'

const node = (index: number): { index: number, size: number, hash: Uint8Array } =>
  ({ index, size: index + 1, hash: new Uint8Array(32).fill(index & 0xff) })

test('a node set is found again, as a copy, at the grade it was set with', t => {
  const cache = new NodeCache(10_000)
  cache.set(node(6), VERIFIED)
  cache.set(node(8), STORED)
  t.alike(cache.get(6, VERIFIED), node(6))
  t.is(cache.get(8, VERIFIED), undefined, 'stored is not verified')
  t.alike(cache.get(8, STORED), node(8))
  const copy = cache.get(6, VERIFIED)!
  copy.hash.fill(0)
  t.alike(cache.get(6, VERIFIED), node(6), 'changing a node handed out changes nothing kept')
})

test('the low table starts at a slot for every other low node, and grows only as reads miss', t => {
  const cache = new NodeCache(10_000)
  const start = cache.lowSlots
  t.is(start, slotsFor(10_000))
  cache.set(node(0), VERIFIED)
  cache.set(node(start), VERIFIED) // the same slot
  t.absent(cache.has(0, STORED), 'two nodes a table apart push each other out')
  t.ok(cache.has(start, STORED))

  for (let i = 0; i < start / 8 - 1; i++) cache.missed()
  t.is(cache.lowSlots, start, 'a few misses do not grow it')
  cache.missed()
  t.is(cache.lowSlots, 2 * start, 'many do')
  t.ok(cache.has(start, STORED), 'what it held is kept')
  cache.set(node(0), VERIFIED)
  t.ok(cache.has(0, STORED) && cache.has(start, STORED), 'and now both fit')
})

test('the low table never grows past a slot for every low node of the tree', t => {
  const cache = new NodeCache(10_000)
  for (let i = 0; i < 100_000; i++) cache.missed()
  t.is(cache.lowSlots, slotsFor(20_000))
  cache.fit(10_000)
  t.is(cache.lowSlots, slotsFor(20_000), 'fitting the same length keeps what it grew to')
  cache.fit(1_000)
  t.is(cache.lowSlots, slotsFor(2_000), 'a shorter tree lowers the bound')
  cache.fit(100_000)
  t.is(cache.lowSlots, slotsFor(100_000), 'a longer one is fitted to its own length')
})
