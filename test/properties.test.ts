/**
 * Model-based property tests: random sequences of appends, truncates,
 * reopens, reads and proofs against a plain array of blocks.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { Hypercore, freshDir } from './helpers/core'
import { keyPair } from '../lib/crypto'
import { wire, encode, decode } from '../lib/messages'

type Op =
  | { kind: 'append', blocks: Uint8Array[] }
  | { kind: 'truncate', to: number }
  | { kind: 'reopen' }
  | { kind: 'get', at: number }
  | { kind: 'proof', at: number }
  | { kind: 'seek', at: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 8 }).map(blocks => ({ kind: 'append' as const, blocks })) },
  { weight: 1, arbitrary: fc.nat({ max: 1000 }).map(to => ({ kind: 'truncate' as const, to })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 3, arbitrary: fc.nat({ max: 1000 }).map(at => ({ kind: 'get' as const, at })) },
  { weight: 2, arbitrary: fc.nat({ max: 1000 }).map(at => ({ kind: 'proof' as const, at })) },
  { weight: 1, arbitrary: fc.nat({ max: 100000 }).map(at => ({ kind: 'seek' as const, at })) }
)

test('appends, truncates, reopens, gets and proofs agree with an array model', async t => {
  const kp = keyPair()
  await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async ops => {
    const dir = freshDir(t, 'prop')
    let core = new Hypercore(dir, { keyPair: kp })
    await core.ready()
    const model: Uint8Array[] = []
    let fork = 0
    try {
      for (const op of ops) {
        if (op.kind === 'append') {
          const r = await core.append(op.blocks)
          model.push(...op.blocks)
          if (r.length !== model.length) return false
        } else if (op.kind === 'truncate') {
          const to = model.length === 0 ? 0 : op.to % (model.length + 1)
          await core.truncate(to)
          model.length = to
          fork++
        } else if (op.kind === 'reopen') {
          await core.close()
          core = new Hypercore(dir)
          await core.ready()
        } else if (op.kind === 'get') {
          if (model.length === 0) continue
          const i = op.at % model.length
          if (!b4a.equals(await core.get(i) as Uint8Array, model[i]!)) return false
        } else if (op.kind === 'proof') {
          if (model.length === 0) continue
          const i = op.at % model.length
          const proof = await core.proof({ block: { index: i, nodes: 0 }, upgrade: { start: 0, length: model.length } })
          proof.block!.value = model[i]!
          const verified = await core.verifyFullyRemote(proof)
          if (verified.length !== model.length || verified.fork !== fork) return false
          if (!b4a.equals(verified.treeHash, await core.treeHash())) return false
        } else {
          const total = model.reduce((s, b) => s + b.byteLength, 0)
          const bytes = total === 0 ? 0 : op.at % (total + 1)
          const found = await core.seek(bytes, { wait: false })
          if (found === null) return false
          const [index, offset] = found
          // The answer must point at byte `bytes`: inside block `index`, or the end.
          const before = model.slice(0, index).reduce((sum, b) => sum + b.byteLength, 0)
          if (before + offset !== bytes) return false
          if (index < model.length ? offset >= model[index]!.byteLength : offset !== 0) return false
        }
        if (core.length !== model.length || core.fork !== fork) return false
        if (core.byteLength !== model.reduce((s, b) => s + b.byteLength, 0)) return false
      }
      return true
    } finally {
      await core.close()
    }
  }), { numRuns: 60 })
  t.pass('60 random histories')
})

test('a proof for any block round-trips through the wire encoding and verifies', async t => {
  const core = new Hypercore(freshDir(t))
  t.teardown(() => core.close())
  const blocks = Array.from({ length: 64 }, (_, i) => b4a.from('x'.repeat(i)))
  await core.append(blocks)
  await fc.assert(fc.asyncProperty(fc.nat({ max: 63 }), fc.nat({ max: 63 }), async (index, len) => {
    const length = Math.max(index + 1, len + 1)
    const proof = await core.proof({ block: { index, nodes: 0 }, upgrade: { start: 0, length } })
    proof.block!.value = blocks[index]!
    const bytes = encode(wire.data, { request: 1, ...proof, block: { ...proof.block!, value: blocks[index]! } })
    const back = decode(wire.data, bytes)
    const verified = await core.verifyFullyRemote({ ...back, manifest: null })
    return verified.length === 64
  }), { numRuns: 100 })
  t.pass('100 proofs')
})
