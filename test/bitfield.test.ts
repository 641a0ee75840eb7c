import test from 'brittle'
import fc from 'fast-check'
import { Bitfield, PAGE_BITS, PAGE_BYTES, type DirtyRange } from '../lib/bitfield'
import { isCoded } from '../lib/errors'

// Bitfield against a naive model: a Set of the indices whose bit is 1.

type Op =
  | { op: 'set', i: number, v: boolean }
  | { op: 'range', s: number, n: number, v: boolean }
  | { op: 'truncate', len: number }
  | { op: 'words', w: number, words: number[] }

// Indices cluster at the start, around page boundaries and far out, so the
// word/byte/page edge cases all get hit.
const index = fc.oneof(
  fc.nat(700),
  fc.integer({ min: PAGE_BITS - 70, max: PAGE_BITS + 70 }),
  fc.integer({ min: 3 * PAGE_BITS - 70, max: 3 * PAGE_BITS + 70 })
)

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), i: index, v: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('range' as const), s: index, n: fc.oneof(fc.nat(80), fc.nat(PAGE_BITS + 100)), v: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), len: index }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('words' as const), w: index.map((i) => Math.floor(i / 32)), words: fc.array(fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.nat(0xffffffff)), { maxLength: 6 }) }) }
)

// Every index an operation can touch is below this, so the model is a plain array.
const MODEL_BITS = 4 * PAGE_BITS + 1024

/** The naive model: one array entry (0 or 1) per bit. */
class Model {
  bits = new Uint8Array(MODEL_BITS)
  has (i: number): boolean { return i < MODEL_BITS && this.bits[i] === 1 }
}

function apply (b: Bitfield, m: Model, o: Op): void {
  switch (o.op) {
    case 'set':
      b.set(o.i, o.v)
      m.bits[o.i] = o.v ? 1 : 0
      break
    case 'range':
      b.setRange(o.s, o.s + o.n, o.v)
      m.bits.fill(o.v ? 1 : 0, o.s, o.s + o.n)
      break
    case 'truncate':
      b.truncate(o.len)
      m.bits.fill(0, o.len)
      break
    case 'words':
      b.setWords(o.w * 32, o.words)
      for (let k = 0; k < o.words.length; k++) {
        for (let j = 0; j < 32; j++) m.bits[o.w * 32 + k * 32 + j] = (o.words[k] >>> j) & 1
      }
      break
  }
}

const probes = (() => {
  const out: number[] = []
  for (let i = 0; i < 800; i++) out.push(i)
  for (const base of [PAGE_BITS, 2 * PAGE_BITS, 3 * PAGE_BITS, 4 * PAGE_BITS]) {
    for (let i = base - 80; i < base + 80; i++) out.push(i)
  }
  return out
})()

function modelFirstUnset (m: Model, start: number): number {
  let i = start
  while (m.has(i)) i++
  return i
}

function modelFirstSet (m: Model, start: number): number {
  const i = m.bits.indexOf(1, start)
  return i
}

function modelLastSet (m: Model): number {
  return m.bits.lastIndexOf(1)
}

function modelCount (m: Model, start: number, end: number): number {
  let n = 0
  const e = Math.min(end, MODEL_BITS)
  for (let i = start; i < e; i++) n += m.bits[i]
  return n
}

function modelBytes (m: Model): Uint8Array {
  const last = modelLastSet(m)
  const out = new Uint8Array(last === -1 ? 0 : (last >> 3) + 1)
  for (let i = 0; i <= last; i++) if (m.bits[i] === 1) out[i >> 3] |= 1 << (i & 7)
  return out
}

/** First disagreement between the bitfield and the model, or null. */
function disagreement (b: Bitfield, m: Model): string | null {
  for (const i of probes) {
    if (b.get(i) !== m.has(i)) return `get(${i})`
  }
  for (const s of [0, 1, 7, 8, 31, 32, 33, 500, PAGE_BITS - 1, PAGE_BITS, PAGE_BITS + 1, 3 * PAGE_BITS - 33, 3 * PAGE_BITS + 40]) {
    if (b.firstUnset(s) !== modelFirstUnset(m, s)) return `firstUnset(${s}) = ${b.firstUnset(s)}, want ${modelFirstUnset(m, s)}`
    if (b.firstSet(s) !== modelFirstSet(m, s)) return `firstSet(${s}) = ${b.firstSet(s)}, want ${modelFirstSet(m, s)}`
  }
  if (b.lastSet() !== modelLastSet(m)) return `lastSet() = ${b.lastSet()}, want ${modelLastSet(m)}`
  for (const [s, e] of [[0, 1], [0, 700], [3, 64], [5, 6], [31, 97], [0, 5 * PAGE_BITS], [PAGE_BITS - 50, PAGE_BITS + 50], [100, 3 * PAGE_BITS + 10]]) {
    if (b.count(s, e) !== modelCount(m, s, e)) return `count(${s}, ${e}) = ${b.count(s, e)}, want ${modelCount(m, s, e)}`
  }
  if (!Buffer.from(b.toBytes()).equals(modelBytes(m))) return 'toBytes()'
  return null
}

