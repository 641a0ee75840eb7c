/**
 * The node cache's size: a slot for every low node of the tree it is sized
 * for (not rounded up to a power of two), growing by half as a writer's
 * appends ask for more, and no node of a tree that fits pushing out another.
 */
import test from 'brittle'
import { NodeCache, STORED, VERIFIED, grownSlots, slotsFor } from '../lib/node-cache'

const node = (index: number): { index: number, size: number, hash: Uint8Array } =>
  ({ index, size: index + 1, hash: new Uint8Array(32).fill(index & 0xff) })

test('slot counts: exactly what is asked within bounds, grown by half at least, never shrunk', t => {
  t.is(slotsFor(20_000), 20_000, 'a 10,000-block tree: 20,000 slots, not 32,768')
  t.is(slotsFor(3), 1024, 'at least 1,024')
  t.is(slotsFor(1e9), 65_536, 'at most 65,536')
  t.is(grownSlots(1024, 20_000), 20_000, 'a replica learning its length takes what it needs at once')
  t.is(grownSlots(20_000, 20_002), 30_000, 'an append past it grows by half, not by two slots')
  t.is(grownSlots(30_000, 100), 30_000, 'a truncation keeps the table')
  t.is(grownSlots(60_000, 70_000), 65_536, 'growth stops at the bound')
})

test('every node of a tree the cache is sized for stays in it, across a resize too', t => {
  const blocks = 10_000
  const cache = new NodeCache(blocks)
  for (let i = 0; i < 2 * blocks - 1; i++) cache.set(node(i), i % 3 === 0 ? VERIFIED : STORED)
  let held = 0
  for (let i = 0; i < 2 * blocks - 1; i++) {
    const got = cache.get(i, STORED)
    if (got !== undefined && got.size === i + 1 && got.hash[0] === (i & 0xff)) held++
  }
  t.is(held, 2 * blocks - 1, 'all 19,999 nodes held at once')
  cache.fit(blocks + 1)
  let kept = 0
  for (let i = 0; i < 2 * blocks - 1; i++) if (cache.has(i, i % 3 === 0 ? VERIFIED : STORED)) kept++
  t.is(kept, 2 * blocks - 1, 'and kept, with their grades, when an append grows the table')
  t.is(cache.has(1, VERIFIED), false, 'a stored node is not taken for a verified one')
})
