/**
 * Block encryption against hypercore@11.35.1: the same keys give the same
 * ciphertext, tree and signatures; encrypted cores replicate both ways; a
 * reader without the key, a block key, a key set after open and custom
 * providers behave as they do in Hypercore 11.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { Hypercore, blocks, freshDir, openCore } from './helpers/core'
import { hcCrypto, type Teardownable } from './helpers/oracle'
import { ramCore, replicate } from './helpers/replication'
import { Hypercore11, hc11, type EncryptedHypercore11, type Provider11 } from './helpers/encryption-oracle'
import { DefaultEncryption, encryptionCore, type EncryptionProvider } from '../lib/encryption'
import { internals } from '../lib/hypercore'
import type { Proof } from '../lib/proof'

const ENCRYPTION_KEY = b4a.alloc(32, 'an encryption key')
const OTHER_KEY = b4a.alloc(32, 'another key')

/** Anything we compare block by block: both implementations' get. */
interface Readable {
  readonly length: number
  get (index: number, opts?: { raw?: boolean, decrypt?: boolean }): Promise<unknown>
}

async function rawBlocks (core: Readable): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for (let i = 0; i < core.length; i++) out.push(await core.get(i, { raw: true }) as Uint8Array)
  return out
}

async function plainBlocks (core: Readable): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < core.length; i++) out.push(b4a.toString(await core.get(i) as Uint8Array))
  return out
}

async function signature (core: { length: number, proof (req: { upgrade: { start: number, length: number } }): Promise<Pick<Proof, 'upgrade'>> }): Promise<Uint8Array | null> {
  const proof = await core.proof({ upgrade: { start: 0, length: core.length } })
  return proof.upgrade?.signature ?? null
}

/** A nomadcore writer and a Hypercore 11 writer with one key pair and the same options. */
async function twins (t: Teardownable, opts: { encryption?: { key: Uint8Array, block?: boolean }, encryptionKey?: Uint8Array, isBlockKey?: boolean }): Promise<{ ours: Hypercore, theirs: EncryptedHypercore11 }> {
  const keyPair = hcCrypto.keyPair()
  const ours = await openCore(t, freshDir(t), { keyPair, ...opts })
  const theirs = await hc11(t, null, { keyPair, ...opts })
  return { ours, theirs }
}

/** Connects a Hypercore 11 reader to `source` and waits for it to learn the length. */
async function follow11 (t: Teardownable, source: Hypercore | EncryptedHypercore11, reader: EncryptedHypercore11): Promise<boolean> {
  const done = reader.findingPeers()
  replicate(t, source, reader)
  const updating = reader.update({ wait: true })
  done()
  return updating
}

/** A nomadcore reader and a Hypercore 11 reader of `w`, neither given its encryption key, both caught up with it. */
async function readersWithoutKey (t: Teardownable, w: EncryptedHypercore11): Promise<{ ours: Hypercore, theirs: EncryptedHypercore11 }> {
  const ours = await ramCore(t, w.key)
  const theirs = await hc11(t, w.key)
  replicate(t, w, ours)
  await ours.update({ wait: true })
  await follow11(t, w, theirs)
  return { ours, theirs }
}

// ---------------------------------------------------------------------------
// The scheme on its own

test('the default scheme derives the block and blinding keys Hypercore 11 derives (default, compat, block)', t => {
  for (let i = 0; i < 20; i++) {
    const coreKey = hcCrypto.randomBytes(32)
    const encryptionKey = hcCrypto.randomBytes(i === 0 ? 7 : 32) // the default derivation takes any length
    for (const opts of [{}, { compat: true }, { block: true }]) {
      if (opts.block === true && encryptionKey.byteLength !== 32) continue
      const ours = DefaultEncryption.deriveKeys(encryptionKey, coreKey, opts)
      const theirs = Hypercore11.DefaultEncryption.deriveKeys(encryptionKey, coreKey, opts)
      t.ok(b4a.equals(ours.block, theirs.block) && b4a.equals(ours.blinding, theirs.blinding), 'keys agree for ' + JSON.stringify(opts))
    }
    t.alike(Hypercore.blockEncryptionKey(coreKey, encryptionKey), Hypercore11.blockEncryptionKey(coreKey, encryptionKey))
  }
  t.is(Hypercore.DefaultEncryption.PADDING, Hypercore11.DefaultEncryption.PADDING)
})

