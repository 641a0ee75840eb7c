/**
 * Import speed: a Corestore 7 store of CORES cores × BLOCKS blocks of SIZE
 * bytes is built once, then imported into fresh destinations.
 *
 *   node dist/bench/import.js [--cores 100] [--blocks 1000] [--size 1024] [--rounds 3]
 *
 * Prints, per round: the import from the read-only source, a second import
 * of the same store (nothing new: the cost of checking), and an import read
 * through a temporary copy of the source. Best round counts.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { importStore, type ImportSummary } from '../lib/import'

interface StoreCore {
  append (blocks: Uint8Array[]): Promise<unknown>
}
interface Corestore {
  get (opts: { name: string }): StoreCore
  ready (): Promise<void>
  close (): Promise<void>
}
const Corestore = require('corestore') as new (dir: string) => Corestore

function arg (name: string, fallback: number): number {
  const i = process.argv.indexOf('--' + name)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}

async function build (dir: string, cores: number, blocks: number, size: number): Promise<void> {
  const store = new Corestore(dir)
  await store.ready()
  const block = (i: number, j: number): Uint8Array => {
    const b = Buffer.alloc(size, (i * 31 + j) & 0xff)
    b.writeUInt32LE(j, 0)
    return b
  }
  for (let i = 0; i < cores; i++) {
    const core = store.get({ name: 'core-' + i })
    for (let j = 0; j < blocks; j += 100) {
      await core.append(Array.from({ length: Math.min(100, blocks - j) }, (_, k) => block(i, j + k)))
    }
  }
  await store.close()
}

function rate (s: ImportSummary): string {
  const secs = s.ms / 1000
  return `${(s.ms / 1000).toFixed(2)} s  ${(s.bytes / 1048576 / secs).toFixed(1)} MiB/s  ${(s.imported.length / secs).toFixed(1)} cores/s  ${Math.round(s.blocks / secs)} blocks/s`
}

async function main (): Promise<void> {
  const cores = arg('cores', 100)
  const blocks = arg('blocks', 1000)
  const size = arg('size', 1024)
  const rounds = arg('rounds', 3)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-bench-import-'))
  try {
    const src = path.join(root, 'src')
    const t0 = Date.now()
    await build(src, cores, blocks, size)
    console.log(`built ${cores} cores × ${blocks} blocks × ${size} B with Corestore 7 in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    for (let r = 0; r < rounds; r++) {
      const dst = path.join(root, 'dst-' + r)
      const first = await importStore(src, dst)
      const again = await importStore(src, dst)
      const copied = await importStore(src, path.join(root, 'copy-' + r), { copySource: true })
      console.log(`round ${r + 1}: import ${rate(first)}`)
      console.log(`         again (nothing new, ${again.unchanged.length} unchanged) ${(again.ms / 1000).toFixed(2)} s`)
      console.log(`         through a copy of the source ${rate(copied)}`)
      fs.rmSync(dst, { recursive: true, force: true })
      fs.rmSync(path.join(root, 'copy-' + r), { recursive: true, force: true })
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
