/** Small builders for core tests: fresh directories, filled cores, disk damage. */
import * as fs from 'fs'
import * as path from 'path'
import * as os from 'os'
import b4a from 'b4a'
import { Hypercore, type HypercoreOptions } from '../../lib/hypercore'
import type { Teardownable } from './oracle'

export { Hypercore }

/** A fresh directory, removed when the test ends. */
export function freshDir (t: Teardownable, name = 'core'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-' + name + '-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }), { order: Number.MAX_SAFE_INTEGER })
  return dir
}

/** Opens a core on `dir` and closes it at teardown. */
export async function openCore (t: Teardownable, dir: string, opts: HypercoreOptions = {}): Promise<Hypercore> {
  const core = new Hypercore(dir, opts)
  t.teardown(() => core.close())
  await core.ready()
  return core
}

/** Blocks 'block 0', 'block 1', … of growing sizes, so offsets are uneven. */
export function blocks (n: number, from = 0): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => b4a.from('block ' + (from + i) + ' ' + '.'.repeat((from + i) % 7)))
}

/** A written core of `n` blocks in `dir`, closed again. */
export async function filledCore (t: Teardownable, dir: string, n: number, opts: HypercoreOptions = {}): Promise<void> {
  const core = new Hypercore(dir, opts)
  await core.ready()
  await core.append(blocks(n))
  await core.close()
}

/** Overwrites tree node `index` with 40 zero bytes: the node is gone. */
export function zeroTreeNode (dir: string, index: number): void {
  const fd = fs.openSync(path.join(dir, 'tree'), 'r+')
  try {
    fs.writeSync(fd, new Uint8Array(40), 0, 40, 40 * index)
  } finally {
    fs.closeSync(fd)
  }
}

/** Flips one byte of tree node `index`'s hash: the node is rotten. */
export function rotTreeNode (dir: string, index: number): void {
  const file = path.join(dir, 'tree')
  const bytes = fs.readFileSync(file)
  bytes[40 * index + 8 + 5]! ^= 0xff
  fs.writeFileSync(file, bytes)
}

export function readTreeFile (dir: string): Uint8Array {
  return fs.readFileSync(path.join(dir, 'tree'))
}

export function treeNodeBytes (dir: string, index: number): Uint8Array {
  return readTreeFile(dir).subarray(40 * index, 40 * index + 40)
}

export function isZero (bytes: Uint8Array): boolean {
  return bytes.every(b => b === 0)
}

export function copyDir (from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true })
}

export function text (value: unknown): string {
  return b4a.toString(value as Buffer)
}

/**
 * A healthy core of `n` blocks and a copy of its directory with `damage`
 * done to it, both closed: the damaged one heals from the healthy one.
 */
export async function healthyAndDamaged (t: Teardownable, n: number, damage: (dir: string) => void = () => {}): Promise<{ healthy: string, damaged: string }> {
  const healthy = freshDir(t, 'healthy')
  await filledCore(t, healthy, n)
  const damaged = freshDir(t, 'damaged')
  copyDir(healthy, damaged)
  damage(damaged)
  return { healthy, damaged }
}
