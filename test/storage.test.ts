import test from 'brittle'
import fc from 'fast-check'
import fs from 'fs'
import path from 'path'
import { spawn } from 'child_process'
import {
  CoreStorage,
  HEADER_SLOT_SIZE,
  HEADER_MAX_PAYLOAD,
  TREE_NODE_SIZE,
  decodeHeader,
  decodeHeaderSlot,
  encodeHeader,
  encodeHeaderSlot,
  storedNodeState,
  type Header
} from '../lib/storage'
import sodium from 'sodium-universal'
import { Bitfield } from '../lib/bitfield'
import { isCoded } from '../lib/errors'
import type { TreeNode } from '../lib/tree-node'
import { bytes, countFileCalls, memoryFiles, plain, sampleHeader, tmpDir } from './helpers/storage'

interface Backend {
  name: string
  /** Opens the same core again (the previous instance must be closed first). */
  reopen: () => CoreStorage
}

function memoryBackend (): Backend & { files: ReturnType<typeof memoryFiles> } {
  const files = memoryFiles()
  return { name: 'memory', files, reopen: () => new CoreStorage(files.factory) }
}

function fileBackend (t: { teardown (fn: () => unknown): void }): Backend & { dir: string } {
  const dir = tmpDir(t)
  return { name: 'files', dir, reopen: () => CoreStorage.fromDirectory(dir) }
}

function node (index: number, size = index * 10 + 1): TreeNode {
  return { index, size, hash: bytes(32, index + 1000) }
}

function plainNode (n: TreeNode | null): unknown {
  return n === null ? null : { index: n.index, size: n.size, hash: Buffer.from(n.hash).toString('hex') }
}

async function codeOf (p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (err) {
    if (isCoded(err)) return err.code
    return 'uncoded: ' + String(err)
  }
}

const backends: Array<[string, (t: { teardown (fn: () => unknown): void }) => Backend]> = [
  ['memory', () => memoryBackend()],
  ['files', (t) => fileBackend(t)]
]