test('a block encrypted by the default scheme is byte-identical to Hypercore 11\'s, for any index, fork and block', async t => {
  const blockKey = hcCrypto.randomBytes(32)
  const blindingKey = hcCrypto.randomBytes(32)
  let checked = 0
  t.execution(() => fc.assert(fc.property(
    fc.maxSafeNat(), fc.maxSafeNat(), fc.uint8Array({ maxLength: 300 }),
    (index, fork, plain) => {
      const ours = b4a.concat([b4a.alloc(8), plain])
      const theirs = b4a.from(ours)
      DefaultEncryption.encrypt(index, ours, fork, blockKey, blindingKey)
      Hypercore11.DefaultEncryption.encrypt(index, theirs, fork, blockKey, blindingKey)
      if (!b4a.equals(ours, theirs)) return false
      DefaultEncryption.decrypt(index, ours, blockKey)
      checked++
      return b4a.equals(ours.subarray(8), plain)
    }
  ), { numRuns: 300 }))
  t.is(checked, 300, 'every run encrypted identically and decrypted back')
})

test('a block shorter than the padding is refused with BAD_ARGUMENT, not read past its end', t => {
  const key = hcCrypto.randomBytes(32)
  t.exception(() => DefaultEncryption.decrypt(0, b4a.alloc(5), key), /BAD_ARGUMENT/)
  t.exception(() => DefaultEncryption.encrypt(0, b4a.alloc(7), 0, key, key), /BAD_ARGUMENT/)
  t.exception(() => DefaultEncryption.deriveKeys(b4a.alloc(16), key, { block: true }), /BAD_ARGUMENT/)
})

test('a default-scheme provider made before the manifest follows a core that turns out to be compat', t => {
  const coreKey = hcCrypto.randomBytes(32)
  const provider = new DefaultEncryption(ENCRYPTION_KEY, coreKey, { compat: false })
  let compat = false
  const view = { key: coreKey, discoveryKey: coreKey, manifest: null, length: 0, fork: 0, get compat () { return compat } }
  compat = true
  const ours = b4a.concat([b4a.alloc(8), b4a.from('compat block')])
  provider.encrypt(3, ours, 0, view)
  const keys = Hypercore11.DefaultEncryption.deriveKeys(ENCRYPTION_KEY, coreKey, { compat: true })
  const theirs = b4a.concat([b4a.alloc(8), b4a.from('compat block')])
  Hypercore11.DefaultEncryption.encrypt(3, theirs, 0, keys.block, keys.blinding)
  t.alike(ours, theirs, 'encrypted with the compat keys')
  t.ok(provider.compat)
})

// ---------------------------------------------------------------------------
// Writers agree byte for byte

test('same key pair, encryption key and blocks give Hypercore 11\'s ciphertext, tree hash, signature and lengths', async t => {
  const { ours, theirs } = await twins(t, { encryption: { key: ENCRYPTION_KEY } })
  t.alike(ours.key, theirs.key)
  t.ok(ours.encryption !== null && theirs.encryption !== null)

  t.alike(await ours.append(blocks(5)), await theirs.append(blocks(5)), 'append results (byte length with padding)')
  t.alike(await ours.append(blocks(1, 5)), await theirs.append(blocks(1, 5)))
  t.alike(await rawBlocks(ours), await rawBlocks(theirs), 'stored ciphertext is identical')
  t.alike(await ours.treeHash(), await theirs.treeHash())
  t.alike(await signature(ours), await signature(theirs))

  // A new fork changes the blinded fork id in every later block's padding.
  await ours.truncate(3)
  await theirs.truncate(3)
  await ours.append(blocks(4, 100))
  await theirs.append(blocks(4, 100))
  t.is(ours.fork, 1)
  t.alike(await rawBlocks(ours), await rawBlocks(theirs), 'ciphertext after a truncation is identical')
  t.alike(await ours.treeHash(), await theirs.treeHash())
  t.alike(await signature(ours), await signature(theirs))

  t.is(ours.padding, theirs.padding)
  t.is(ours.padding, 8)
  t.is(ours.byteLength, theirs.byteLength, 'byte length without padding')
  const [oi, ti] = [await ours.info(), await theirs.info()]
  t.is(oi.byteLength, ti.byteLength)
  t.is(oi.padding, ti.padding)
  t.alike(await plainBlocks(ours), await plainBlocks(theirs))
  t.alike(await plainBlocks(ours), [...blocks(3), ...blocks(4, 100)].map(b => b4a.toString(b)))
  for (const bytes of [0, 5, 7, 8, 20, ours.byteLength - 1, ours.byteLength]) {
    t.alike(await ours.seek(bytes), await theirs.seek(bytes), 'seek ' + bytes + ' counts no padding')
  }
  const stored = b4a.concat(await rawBlocks(ours))
  t.absent(b4a.includes(stored, b4a.from('block 1')), 'no plaintext on disk')
})

