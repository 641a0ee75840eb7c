/**
 * Auditing a healthy core: every block checked against its leaf, every tree
 * node against its children. The core is the one of the issue: 50,000 blocks
 * of 168 bytes, 8 MiB of block data. Besides blocks/s the section gives MiB/s
 * and the machine's BLAKE2b floor: the time the 2n − 1 hashes alone take
 * (one native call each, the same sizes), measured when the table is made.
 */
import { performance } from 'perf_hooks'
import { ScratchHasher } from '../lib/blake2b'
import { blockPool, fmtInt, fmtOps, type BenchEnv, type Column, type Contender, type Row, type RowResult, type Section, type Trial } from './harness'

const AUDIT_BLOCKS = 50_000
const AUDIT_BLOCK_SIZE = 168
const MIB = 1024 * 1024
const POOL = blockPool(0xa0d17, 256, AUDIT_BLOCK_SIZE)

/** A closed core of `n` audit blocks, built once per contender; its directory. */
function auditCoreDir (contender: Contender, env: BenchEnv, n: number): Promise<string> {
  return env.memo(contender, `audit-dir-${n}`, async () => {
    const dir = env.tmpDir(`${contender.name}-audit-${n}`)
    const core = await contender.open(dir, env.keyPair)
    for (let i = 0; i < n; i += 1000) {
      const batch: Uint8Array[] = []
      for (let k = i; k < Math.min(n, i + 1000); k++) batch.push(POOL[k % POOL.length]!)
      await core.append(batch)
    }
    await core.close()
    return dir
  })
}

export const auditHealthy: Row = {
  id: 'audit',
  label: `audit a healthy ${AUDIT_BLOCKS.toLocaleString('en-US')}-block, 8 MiB core`,
  unit: 'block',
  note: `\`audit()\` of a core of ${AUDIT_BLOCKS.toLocaleString('en-US')} blocks of ${AUDIT_BLOCK_SIZE} bytes (8 MiB), reopened before each round (untimed), so nothing is cached in memory but what the OS caches of the files. nomadcore: \`core.audit()\`, up to the signed roots. Hypercore 11 has no public audit: its internal \`core.core.audit()\` (lib/audit.js: tree nodes against their children, blocks against their leaves, the bitfield against the blocks). ops = blocks checked; MiB/s: see the audit table.`,
  async prepare (contender, env): Promise<Trial> {
    const n = env.count(AUDIT_BLOCKS, 1000)
    const dir = await auditCoreDir(contender, env, n)
    const core = await contender.open(dir, env.keyPair)
    return {
      ops: n,
      run: () => core.audit(),
      dispose: () => core.close()
    }
  }
}

export const auditRows: readonly Row[] = [auditHealthy]

/**
 * Best of three: n leaf hashes of `size` bytes and n − 1 parent hashes, one
 * call each into the hash nomadcore itself uses (lib/blake2b.ts), on inputs
 * already in place.
 */
function blake2bFloorMs (n: number, size: number): number {
  const hasher = new ScratchHasher(9 + size)
  hasher.input.fill(7)
  let best = Infinity
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now()
    for (let i = 0; i < n; i++) hasher.hash(9 + size)
    for (let i = 1; i < n; i++) hasher.hash(73)
    best = Math.min(best, performance.now() - t0)
  }
  return best
}

export const auditSection: Section = {
  title: 'Audit throughput',
  rows: auditRows.map(r => r.id),
  table (results: readonly RowResult[], contenders: readonly Contender[]) {
    const columns: Column[] = [
      { header: 'benchmark', align: 'left' },
      { header: 'blocks', align: 'right' },
      ...contenders.flatMap((c): Column[] => [
        { header: `${c.name} blocks/s`, align: 'right' },
        { header: `${c.name} MiB/s`, align: 'right' },
        { header: `${c.name} ms`, align: 'right' }
      ]),
      { header: 'BLAKE2b floor MiB/s (ms)', align: 'right' }
    ]
    const rows = results.map(r => {
      const ms = contenders.map(c => r.results.get(c.name))
      const ops = ms.find(m => m !== undefined)?.ops ?? 0
      const cells = [r.row.id, fmtInt(ops)]
      for (const m of ms) {
        if (m === undefined) cells.push('-', '-', '-')
        else cells.push(fmtOps(m.best), (m.best * AUDIT_BLOCK_SIZE / MIB).toFixed(1), (1000 * m.ops / m.best).toFixed(0))
      }
      const floor = blake2bFloorMs(ops, AUDIT_BLOCK_SIZE)
      cells.push(`${(ops * AUDIT_BLOCK_SIZE / MIB / (floor / 1000)).toFixed(1)} (${floor.toFixed(0)})`)
      return cells
    })
    return { columns, rows }
  },
  notes: `Best round. MiB/s counts block data only (${AUDIT_BLOCK_SIZE} bytes a block). *BLAKE2b floor*: the ${AUDIT_BLOCKS.toLocaleString('en-US')} leaf hashes and ${(AUDIT_BLOCKS - 1).toLocaleString('en-US')} parent hashes that checking such a core takes at least, one BLAKE2b call each (the one nomadcore makes, lib/blake2b.ts) on buffers already in place, nothing else: the most any audit up to the roots can do on this machine.`
}