/** Applies dirty runs to a copy of `old`, as the storage layer does to the file. */
function applyDirty (old: Uint8Array, dirty: DirtyRange[]): Uint8Array {
  let len = old.byteLength
  for (const d of dirty) len = Math.max(len, d.offset + d.bytes.byteLength)
  const out = new Uint8Array(len)
  out.set(old)
  for (const d of dirty) out.set(d.bytes, d.offset)
  return out
}

function trimZeros (b: Uint8Array): Buffer {
  let n = b.byteLength
  while (n > 0 && b[n - 1] === 0) n--
  return Buffer.from(b.subarray(0, n))
}

test('bitfield: every query agrees with a boolean model after random operations', (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
    const b = new Bitfield()
    const m = new Model()
    for (const o of ops) apply(b, m, o)
    const bad = disagreement(b, m)
    if (bad !== null) throw new Error(bad)
  }), { numRuns: 300 })
  t.pass('300 random operation sequences agree')
})

test('bitfield: takeDirty runs applied to the old bytes reproduce toBytes()', (t) => {
  fc.assert(fc.property(fc.array(fc.array(op, { maxLength: 12 }), { minLength: 1, maxLength: 6 }), (batches) => {
    const b = new Bitfield()
    const m = new Model()
    let disk: Uint8Array = new Uint8Array(0)
    for (const batch of batches) {
      for (const o of batch) apply(b, m, o)
      const dirty = b.takeDirty()
      for (let k = 1; k < dirty.length; k++) {
        if (dirty[k].offset < dirty[k - 1].offset + dirty[k - 1].bytes.byteLength) throw new Error('dirty runs overlap or are unsorted')
      }
      disk = applyDirty(disk, dirty)
      if (!trimZeros(disk).equals(trimZeros(b.toBytes()))) throw new Error('disk bytes differ from toBytes()')
      if (b.takeDirty().length !== 0) throw new Error('second takeDirty() not empty')
      if (!Buffer.from(Bitfield.fromBytes(disk).toBytes()).equals(b.toBytes())) throw new Error('fromBytes(disk) differs')
    }
  }), { numRuns: 300 })
  t.pass('300 random batch sequences reproduce the bytes')
})

test('bitfield: one append dirties one byte, 100 appends one run of 13 bytes', (t) => {
  const b = new Bitfield()
  b.set(0, true)
  t.alike(b.takeDirty().map((d) => [d.offset, d.bytes.byteLength]), [[0, 1]])
  b.set(1, true)
  t.alike(b.takeDirty().map((d) => [d.offset, Array.from(d.bytes)]), [[0, [3]]])
  for (let i = 2; i < 102; i++) b.set(i, true)
  const dirty = b.takeDirty()
  t.is(dirty.length, 1, 'one run')
  t.is(dirty[0].offset, 0)
  t.is(dirty[0].bytes.byteLength, 13, '102 bits -> 13 bytes')
  b.setRange(102, 202, true)
  t.alike(b.takeDirty().map((d) => [d.offset, d.bytes.byteLength]), [[12, 14]], 'setRange dirties just its bytes')
  t.is(b.set(5, true), false, 'setting a set bit changes nothing')
  t.is(b.takeDirty().length, 0, 'and dirties nothing')
})

test('bitfield: far-apart changes stay separate runs', (t) => {
  const b = new Bitfield()
  b.set(10, true)
  b.set(8 * 100000, true)
  b.set(16, true)
  const dirty = b.takeDirty()
  t.alike(dirty.map((d) => [d.offset, d.bytes.byteLength]), [[1, 2], [100000, 1]])
})

test('bitfield: byte layout is LSB first (bit i = byte i>>3, bit i&7)', (t) => {
  const b = new Bitfield()
  b.set(0, true)
  b.set(9, true)
  b.set(23, true)
  t.alike(Array.from(b.toBytes()), [0x01, 0x02, 0x80])
  const c = Bitfield.fromBytes(new Uint8Array([0x81, 0x00, 0x40]))
  t.alike([0, 1, 7, 8, 22, 23].map((i) => c.get(i)), [true, false, true, false, true, false])
  t.is(c.lastSet(), 22)
  t.is(c.takeDirty().length, 0, 'fromBytes is not dirty')
})