test('a value encoding applies to the plaintext, and raw and decrypt: false return what Hypercore 11 returns', async t => {
  const keyPair = hcCrypto.keyPair()
  const ours = await openCore(t, freshDir(t), { keyPair, encryption: { key: ENCRYPTION_KEY }, valueEncoding: 'json' })
  const theirs = await hc11(t, null, { keyPair, encryption: { key: ENCRYPTION_KEY } })
  await ours.append([{ hello: 'world' }, [1, 2, 3]])
  await theirs.append([b4a.from(JSON.stringify({ hello: 'world' })), b4a.from(JSON.stringify([1, 2, 3]))])
  t.alike(await ours.get(0), { hello: 'world' })
  t.alike(await ours.get(1), [1, 2, 3])
  for (let i = 0; i < 2; i++) {
    const raw = await ours.get(i, { raw: true })
    t.alike(raw, await theirs.get(i, { raw: true }), 'raw: ciphertext with padding, not decoded')
    t.alike(await ours.get(i, { decrypt: false, valueEncoding: 'binary' }), await theirs.get(i, { decrypt: false }), 'decrypt: false: ciphertext without padding')
  }
  t.is(ours.byteLength, theirs.byteLength)
})

test('createReadStream decrypts', async t => {
  const core = await ramCore(t, null, { encryption: ENCRYPTION_KEY, valueEncoding: 'utf-8' })
  await core.append(['a', 'bb', 'ccc'])
  const seen: unknown[] = []
  for await (const v of core.createReadStream()) seen.push(v)
  t.alike(seen, ['a', 'bb', 'ccc'])
})

// ---------------------------------------------------------------------------
// Replication both ways

test('a core Hypercore 11 encrypts replicates to nomadcore and reads back with the same key', async t => {
  const w = await hc11(t, null, { encryption: { key: ENCRYPTION_KEY } })
  await w.append(blocks(30))
  const r = await ramCore(t, w.key, { encryption: { key: ENCRYPTION_KEY } })
  const theirReader = await hc11(t, w.key, { encryption: { key: ENCRYPTION_KEY } })
  replicate(t, w, r)
  t.is(await r.update({ wait: true }), true)
  await follow11(t, w, theirReader)
  const downloads: Array<[number, number]> = []
  r.on('download', (index, byteLength) => downloads.push([index, byteLength]))
  t.is(b4a.toString(await r.get(17) as Uint8Array), b4a.toString(blocks(1, 17)[0]!), 'a sparse get decrypts')
  t.alike(downloads, [[17, blocks(1, 17)[0]!.byteLength]], 'download reports the size without padding, as Hypercore 11')
  await r.download({ start: 0, end: 30 }).done()
  t.alike(await plainBlocks(r), blocks(30).map(b => b4a.toString(b)))
  t.alike(await rawBlocks(r), await rawBlocks(w), 'the stored ciphertext is the writer\'s')
  t.alike(await r.treeHash(), await w.treeHash())
  t.is(r.padding, theirReader.padding)
  t.is(r.byteLength, theirReader.byteLength)
  t.is(r.byteLength, w.byteLength)
  for (const bytes of [0, 9, 10, 100, r.byteLength]) t.alike(await r.seek(bytes), await theirReader.seek(bytes), 'seek ' + bytes)

  // Live: a block appended after the reader caught up.
  await w.append(b4a.from('live one'))
  t.is(b4a.toString(await r.get(30) as Uint8Array), 'live one')
})