for (const [name, make] of backends) {
  test(`storage (${name}): tree nodes round trip across reopen`, async (t) => {
    const b = make(t)
    let s = b.reopen()
    t.is(await s.treeNodeCount(), 0)
    t.is(await s.getNode(0), null, 'empty tree file: missing')
    await s.putNodes([node(5), node(3), node(4), node(10), node(0)])
    t.is(await s.treeNodeCount(), 11)
    await s.close()

    s = b.reopen()
    t.alike(plainNode(await s.getNode(4)), plainNode(node(4)))
    t.is(await s.getNode(1), null, 'hole: missing')
    t.is(await s.getNode(11), null, 'past EOF: missing')
    const got = await s.getNodes([10, 0, 4, 99, 3, 1, 5, 4])
    t.alike(got.map(plainNode), [node(10), node(0), node(4), null, node(3), null, node(5), node(4)].map((n) => n === null ? null : plainNode(n)))

    await s.deleteNodes([4, 0, 500])
    t.alike((await s.getNodes([0, 3, 4, 5])).map((n) => n?.index ?? null), [null, 3, null, 5])
    t.is(await s.treeNodeCount(), 11, 'deleting past EOF does not grow the file')

    await s.deleteNodeRange(3, 4)
    t.is(await s.getNode(3), null)
    t.is((await s.getNode(5))?.index, 5)
    await s.deleteNodeRange(6, Infinity)
    t.is(await s.treeNodeCount(), 6, 'range to Infinity truncates')
    await s.deleteNodeRange(5, 1000)
    t.is(await s.treeNodeCount(), 5, 'range past EOF truncates')
    await s.close()
  })

  test(`storage (${name}): data round trips, short reads are STORAGE_CORRUPT`, async (t) => {
    const b = make(t)
    let s = b.reopen()
    const block = bytes(5000, 1)
    await s.writeData(0, block)
    await s.writeData(5000, bytes(10, 2))
    t.is(await s.dataByteLength(), 5010)
    await s.close()

    s = b.reopen()
    t.alike(Buffer.from(await s.readData(4990, 20)), Buffer.concat([Buffer.from(block.subarray(4990)), Buffer.from(bytes(10, 2))]))
    t.is((await s.readData(100, 0)).byteLength, 0)
    t.is(await codeOf(s.readData(5000, 11)), 'STORAGE_CORRUPT', 'partly past EOF')
    t.is(await codeOf(s.readData(9000, 1)), 'STORAGE_CORRUPT', 'wholly past EOF')
    await s.clearData(0, 4096)
    await s.truncateData(5000)
    t.is(await s.dataByteLength(), 5000)
    t.alike(Buffer.from(await s.readData(4096, 904)), Buffer.from(block.subarray(4096)), 'bytes after the cleared range survive')
    await s.close()
  })

  test(`storage (${name}): blocks written in parts land as the parts joined`, async (t) => {
    const b = make(t)
    let s = b.reopen()
    // More parts than one writev takes (1,024 on Linux), empty ones among them, after a gap.
    const parts = Array.from({ length: 1500 }, (_, i) => bytes(i % 7 === 0 ? 0 : (i * 37) % 300, i + 1))
    const joined = Buffer.concat(parts.map((p) => Buffer.from(p)))
    await s.writeData(0, bytes(100, 9))
    await s.writeDataParts(250, parts)
    await s.writeDataParts(250 + joined.byteLength, [bytes(3, 4)])
    await s.writeDataParts(250 + joined.byteLength + 3, [])
    t.is(await s.dataByteLength(), 250 + joined.byteLength + 3)
    await s.close()

    s = b.reopen()
    t.alike(Buffer.from(await s.readData(250, joined.byteLength)), joined)
    t.alike(Buffer.from(await s.readData(0, 100)), Buffer.from(bytes(100, 9)), 'what was before is untouched')
    t.alike(Buffer.from(await s.readData(250 + joined.byteLength, 3)), Buffer.from(bytes(3, 4)))
    t.is(await codeOf(s.writeDataParts(-1, parts)), 'BAD_ARGUMENT')
    t.is(await codeOf(s.writeDataParts(0, [bytes(3, 1), 'no' as unknown as Uint8Array])), 'BAD_ARGUMENT')
    await s.close()
  })

  test(`storage (${name}): bitfield round trips through takeDirty runs`, async (t) => {
    const b = make(t)
    let s = b.reopen()
    t.is((await s.readBitfield()).lastSet(), -1, 'no file: empty bitfield')
    const bf = new Bitfield()
    bf.setRange(0, 1000, true)
    bf.set(300000, true)
    await s.writeBitfield(bf.takeDirty())
    bf.truncate(500)
    bf.set(700, true)
    await s.writeBitfield(bf.takeDirty())
    await s.close()

    s = b.reopen()
    const back = await s.readBitfield()
    t.alike(Buffer.from(back.toBytes()), Buffer.from(bf.toBytes()))
    t.is(back.count(0, 400000), 501)
    await s.truncateBitfield(0)
    t.is((await s.readBitfield()).lastSet(), -1)
    await s.close()
  })

  test(`storage (${name}): header round trips across reopen`, async (t) => {
    const b = make(t)
    let s = b.reopen()
    t.is(await s.readHeader(), null, 'fresh storage has no header')
    t.ok(await s.isEmpty())
    const full = sampleHeader(7)
    await s.writeHeader(full)
    t.alike(plain(await s.readHeader()), plain(full))
    await s.close()

    s = b.reopen()
    t.alike(plain(await s.readHeader()), plain(full))
    const bare = sampleHeader(8, { full: false })
    await s.writeHeader(bare)
    await s.close()

    s = b.reopen()
    const back = await s.readHeader()
    t.alike(plain(back), plain(bare))
    t.is(back?.hints, undefined, 'absent hints stay absent')
    t.absent(await s.isEmpty())
    await s.close()
  })
}

