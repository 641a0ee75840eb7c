/**
 * Local single-core rows: appends, reads, block proofs and tree hashes.
 * Sizes are the full-run sizes; `env.count()` scales them (`--quick`).
 */
import { blockRequest } from './contenders'
import { blockPool, disposeCore, randomInts, type BenchCore, type BenchEnv, type Contender, type Row, type Trial } from './harness'

export const BLOCK_SIZE = 1024
const BATCH = 100
/** Distinct block contents cycled through; hashing cost does not depend on content. */
const POOL = blockPool(0x5eed, 256, BLOCK_SIZE)

function block (i: number): Uint8Array {
  return POOL[i % POOL.length]!
}

function batchOf (start: number, n: number): Uint8Array[] {
  const out = new Array<Uint8Array>(n)
  for (let k = 0; k < n; k++) out[k] = block(start + k)
  return out
}

/** Appends `n` blocks in batches of BATCH. */
async function fill (core: BenchCore, n: number): Promise<void> {
  for (let i = 0; i < n; i += BATCH) await core.append(batchOf(i, Math.min(BATCH, n - i)))
}

/**
 * The read-only core the read rows share, built once per contender: 10,000
 * blocks in full and quick runs (quick cuts op counts, not the core), fewer
 * in the warm-up.
 */
function readCore (contender: Contender, env: BenchEnv): Promise<BenchCore> {
  const n = Math.min(10_000, env.count(100_000, 200))
  return env.sharedCore(contender, `read-${n}`, core => fill(core, n))
}

async function freshCore (contender: Contender, env: BenchEnv, label: string): Promise<{ core: BenchCore, dir: string }> {
  const dir = env.tmpDir(`${contender.name}-${label}`)
  return { core: await contender.open(dir, env.keyPair), dir }
}


export const appendOne: Row = {
  id: 'append',
  label: 'append 1 KiB, one per call',
  unit: 'block',
  note: 'Append 1 KiB blocks one at a time to a fresh core (one signature and one commit per block).',
  async prepare (contender, env): Promise<Trial> {
    const n = env.count(5_000)
    const { core, dir } = await freshCore(contender, env, 'append')
    return {
      ops: n,
      async run () {
        for (let i = 0; i < n; i++) await core.append(block(i))
      },
      dispose: disposeCore(core, dir)
    }
  }
}

export const appendBatch: Row = {
  id: 'append-batch',
  label: `append 1 KiB, ${BATCH} per call`,
  unit: 'block',
  note: 'Append 1 KiB blocks in batches of 100 to a fresh core (one signature and one commit per batch).',
  async prepare (contender, env): Promise<Trial> {
    const n = Math.max(BATCH, Math.round(env.count(50_000) / BATCH) * BATCH)
    const { core, dir } = await freshCore(contender, env, 'append-batch')
    const batches: Uint8Array[][] = []
    for (let i = 0; i < n; i += BATCH) batches.push(batchOf(i, BATCH))
    return {
      ops: n,
      async run () {
        for (const batch of batches) await core.append(batch)
      },
      dispose: disposeCore(core, dir)
    }
  }
}

export const randomGet: Row = {
  id: 'get',
  label: 'random get, 10k-block core',
  unit: 'get',
  note: '`get(i)` at uniformly random indices of a 10,000-block core; the same index sequence for both. nomadcore checks a block against its verified leaf each time it reads it from disk, and keeps its verified bytes in memory once it has read it twice (16 MiB for the process, which this core fits); a kept block is neither read from disk nor hashed again. The core stays open across rounds: the first round starts with nothing kept, later ones find most blocks kept.',
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const indices = randomInts(0x6e7, env.count(20_000), 0, core.length)
    return {
      ops: indices.length,
      async run () {
        for (const i of indices) await core.get(i)
      }
    }
  }
}

export const readStream: Row = {
  id: 'read-stream',
  label: 'createReadStream, every block of a 10k-block core',
  unit: 'block',
  note: '`createReadStream()` over the 10,000-block core of `get`, consumed with `for await` from the first block to the last (nomadcore checks every block against its verified leaf, or finds it in its block cache: the `get` rows before this one, on the same open core, read most blocks twice).',
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    return {
      ops: core.length,
      async run () {
        const n = await core.readStream()
        if (n !== core.length) throw new Error(`${contender.name}: read stream gave ${n} blocks of ${core.length}`)
      }
    }
  }
}

export const randomGetRaw: Row = {
  id: 'get-raw',
  label: 'random get, 10k-block core, verify: false',
  unit: 'get',
  note: 'As `get`, with `get(i, { verify: false })`: nomadcore reads the stored bytes from disk unchecked every time, as Hypercore 11 always does (its column is the same call as in `get`).',
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const indices = randomInts(0x6e7, env.count(20_000), 0, core.length)
    return {
      ops: indices.length,
      async run () {
        for (const i of indices) await core.get(i, { verify: false })
      }
    }
  }
}

