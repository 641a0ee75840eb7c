/**
 * The two implementations under test, behind the common `BenchCore` shape.
 * Both are given a directory: nomadcore stores its files there with
 * random-access-file, Hypercore 11 opens its RocksDB storage there.
 */
import * as path from 'path'
import * as fs from 'fs'
import { Hypercore as NomadCore, type Proof } from '../lib/hypercore'
import { Hypercore as HypercoreClass, type HypercoreProof } from '../test/helpers/oracle'
import type { BenchCore, BenchKeyPair, BenchProofRequest, Contender } from './harness'

function packageVersion (file: string): string {
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(file, 'utf8'))
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version
  } catch {}
  return 'unknown'
}

function asBuffer (b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** A proof of block `index` with an upgrade from 0 to `length`. */
export function blockRequest (index: number, length: number): BenchProofRequest & { block: { index: number, nodes: number } } {
  return { block: { index, nodes: 0 }, upgrade: { start: 0, length } }
}

export const nomadcore: Contender = {
  name: 'nomadcore',
  version: packageVersion(path.join(__dirname, '..', '..', 'package.json')),
  async open (dir: string, keyPair: BenchKeyPair): Promise<BenchCore> {
    const core = new NomadCore(dir, { keyPair })
    await core.ready()
    const bench: BenchCore<Proof> = {
      get length () { return core.length },
      async append (blocks) { await core.append(blocks) },
      async get (index) {
        const value = await core.get(index, { wait: false })
        if (!(value instanceof Uint8Array)) throw new Error(`nomadcore: block ${index} is not stored`)
        return value
      },
      proof: req => core.proof(req),
      async blockProofWithValue (index, length) {
        // Our proof() leaves block.value null: read the block alongside, as a server would.
        const [proof, value] = await Promise.all([core.proof(blockRequest(index, length)), bench.get(index)])
        bench.setBlockValue(proof, value)
        return proof
      },
      setBlockValue (proof, value) {
        if (proof.block === null) throw new Error('nomadcore: not a block proof')
        proof.block.value = value
      },
      async verifyFullyRemote (proof) { await core.verifyFullyRemote(proof) },
      treeHash: length => core.treeHash(length),
      close: () => core.close()
    }
    return bench
  }
}

export const hypercore: Contender = {
  name: 'hypercore',
  version: packageVersion(path.join(path.dirname(require.resolve('hypercore')), 'package.json')),
  async open (dir: string, keyPair: BenchKeyPair): Promise<BenchCore> {
    const core = new HypercoreClass(dir, { keyPair })
    await core.ready()
    const bench: BenchCore<HypercoreProof> = {
      get length () { return core.length },
      async append (blocks) { await core.append(blocks) },
      async get (index) {
        const value = await core.get(index, { wait: false })
        if (value === null) throw new Error(`hypercore: block ${index} is not stored`)
        return value
      },
      proof: req => core.proof(req),
      async blockProofWithValue (index, length) {
        // Hypercore's proof() reads the block into block.value itself.
        const proof = await core.proof(blockRequest(index, length))
        if (proof.block === null || proof.block.value === null) throw new Error(`hypercore: no block ${index} in its proof`)
        return proof
      },
      setBlockValue (proof, value) {
        if (proof.block === null) throw new Error('hypercore: not a block proof')
        proof.block.value = asBuffer(value)
      },
      async verifyFullyRemote (proof) { await core.verifyFullyRemote(proof) },
      treeHash: length => core.treeHash(length),
      close: () => core.close()
    }
    return bench
  }
}

export const contenders: readonly Contender[] = [nomadcore, hypercore]