test('storage: tree file layout is node i at 40·i, uint64 LE size, hash; zeros = missing', async (t) => {
  const { dir, reopen } = fileBackend(t)
  const s = reopen()
  const n3: TreeNode = { index: 3, size: 0x0605040302 + 2 ** 48, hash: bytes(32, 3) }
  const n4: TreeNode = { index: 4, size: 2 ** 53 - 1, hash: bytes(32, 4) }
  await s.putNodes([n4, n3])
  await s.close()

  const file = fs.readFileSync(path.join(dir, 'tree'))
  t.is(file.byteLength, 5 * TREE_NODE_SIZE)
  t.ok(file.subarray(0, 120).every((x) => x === 0), 'nodes 0..2 are zero')
  t.alike(Array.from(file.subarray(120, 128)), [0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x01, 0x00], 'size is uint64 little endian')
  t.alike(file.subarray(128, 160), Buffer.from(n3.hash), 'then the 32-byte hash')
  t.alike(Array.from(file.subarray(160, 168)), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00], '2^53 - 1')

  // A hand-written file reads back the same way.
  const hand = Buffer.alloc(3 * TREE_NODE_SIZE)
  hand.writeUInt32LE(1234, 40)
  hand.set(bytes(32, 9), 48)
  hand.writeUInt32LE(0xffffffff, 80 + 4) // size >= 2^53: impossible
  hand[80 + 8] = 1
  fs.writeFileSync(path.join(dir, 'tree'), hand)
  const r = reopen()
  t.is(await r.getNode(0), null)
  t.alike(plainNode(await r.getNode(1)), plainNode({ index: 1, size: 1234, hash: bytes(32, 9) }))
  t.is(await r.getNode(2), null, 'an impossible size is rot: no node (the audit drops it)')
  t.is(storedNodeState(await r.readTreeBytes(2, 3), 0), 'rotten')
  t.is(storedNodeState(await r.readTreeBytes(0, 1), 0), 'missing')
  t.is(storedNodeState(await r.readTreeBytes(1, 2), 0), 'node')
  t.is((await r.readTreeBytes(1, 10)).byteLength, 2 * TREE_NODE_SIZE, 'a run stops where the file ends')
  t.is(await r.treeNodeCount(), 3)
  await r.close()
})

test('storage: putNodes writes one buffer per contiguous run, getNodes one read per run', async (t) => {
  const b = memoryBackend()
  const s = b.reopen()
  await s.open()
  b.files.resetCounters()
  await s.putNodes([node(5), node(3), node(11), node(4), node(10), node(0)])
  const w = b.files.counters('tree')
  t.is(w.writes, 3, 'runs [0], [3..5], [10..11]')
  t.alike(w.writeSizes.slice().sort((x, y) => x - y), [40, 80, 120])

  b.files.resetCounters()
  const got = await s.getNodes([11, 3, 4, 5, 10, 0])
  t.is(b.files.counters('tree').reads, 3, 'runs [0], [3..5], [10..11]')
  t.alike(got.map((n) => n?.index), [11, 3, 4, 5, 10, 0])
  await s.close()
})

test('storage: a write of parts that the system takes a little at a time still lands whole', async (t) => {
  const dir = tmpDir(t)
  const s = CoreStorage.fromDirectory(dir)
  await s.writeData(0, bytes(10, 1)) // the files are open: the parts go straight to writev
  const writev = fs.writevSync
  const calls: number[] = []
  // writev may write fewer bytes than asked (a signal, a full disk): at most 97 at a time here.
  fs.writevSync = function (fd: number, buffers: readonly ArrayBufferView[], position?: number): number {
    let room = 97
    const taken: Uint8Array[] = []
    for (const b of buffers) {
      if (room === 0) break
      const v = new Uint8Array(b.buffer, b.byteOffset, Math.min(room, b.byteLength))
      taken.push(v)
      room -= v.byteLength
    }
    const n = writev(fd, taken, position)
    calls.push(n)
    return n
  }
  const parts = Array.from({ length: 40 }, (_, i) => bytes(i * 5, i + 2))
  const joined = Buffer.concat(parts.map((p) => Buffer.from(p)))
  try {
    await s.writeDataParts(10, parts)
  } finally {
    fs.writevSync = writev
  }
  t.ok(calls.length > 1 && calls.every((n) => n <= 97), `${calls.length} partial writes`)
  t.alike(Buffer.from(await s.readData(10, joined.byteLength)), joined)
  t.is(await s.dataByteLength(), 10 + joined.byteLength)
  await s.close()
})