test('a core nomadcore encrypts replicates to Hypercore 11 and reads back with the same key', async t => {
  const w = await ramCore(t, null, { encryption: { key: ENCRYPTION_KEY } })
  await w.append(blocks(30))
  await w.truncate(20)
  await w.append(blocks(5, 200))
  const r = await hc11(t, w.key!, { encryption: { key: ENCRYPTION_KEY } })
  t.is(await follow11(t, w, r), true)
  t.is(r.length, 25)
  t.is(r.fork, 1)
  await r.download({ start: 0, end: 25 }).done()
  t.alike(await plainBlocks(r), [...blocks(20), ...blocks(5, 200)].map(b => b4a.toString(b)))
  t.alike(await rawBlocks(r), await rawBlocks(w))
  t.is(r.byteLength, w.byteLength)
  t.is(r.padding, w.padding)
  await w.append(b4a.from('live one'))
  t.is(b4a.toString(await r.get(25) as Uint8Array), 'live one')
})

test('without the key a nomadcore reader sees the ciphertext Hypercore 11\'s reader sees, padding included', async t => {
  const w = await hc11(t, null, { encryption: { key: ENCRYPTION_KEY } })
  await w.append(blocks(10))
  const { ours, theirs } = await readersWithoutKey(t, w)
  t.is(ours.encryption, null)
  for (let i = 0; i < 10; i++) {
    const a = await ours.get(i) as Uint8Array
    t.alike(a, await theirs.get(i), 'block ' + i)
    t.is(a.byteLength, blocks(1, i)[0]!.byteLength + 8, 'the padding comes with it')
  }
  t.alike(await ours.get(2), await w.get(2, { raw: true }))
  t.is(ours.padding, 0)
  t.is(ours.padding, theirs.padding)
  t.is(ours.byteLength, theirs.byteLength, 'byte length with padding, as Hypercore 11 counts it without a key')
  t.is(ours.byteLength, w.byteLength + 10 * 8)
})

test('without the key a Hypercore 11 reader sees nomadcore\'s ciphertext, padding included', async t => {
  const w = await ramCore(t, null, { encryption: { key: ENCRYPTION_KEY } })
  await w.append(blocks(10))
  const r = await hc11(t, w.key!)
  await follow11(t, w, r)
  for (let i = 0; i < 10; i++) t.alike(await r.get(i), await w.get(i, { raw: true }), 'block ' + i)
  t.is(r.byteLength, w.byteLength + 10 * 8)
})

// ---------------------------------------------------------------------------
// Keys

test('a block key ({ block: true } or isBlockKey) encrypts as Hypercore 11 does, and blockEncryptionKey stands in for the encryption key', async t => {
  const keyPair = hcCrypto.keyPair()
  const plain = await openCore(t, freshDir(t), { keyPair, encryption: { key: ENCRYPTION_KEY } })
  const blockKey = Hypercore.blockEncryptionKey(plain.key!, ENCRYPTION_KEY)
  const viaBlock = await openCore(t, freshDir(t), { keyPair, encryption: { key: blockKey, block: true } })
  const viaFlag = await openCore(t, freshDir(t), { keyPair, encryptionKey: blockKey, isBlockKey: true })
  const theirs = await hc11(t, null, { keyPair, encryption: { key: blockKey, block: true } })
  for (const core of [plain, viaBlock, viaFlag, theirs]) await core.append(blocks(6))
  const expected = await rawBlocks(theirs)
  t.alike(await rawBlocks(plain), expected, 'default derivation = the block key it gives')
  t.alike(await rawBlocks(viaBlock), expected)
  t.alike(await rawBlocks(viaFlag), expected)

  // A raw 32-byte block key, unrelated to the core key.
  const { ours: o2, theirs: t2 } = await twins(t, { encryption: { key: OTHER_KEY, block: true } })
  await o2.append(blocks(3))
  await t2.append(blocks(3))
  t.alike(await rawBlocks(o2), await rawBlocks(t2))

  // A reader holding only the block key reads what a writer with the encryption key wrote.
  const r = await hc11(t, plain.key!, { encryptionKey: blockKey, isBlockKey: true })
  await follow11(t, plain, r)
  t.alike(await plainBlocks(r), blocks(6).map(b => b4a.toString(b)))
})