/** A closed copy of the read core's contents, built once per contender: rows that reopen it. */
function coldReadDir (contender: Contender, env: BenchEnv): Promise<string> {
  const n = Math.min(10_000, env.count(100_000, 200))
  return env.memo(contender, `cold-read-dir-${n}`, async () => {
    const { core, dir } = await freshCore(contender, env, 'cold-read')
    await fill(core, n)
    await core.close()
    return dir
  })
}

function coldGet (id: string, verify: boolean): Row {
  return {
    id,
    label: `random get, 10k-block core just reopened${verify ? '' : ', verify: false'}`,
    unit: 'get',
    note: verify
      ? 'As `get`, on the same kind of core closed and reopened before each round (untimed): no tree node or block is in memory, so nomadcore verifies each leaf the first time, reading it with its neighbours (the 16-leaf subtree around it) and hashing up to a verified node, then caches what it verified, and hashes each block the first time it reads it.'
      : 'As `get-cold`, with `verify: false` for nomadcore.',
    async prepare (contender, env): Promise<Trial> {
      const dir = await coldReadDir(contender, env)
      const core = await contender.open(dir, env.keyPair)
      const indices = randomInts(0x6e7, env.count(20_000), 0, core.length)
      return {
        ops: indices.length,
        async run () {
          for (const i of indices) await core.get(i, { verify })
        },
        dispose: () => core.close()
      }
    }
  }
}

export const randomGetCold = coldGet('get-cold', true)
export const randomGetColdRaw = coldGet('get-cold-raw', false)

export const proofGenerate: Row = {
  id: 'proof',
  label: 'block proof + upgrade, proof()',
  unit: 'proof',
  note: "`proof({ block: { index, nodes: 0 }, upgrade: { start: 0, length } })` at random indices of that core. Not the same work: Hypercore's `proof()` also reads the block into `block.value`, nomadcore's leaves it null.",
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const length = core.length
    const indices = randomInts(0x9f0, env.count(10_000), 0, length)
    return {
      ops: indices.length,
      async run () {
        for (const i of indices) await core.proof(blockRequest(i, length))
      }
    }
  }
}

export const proofServe: Row = {
  id: 'proof-value',
  label: 'block proof + upgrade, with block bytes',
  unit: 'proof',
  note: "The same proofs with the block's bytes in `block.value`, as a peer serving a request needs them: Hypercore's `proof()` as in the row above; nomadcore's `proof()` and `get()` in parallel.",
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const length = core.length
    const indices = randomInts(0x9f0, env.count(10_000), 0, length)
    return {
      ops: indices.length,
      async run () {
        for (const i of indices) await core.blockProofWithValue(i, length)
      }
    }
  }
}

export const proofVerify: Row = {
  id: 'verify',
  label: 'block proof + upgrade, verifyFullyRemote',
  unit: 'proof',
  note: '`verifyFullyRemote(proof)` of such proofs (each core its own proofs, `block.value` set to the block).',
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const length = core.length
    const indices = randomInts(0x7e1, env.count(10_000), 0, length)
    // Each side verifies its own proofs, carrying the block as a peer gets it.
    // Verification does not change a proof, so every round reuses them.
    const proofs = await env.memo(contender, `verify-proofs-${indices.length}`, async () => {
      const out: unknown[] = []
      for (const i of indices) {
        const proof = await core.proof(blockRequest(i, length))
        core.setBlockValue(proof, await core.get(i))
        out.push(proof)
      }
      return out
    })
    return {
      ops: proofs.length,
      async run () {
        for (const proof of proofs) await core.verifyFullyRemote(proof)
      }
    }
  }
}

export const treeHashHead: Row = {
  id: 'treehash',
  label: 'treeHash() at the current length',
  unit: 'call',
  note: '`treeHash()` at the current length.',
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const n = env.count(20_000)
    return {
      ops: n,
      async run () {
        for (let i = 0; i < n; i++) await core.treeHash()
      }
    }
  }
}

export const treeHashOld: Row = {
  id: 'treehash-old',
  label: 'treeHash(length) at random older lengths',
  unit: 'call',
  note: '`treeHash(length)` at random lengths in [1, length).',
  async prepare (contender, env): Promise<Trial> {
    const core = await readCore(contender, env)
    const lengths = randomInts(0x7ee, env.count(10_000), 1, core.length)
    return {
      ops: lengths.length,
      async run () {
        for (const l of lengths) await core.treeHash(l)
      }
    }
  }
}

export const coreRows: readonly Row[] = [appendOne, appendBatch, randomGet, randomGetRaw, randomGetCold, randomGetColdRaw, readStream, proofGenerate, proofServe, proofVerify, treeHashHead, treeHashOld]