test('storage: on files, tree, bitfield, header and single-block calls go straight to the file once it is open', async (t) => {
  const { reopen } = fileBackend(t)
  const s = reopen()
  await s.open()
  // The request queue's own calls: what a call pays when it does not go straight to the file.
  const calls = countFileCalls()
  const bf = new Bitfield()
  bf.setRange(0, 20, true)
  try {
    await s.putNodes([node(0), node(1), node(2), node(9)])
    await s.writeBitfield(bf.takeDirty())
    await s.writeData(0, bytes(100, 7))
    await s.writeHeader(sampleHeader(1))
    t.alike((await s.getNodes([9, 0, 1, 2])).map(plainNode), [node(9), node(0), node(1), node(2)].map(plainNode))
    t.alike(Buffer.from(await s.readData(0, 100)), Buffer.from(bytes(100, 7)))
  } finally {
    calls.stop()
  }
  t.alike({ reads: calls.queuedReads, writes: calls.queuedWrites }, { reads: 0, writes: 0 }, 'no call went through the queue')

  // Read back by a fresh instance, through whichever way it takes.
  await s.close()
  const r = reopen()
  t.alike((await r.getNodes([0, 1, 2, 9])).map(plainNode), [node(0), node(1), node(2), node(9)].map(plainNode))
  t.is(await r.getNode(5), null, 'the gap between the runs reads as missing')
  t.is((await r.readBitfield()).count(0, 100), 20)
  t.alike(plain(await r.readHeader()), plain(sampleHeader(1)))
  t.alike(Buffer.from(await r.readData(0, 100)), Buffer.from(bytes(100, 7)))
  await r.close()
})

test('storage: a short read of a file that takes calls at once still returns what the file holds', async (t) => {
  const { reopen } = fileBackend(t)
  const s = reopen()
  await s.putNodes([node(0), node(1)])
  // Nodes 0..9 asked for, 0 and 1 there: the read at once comes up short and the queue's way answers.
  t.is((await s.readTreeBytes(0, 10)).byteLength, 2 * TREE_NODE_SIZE)
  t.alike((await s.getNodes([1, 0, 7])).map(plainNode), [plainNode(node(1)), plainNode(node(0)), null])
  await s.close()
})

test('storage: header writes alternate slots with increasing sequence numbers', async (t) => {
  const b = memoryBackend()
  const s = b.reopen()
  for (let i = 1; i <= 3; i++) await s.writeHeader(sampleHeader(i))
  await s.close()
  const file = b.files.bytes('header')
  const slot0 = decodeHeaderSlot(file.subarray(0, HEADER_SLOT_SIZE))
  const slot1 = decodeHeaderSlot(file.subarray(HEADER_SLOT_SIZE))
  t.is(slot0?.seq, 3, 'third write back in slot 0')
  t.is(slot1?.seq, 2, 'second write in slot 1')
  t.is(slot0?.header.tree.length, 3000)
  t.is(slot1?.header.tree.length, 2000)
})

test('storage: a torn header write leaves the previous header (every cut point, garbage too)', async (t) => {
  const b = memoryBackend()
  let s = b.reopen()
  await s.writeHeader(sampleHeader(1))
  await s.writeHeader(sampleHeader(2))
  await s.close()
  const good = b.files.bytes('header')
  // The next write goes to slot 0 with sequence 3.
  const next = encodeHeaderSlot(sampleHeader(3, { manifestSize: 3000 }), 3)

  const bad: string[] = []
  const cuts: number[] = []
  for (let k = 0; k < next.byteLength; k += k < 64 ? 1 : 97) cuts.push(k)
  cuts.push(next.byteLength - 1)
  for (const k of cuts) {
    b.files.replace('header', good)
    await b.files.poke('header', 0, next.subarray(0, k))
    s = b.reopen()
    const h = await s.readHeader().catch((err) => err)
    if (h === null || h instanceof Error || h.tree.length !== 2000) bad.push(`cut ${k}`)
    await s.close()
  }
  t.alike(bad, [], `${cuts.length} prefixes of the new slot`)

  // Sector-style tearing: new bytes in some blocks, old or garbage in others.
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat(next.byteLength), fc.nat(512), fc.boolean()), { minLength: 1, maxLength: 4 }), async (pieces) => {
    b.files.replace('header', good)
    for (const [at, len, garbage] of pieces) {
      const piece = garbage ? bytes(len, at) : next.subarray(at, at + len)
      await b.files.poke('header', at, piece)
    }
    s = b.reopen()
    const h = await s.readHeader()
    await s.close()
    if (h === null || (h.tree.length !== 2000 && h.tree.length !== 3000)) throw new Error('lost the header')
  }), { numRuns: 200 })
  t.pass('200 random tears keep a valid header')

  // After a torn write the storage writes on, to the torn slot.
  b.files.replace('header', good)
  await b.files.poke('header', 0, next.subarray(0, 100))
  s = b.reopen()
  t.is((await s.readHeader())?.tree.length, 2000)
  await s.writeHeader(sampleHeader(4))
  await s.close()
  s = b.reopen()
  t.is((await s.readHeader())?.tree.length, 4000)
  await s.close()
  t.is(decodeHeaderSlot(b.files.bytes('header').subarray(HEADER_SLOT_SIZE))?.seq, 2, 'the good slot was never touched')
})

