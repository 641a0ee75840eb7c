/**
 * KeyRing, the map the request and write bookkeeping keeps block indices and
 * request ids in, against a plain Map: the same answers whatever the keys
 * (sliding, colliding, random, past 2^32), through growth and deletions.
 */
import test from 'brittle'
import fc from 'fast-check'
import { KeyRing } from '../lib/key-ring'

type Op = { op: 'set', key: number, value: number } | { op: 'delete', key: number } | { op: 'get', key: number } | { op: 'clear' }

const keys = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.integer({ min: 0, max: 100_000 }),
  fc.integer({ min: 2 ** 32 - 20, max: 2 ** 32 + 20 }),
  fc.constantFrom(0, 16, 32, 4096, 8192, 2 ** 53 - 2)
)
const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), key: keys, value: fc.integer() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keys }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), key: keys }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) }
)

function sameContents (ring: KeyRing<number>, map: Map<number, number>): boolean {
  if (ring.size !== map.size) return false
  const values = [...ring.values()].sort((a, b) => a - b)
  const expected = [...map.values()].sort((a, b) => a - b)
  const entries = [...ring.entries()].sort((a, b) => a[0] - b[0])
  const expectedEntries = [...map.entries()].sort((a, b) => a[0] - b[0])
  return JSON.stringify(values) === JSON.stringify(expected) && JSON.stringify(entries) === JSON.stringify(expectedEntries)
}

test('a key ring answers as a Map does, for any keys and any order of changes', t => {
  fc.assert(fc.property(fc.array(ops, { maxLength: 400 }), list => {
    const ring = new KeyRing<number>()
    const map = new Map<number, number>()
    for (const o of list) {
      if (o.op === 'set') {
        ring.set(o.key, o.value)
        map.set(o.key, o.value)
      } else if (o.op === 'delete') {
        if (ring.delete(o.key) !== map.delete(o.key)) return false
      } else if (o.op === 'get') {
        if (ring.get(o.key) !== map.get(o.key) || ring.has(o.key) !== map.has(o.key)) return false
      } else {
        ring.clear()
        map.clear()
      }
    }
    for (const k of map.keys()) if (ring.get(k) !== map.get(k)) return false
    return sameContents(ring, map)
  }), { numRuns: 2000 })
  t.pass('2,000 random histories agree')
})

test('a sliding window of keys stays in the ring, and keys left behind are still found', t => {
  const ring = new KeyRing<number>()
  const map = new Map<number, number>()
  // A download's requests: 512 in flight, each answered 512 later; one never answered.
  ring.set(7, -7)
  map.set(7, -7)
  let disagreed = 0
  for (let id = 8; id < 20_000; id++) {
    ring.set(id, id)
    map.set(id, id)
    if (id - 512 > 7 && ring.delete(id - 512) !== map.delete(id - 512)) disagreed++
  }
  t.is(disagreed, 0, 'every answered request is deleted as from a Map')
  t.is(ring.get(7), -7, 'the request left hanging is still there')
  t.is(ring.size, map.size)
  t.ok(sameContents(ring, map), 'the same values')
  t.is(ring.get(20_000 - 513), undefined, 'an answered one is gone')
})