test('setEncryptionKey after open decrypts what was ciphertext, and setEncryption(null) shows it again, as in Hypercore 11', async t => {
  const w = await hc11(t, null, { encryption: { key: ENCRYPTION_KEY } })
  await w.append(blocks(4))
  const { ours, theirs } = await readersWithoutKey(t, w)
  const cipher = await ours.get(1)

  await ours.setEncryptionKey(ENCRYPTION_KEY)
  await theirs.setEncryptionKey(ENCRYPTION_KEY)
  t.ok(ours.encryption instanceof DefaultEncryption)
  t.alike(await plainBlocks(ours), blocks(4).map(b => b4a.toString(b)))
  t.alike(await plainBlocks(ours), await plainBlocks(theirs))
  t.is(ours.padding, theirs.padding)
  t.is(ours.byteLength, theirs.byteLength)

  await ours.setEncryption(null)
  await theirs.setEncryption(null)
  t.alike(await ours.get(1), cipher)
  t.alike(await ours.get(1), await theirs.get(1))
  t.is(ours.padding, 0)
  t.is(ours.byteLength, theirs.byteLength)

  // A wrong key decrypts to garbage, as in Hypercore 11: there is no authentication.
  await ours.setEncryptionKey(OTHER_KEY)
  await theirs.setEncryptionKey(OTHER_KEY)
  t.alike(await ours.get(1), await theirs.get(1))
  t.unlike(b4a.toString(await ours.get(1) as Uint8Array), b4a.toString(blocks(1, 1)[0]!))

  // And setEncryptionKey with a block key on a writer.
  const { ours: o2, theirs: t2 } = await twins(t, {})
  await o2.setEncryptionKey(OTHER_KEY, { block: true })
  await t2.setEncryptionKey(OTHER_KEY, { block: true })
  await o2.append(blocks(3))
  await t2.append(blocks(3))
  t.alike(await rawBlocks(o2), await rawBlocks(t2))
  t.alike(await signature(o2), await signature(t2))
})

test('encryption is not stored: a reopened core without the key returns ciphertext, with it plaintext', async t => {
  const dir = freshDir(t)
  const first = new Hypercore(dir, { encryption: { key: ENCRYPTION_KEY } })
  await first.append(blocks(3))
  const cipher = await first.get(2, { raw: true })
  await first.close()
  const bare = new Hypercore(dir)
  await bare.ready()
  t.alike(await bare.get(2), cipher)
  t.is(bare.byteLength, first.byteLength + 3 * 8)
  await bare.close()
  const keyed = await openCore(t, dir, { encryptionKey: ENCRYPTION_KEY })
  t.alike(await keyed.get(2), blocks(1, 2)[0])
  t.is(keyed.byteLength, first.byteLength)
  await keyed.append(b4a.from('after reopen'))
  t.is(b4a.toString(await keyed.get(3) as Uint8Array), 'after reopen')
})

// ---------------------------------------------------------------------------
// Custom providers

/** Writes the index into its 4 padding bytes and XORs the rest with it. */
class IndexXor implements EncryptionProvider, Provider11 {
  padding (): number { return 4 }
  async encrypt (index: number, block: Uint8Array, fork: number): Promise<void> {
    await new Promise(resolve => setImmediate(resolve))
    new DataView(block.buffer, block.byteOffset).setUint32(0, index + fork * 1000, true)
    for (let i = 4; i < block.byteLength; i++) block[i]! ^= (index + 1) & 0xff
  }

  decrypt (index: number, block: Uint8Array): void {
    for (let i = 4; i < block.byteLength; i++) block[i]! ^= (index + 1) & 0xff
  }
}