test('storage: a torn header write on real files leaves the previous header', async (t) => {
  const { dir, reopen } = fileBackend(t)
  let s = reopen()
  await s.writeHeader(sampleHeader(1))
  await s.writeHeader(sampleHeader(2))
  await s.writeHeader(sampleHeader(3)) // slot 0 = seq 3, slot 1 = seq 2: next goes to slot 1
  await s.close()
  const next = encodeHeaderSlot(sampleHeader(4), 4)
  const file = path.join(dir, 'header')
  const good = fs.readFileSync(file)
  for (const cut of [1, 4, 19, 20, 100, next.byteLength - 32, next.byteLength - 1]) {
    fs.writeFileSync(file, good)
    const fd = fs.openSync(file, 'r+')
    fs.writeSync(fd, next, 0, cut, HEADER_SLOT_SIZE)
    fs.closeSync(fd)
    s = reopen()
    t.is((await s.readHeader())?.tree.length, 3000, `cut at ${cut}`)
    await s.close()
  }
})

test('storage: neither slot valid is STORAGE_CORRUPT; a torn first write is no header', async (t) => {
  const b = memoryBackend()
  const slot = encodeHeaderSlot(sampleHeader(1), 1)

  b.files.replace('header', Buffer.concat([Buffer.from(bytes(HEADER_SLOT_SIZE, 1)), Buffer.from(bytes(500, 2))]))
  let s = b.reopen()
  t.is(await codeOf(s.readHeader()), 'STORAGE_CORRUPT', 'both slots garbage')
  t.absent(await s.isEmpty())
  await s.close()

  const twoBad = Buffer.alloc(HEADER_SLOT_SIZE + slot.byteLength)
  twoBad.set(slot, 0)
  twoBad.set(slot, HEADER_SLOT_SIZE)
  twoBad[30] ^= 1
  twoBad[HEADER_SLOT_SIZE + 30] ^= 1
  b.files.replace('header', twoBad)
  s = b.reopen()
  t.is(await codeOf(s.readHeader()), 'STORAGE_CORRUPT', 'both slots with a flipped bit')
  await s.close()

  b.files.replace('header', bytes(200, 3))
  s = b.reopen()
  t.is(await codeOf(s.readHeader()), 'STORAGE_CORRUPT', 'short garbage file')
  await s.close()

  b.files.replace('header', slot.subarray(0, 60))
  s = b.reopen()
  t.is(await s.readHeader(), null, 'first write cut short: there never was a header')
  await s.writeHeader(sampleHeader(5))
  await s.close()
  s = b.reopen()
  t.is((await s.readHeader())?.tree.length, 5000, 'and the next write works')
  await s.close()

  b.files.replace('header', new Uint8Array(0))
  s = b.reopen()
  t.is(await s.readHeader(), null, 'empty file: no header')
  await s.close()
})