test('bitfield: words() is the wire layout, setWords() overwrites', (t) => {
  const b = new Bitfield()
  b.set(0, true)
  b.set(33, true)
  b.set(63, true)
  t.alike(Array.from(b.words(0, 3)), [1, 0x80000002, 0])
  t.alike(Array.from(b.words(32, 1)), [0x80000002])
  b.setWords(32, [0x1, 0xffffffff])
  t.ok(b.get(32) && !b.get(33) && !b.get(63), 'word 1 overwritten')
  t.is(b.count(64, 96), 32, 'word 2 all ones')
  t.alike(Array.from(b.words(0, 3)), [1, 1, 0xffffffff])
  // Words across a page boundary, and an unallocated page reads as zeros.
  b.setRange(PAGE_BITS - 32, PAGE_BITS + 32, true)
  t.alike(Array.from(b.words(PAGE_BITS - 64, 4)), [0, 0xffffffff, 0xffffffff, 0])
  t.alike(Array.from(b.words(10 * PAGE_BITS, 2)), [0, 0])
  t.exception(() => b.words(5, 1), /BAD_ARGUMENT/)
})

test('bitfield: words() agrees with the model', (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 30 }), index, fc.nat(20), (ops, start, n) => {
    const b = new Bitfield()
    const m = new Model()
    for (const o of ops) apply(b, m, o)
    const s = Math.floor(start / 32) * 32
    const w = b.words(s, n)
    for (let k = 0; k < n; k++) {
      for (let j = 0; j < 32; j++) {
        if (((w[k] >>> j) & 1) === 1 !== m.has(s + 32 * k + j)) throw new Error(`bit ${s + 32 * k + j}`)
      }
    }
  }), { numRuns: 200 })
  t.pass('200 runs')
})

test('bitfield: a bit far out allocates one page, not everything before it', (t) => {
  const b = new Bitfield()
  const far = 2 ** 45 + 3
  b.set(far, true)
  t.is(b.allocatedPages, 1)
  t.ok(b.get(far))
  t.is(b.firstSet(0), far)
  t.is(b.lastSet(), far)
  t.is(b.count(0, far + 1), 1)
  t.is(b.firstUnset(0), 0)
  b.setRange(0, far + 1, false)
  t.is(b.lastSet(), -1)
  t.is(b.allocatedPages, 1, 'clearing does not allocate')
  b.set(2 ** 52, true)
  t.is(b.firstSet(far), 2 ** 52, 'indices past 2^32 pages work')
  b.truncate(2 ** 50)
  t.is(b.lastSet(), -1)
})

test('bitfield: firstUnset skips full pages fast', (t) => {
  const b = new Bitfield()
  const n = 40 * PAGE_BITS + 77 // ~10M bits
  b.setRange(0, n, true)
  const t0 = process.hrtime.bigint()
  const found: number[] = []
  for (let i = 0; i < 20; i++) found.push(b.firstUnset(i * 1000))
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  t.ok(found.every((x) => x === n), 'always the first bit past the range')
  t.ok(ms < 500, `20 scans over 10M bits took ${ms.toFixed(1)} ms`)
  t.is(b.count(0, n + 100), n)
  t.is(b.firstSet(n), -1)
})

test('bitfield: truncate clears every bit >= length and dirties only cleared bytes', (t) => {
  const b = new Bitfield()
  b.setRange(0, 100, true)
  b.set(PAGE_BITS * 2 + 5, true)
  b.takeDirty()
  b.truncate(50)
  t.is(b.lastSet(), 49)
  t.is(b.count(0, 10 * PAGE_BITS), 50)
  const dirty = b.takeDirty()
  t.alike(dirty.map((d) => [d.offset, Array.from(d.bytes)]), [[6, [0x03, 0, 0, 0, 0, 0, 0]], [(PAGE_BITS * 2 + 5) >> 3, [0]]])
  t.is(b.allocatedPages, 1, 'the far page is released')
  b.truncate(0)
  t.is(b.lastSet(), -1)
  t.is(b.toBytes().byteLength, 0)
})

test('bitfield: bad indices are coded BAD_ARGUMENT errors', (t) => {
  const b = new Bitfield()
  for (const fn of [() => b.set(-1, true), () => b.set(1.5, true), () => b.setRange(5, 4, true), () => b.firstUnset(-1), () => b.count(3, 1), () => b.truncate(Number.NaN)]) {
    try {
      fn()
      t.fail('did not throw')
    } catch (err) {
      t.ok(isCoded(err, 'BAD_ARGUMENT'))
    }
  }
  t.is(b.get(-1), false, 'get out of range is just false')
})

test('bitfield: pages are 4 KiB, as Hypercore 11\'s, so a short core holds one small page', (t) => {
  t.is(PAGE_BYTES, 4096)
  const b = new Bitfield()
  b.set(0, true)
  t.is(b.allocatedPages, 1, 'a one-block core')
  b.set(32_767, true)
  t.is(b.allocatedPages, 1, 'the page ends at bit 32,767')
  b.set(32_768, true)
  t.is(b.allocatedPages, 2)
})