test('a custom provider with its own padding works as in Hypercore 11, and the caller\'s bytes stay untouched', async t => {
  const keyPair = hcCrypto.keyPair()
  const ours = await openCore(t, freshDir(t), { keyPair, encryption: new IndexXor() })
  const theirs = await hc11(t, null, { keyPair, encryption: new IndexXor() })
  const input = blocks(5)
  const copies = input.map(b => b4a.from(b))
  await ours.append(input)
  await theirs.append(copies.map(b => b4a.from(b)))
  t.alike(input, copies, 'append did not encrypt the caller\'s buffers')
  t.alike(await rawBlocks(ours), await rawBlocks(theirs))
  t.alike(await ours.treeHash(), await theirs.treeHash())
  t.is(ours.padding, 4)
  t.is(ours.byteLength, theirs.byteLength)
  t.alike(await plainBlocks(ours), input.map(b => b4a.toString(b)))

  // Read back across replication, each side with its own provider instance.
  const r = await hc11(t, ours.key!, { encryption: new IndexXor() })
  await follow11(t, ours, r)
  t.alike(await plainBlocks(r), input.map(b => b4a.toString(b)))
})

test('a provider is told about the core: its key, manifest and fork', async t => {
  const seen: Array<{ key: Uint8Array, version: number | null, fork: number }> = []
  const provider: EncryptionProvider = {
    padding: () => 0,
    encrypt (_index, _block, fork, core) { seen.push({ key: core.key, version: core.manifest?.version ?? null, fork }) },
    decrypt () {}
  }
  const core = await ramCore(t, null, { encryption: provider })
  await core.append(b4a.from('x'))
  await core.truncate(0)
  await core.append(b4a.from('y'))
  t.alike(seen, [{ key: core.key!, version: 1, fork: 0 }, { key: core.key!, version: 1, fork: 1 }])
  t.is(encryptionCore(internals(core).core!).compat, false)
})

test('a provider that fails to encrypt leaves the core as it was', async t => {
  let fail = true
  const provider: EncryptionProvider = {
    padding: () => 8,
    encrypt (index, block, fork, core) {
      if (fail) throw new Error('no key today')
      new DefaultEncryption(ENCRYPTION_KEY, core.key).encrypt(index, block, fork, core)
    },
    decrypt (index, block, core) { new DefaultEncryption(ENCRYPTION_KEY, core.key).decrypt(index, block, core) }
  }
  const core = await ramCore(t, null, { encryption: provider })
  await t.exception(core.append(blocks(3)), /no key today/)
  t.is(core.length, 0)
  t.is(core.byteLength, 0)
  t.is(await core.get(0, { wait: false }), null)
  fail = false
  await core.append(blocks(2))
  t.is(core.length, 2)
  t.alike(await core.get(1), blocks(1, 1)[0])
})

test('setEncryption refuses what is not a provider; bad encryption options are refused', async t => {
  const core = await ramCore(t)
  const notAProvider = { padding: () => 0, encrypt: () => {} } as unknown as EncryptionProvider
  await t.exception(core.setEncryption(notAProvider), /Provider does not satisfy/)
  t.is(core.encryption, null)
  const theirs = await hc11(t, null)
  await t.exception(theirs.setEncryption(notAProvider as unknown as Provider11), /Provider does not satisfy/)
  t.exception(() => new Hypercore(freshDir(t), { encryption: 'secret' as unknown as Uint8Array }), /BAD_ARGUMENT/)
  t.exception(() => new Hypercore(freshDir(t), { encryption: { key: b4a.alloc(16), block: true } }), /BAD_ARGUMENT/)
  t.exception(() => new Hypercore(freshDir(t), { encryptionKey: b4a.alloc(16), isBlockKey: true }), /BAD_ARGUMENT/)
  await t.exception(core.setEncryptionKey(b4a.alloc(16), { block: true }), /BAD_ARGUMENT/)
  // As in Hypercore 11: a key of null, or { key: null }, means no encryption.
  const none = await ramCore(t, null, { encryption: { key: null } })
  t.is(none.encryption, null)
  await core.setEncryptionKey(ENCRYPTION_KEY)
  await core.setEncryptionKey(null)
  t.is(core.encryption, null)
})