test('storage: random header files only ever give a header, null or STORAGE_CORRUPT', async (t) => {
  const b = memoryBackend()
  let s = b.reopen()
  await s.writeHeader(sampleHeader(1))
  await s.writeHeader(sampleHeader(2))
  await s.close()
  const good = b.files.bytes('header')

  const file = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.uint8Array({ minLength: HEADER_SLOT_SIZE, maxLength: HEADER_SLOT_SIZE + 400 }),
    // A valid file with random bytes overwritten or cut short.
    fc.tuple(fc.array(fc.tuple(fc.nat(good.byteLength - 1), fc.nat(255)), { maxLength: 8 }), fc.nat(good.byteLength)).map(([flips, cut]) => {
      const f = Buffer.from(good)
      for (const [at, v] of flips) f[at] = v
      return f.subarray(0, cut)
    })
  )
  let outcomes = { header: 0, none: 0, corrupt: 0 }
  await fc.assert(fc.asyncProperty(file, async (f) => {
    b.files.replace('header', f)
    s = b.reopen()
    try {
      const h = await s.readHeader()
      if (h === null) outcomes.none++
      else outcomes.header++
    } catch (err) {
      if (!isCoded(err, 'STORAGE_CORRUPT')) throw err
      outcomes.corrupt++
    } finally {
      await s.close()
    }
  }), { numRuns: 300 })
  t.pass(`300 files: ${JSON.stringify(outcomes)}`)
  outcomes = { header: 0, none: 0, corrupt: 0 }

  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (payload) => {
    try {
      decodeHeader(payload)
    } catch (err) {
      if (!isCoded(err, 'STORAGE_CORRUPT')) throw err
    }
    decodeHeaderSlot(payload) // never throws
  }), { numRuns: 2000 })
  t.pass('decodeHeader throws only STORAGE_CORRUPT on 2000 random payloads')

  // Every truncation and single-byte corruption of a valid payload.
  const payload = encodeHeader(sampleHeader(3))
  let uncoded = 0
  for (let cut = 0; cut <= payload.byteLength; cut++) {
    try { decodeHeader(payload.subarray(0, cut)) } catch (err) { if (!isCoded(err, 'STORAGE_CORRUPT')) uncoded++ }
  }
  for (let i = 0; i < payload.byteLength; i++) {
    const p = Buffer.from(payload)
    p[i] = 0xff
    try { decodeHeader(p) } catch (err) { if (!isCoded(err, 'STORAGE_CORRUPT')) uncoded++ }
  }
  t.is(uncoded, 0, 'truncated or corrupted payloads: only coded errors')
  t.is(await codeOf(Promise.resolve().then(() => decodeHeader(Buffer.concat([Buffer.from(payload), Buffer.from([0])])))), 'STORAGE_CORRUPT', 'trailing bytes')
})

test('storage: a checksummed slot whose payload does not decode is ignored', async (t) => {
  const b = memoryBackend()
  let s = b.reopen()
  await s.writeHeader(sampleHeader(1))
  await s.close()
  // Forge slot 1 with seq 9: valid magic, version and checksum, garbage payload.
  const forged = encodeHeaderSlot(sampleHeader(2), 9)
  forged[20] = 0xf0 // unknown flag bits
  const n = forged.byteLength - 32
  sodium.crypto_generichash(forged.subarray(n), forged.subarray(0, n))
  await b.files.poke('header', HEADER_SLOT_SIZE, forged)
  s = b.reopen()
  t.is((await s.readHeader())?.tree.length, 1000)
  await s.close()
})

test('storage: bad headers are BAD_ARGUMENT, including one bigger than a slot', async (t) => {
  const s = memoryBackend().reopen()
  const big = sampleHeader(1, { manifestSize: HEADER_MAX_PAYLOAD })
  t.is(await codeOf(s.writeHeader(big)), 'BAD_ARGUMENT', 'bigger than a slot')
  const fits = sampleHeader(1, { manifestSize: HEADER_MAX_PAYLOAD - 400 })
  t.is(await codeOf(s.writeHeader(fits)), 'resolved', 'just under a slot')
  t.is((await s.readHeader())?.manifest?.byteLength, HEADER_MAX_PAYLOAD - 400)
  const broken: Header[] = [
    { ...sampleHeader(1), key: new Uint8Array(31) },
    { ...sampleHeader(1), keyPair: { publicKey: new Uint8Array(32), secretKey: new Uint8Array(32) } },
    { ...sampleHeader(1), tree: { fork: 0, length: -1, byteLength: 0, signature: null } },
    { ...sampleHeader(1), tree: { fork: 0.5, length: 1, byteLength: 0, signature: null } },
    { ...sampleHeader(1), hints: { contiguousLength: Number.NaN, appendedFrom: 0 } }
  ]
  for (const h of broken) t.is(await codeOf(s.writeHeader(h)), 'BAD_ARGUMENT')
  t.is(await codeOf(s.putNodes([{ index: 0, size: 1, hash: new Uint8Array(3) }])), 'BAD_ARGUMENT', 'bad node')
  await s.close()
  t.is(await codeOf(s.getNode(0)), 'SESSION_CLOSED', 'use after close')
  t.is(await codeOf(s.writeHeader(sampleHeader(1))), 'SESSION_CLOSED')
})

test('storage: header writes are serialised and coalesced to the latest', async (t) => {
  const b = memoryBackend()
  const s = b.reopen()
  await s.open()
  b.files.resetCounters()
  const writes: Array<Promise<void>> = []
  for (let i = 1; i <= 20; i++) writes.push(s.writeHeader(sampleHeader(i)))
  await Promise.all(writes)
  const n = b.files.counters('header').writes
  t.ok(n <= 2, `20 requests, ${n} writes`)
  t.is((await s.readHeader())?.tree.length, 20000)
  await s.close()
  const reopened = b.reopen()
  t.is((await reopened.readHeader())?.tree.length, 20000)
  await reopened.close()
})

test('storage: the header file is locked against a second open', async (t) => {
  const dir = tmpDir(t)
  const a = CoreStorage.fromDirectory(dir)
  await a.writeHeader(sampleHeader(1))
  const b = CoreStorage.fromDirectory(dir)
  const err = await b.open().then(() => null, (e: unknown) => e)
  t.is((err as { code?: string } | null)?.code, 'ELOCKED', 'second open fails with ELOCKED')
  await b.close()
  await a.close()
  const c = CoreStorage.fromDirectory(dir)
  t.is((await c.readHeader())?.tree.length, 1000, 'opens once the first one closed')
  await c.close()
})

test('storage: unlink deletes all four files', async (t) => {
  const dir = tmpDir(t)
  t.absent(await CoreStorage.exists(dir))
  const s = CoreStorage.fromDirectory(dir)
  await s.writeHeader(sampleHeader(1))
  await s.putNodes([node(0)])
  await s.writeData(0, bytes(10, 1))
  t.ok(await CoreStorage.exists(dir))
  t.alike(fs.readdirSync(dir).sort(), ['bitfield', 'data', 'header', 'tree'])
  await s.unlink()
  t.alike(fs.readdirSync(dir), [])
  t.absent(await CoreStorage.exists(dir))
})

test('storage: SIGKILL during a loop of header writes leaves a header that was written', { timeout: 30000 }, async (t) => {
  const dir = tmpDir(t)
  const lib = path.join(__dirname, '..', 'lib', 'storage.js')
  // The child writes headers with tree.length = 1, 2, 3, ... (and a manifest
  // of varying size so writes are big), printing each length once written.
  const child = `
    const { CoreStorage } = require(process.argv[1])
    const s = CoreStorage.fromDirectory(process.argv[2])
    const key = Buffer.alloc(32, 7)
    ;(async () => {
      const h = await s.readHeader()
      let i = h === null ? 1 : h.tree.length + 1
      process.stdout.write('start ' + i + '\\n')
      for (;;) {
        const manifest = Buffer.alloc((i * 7919) % 60000, i & 0xff)
        await s.writeHeader({ key, manifest, keyPair: null, tree: { fork: 0, length: i, byteLength: i * 3, signature: null } })
        process.stdout.write(i + '\\n')
        i++
      }
    })()
  `
  let lastAcked = 0
  for (let round = 0; round < 6; round++) {
    const acked = await new Promise<number>((resolve, reject) => {
      const p = spawn(process.execPath, ['-e', child, lib, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      let started = false
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (!started && out.includes('\n')) {
          started = true
          setTimeout(() => p.kill('SIGKILL'), 30 + Math.random() * 120)
        }
      })
      p.on('error', reject)
      p.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') return reject(new Error(`child exited with ${code}`))
        const nums = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number)
        resolve(nums.length === 0 ? lastAcked : nums[nums.length - 1])
      })
    })
    const s = CoreStorage.fromDirectory(dir)
    const h = await s.readHeader()
    await s.close()
    const len = h?.tree.length ?? 0
    const ok = (h === null && acked === 0) || (h !== null && len >= acked && len <= acked + 1 && h.tree.byteLength === len * 3 &&
      h.manifest?.byteLength === (len * 7919) % 60000 && h.manifest.every((x) => x === (len & 0xff)))
    t.ok(ok, `round ${round}: acked ${acked}, header has length ${len}`)
    lastAcked = len
  }
})
