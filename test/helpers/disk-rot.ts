/**
 * Disk rot, as an operator's disk (or an adversary with the files) makes it:
 * random damage to a core's four files — flipped bits, garbled runs,
 * truncation, garbage appended — and a trial that opens the damaged core,
 * reads, audits and reads again, checking every read against a pristine copy.
 * Shared by the property test (a few hundred trials) and `npm run soak`.
 */
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import RAM from 'random-access-memory'
import { Hypercore } from '../../lib/hypercore'
import { isCoded } from '../../lib/errors'

export const FILES = ['header', 'tree', 'bitfield', 'data'] as const

/** mulberry32: a seeded PRNG, so a failing trial can be replayed from its seed. */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Distinct blocks of uneven sizes (a few empty), so a misplaced read cannot pass for the right one. */
export function rotBlocks (n: number): Uint8Array[] {
  const r = rng(0xb10c)
  return Array.from({ length: n }, (_, i) => {
    if (i % 97 === 13) return b4a.alloc(0)
    const tail = b4a.alloc(Math.floor(r() * 120))
    for (let k = 0; k < tail.byteLength; k++) tail[k] = Math.floor(r() * 256)
    return b4a.concat([b4a.from('block ' + i + ':'), tail])
  })
}

/** A closed core of `blocks` in `dir`. */
export async function pristineCore (dir: string, blocks: Uint8Array[]): Promise<void> {
  const core = new Hypercore(dir)
  await core.ready()
  for (let i = 0; i < blocks.length; i += 50) await core.append(blocks.slice(i, i + 50))
  await core.close()
}

export type CoreFiles = Record<typeof FILES[number], Uint8Array>

export function readFiles (dir: string): CoreFiles {
  const read = (name: string): Uint8Array => fs.readFileSync(path.join(dir, name))
  return { header: read('header'), tree: read('tree'), bitfield: read('bitfield'), data: read('data') }
}

/**
 * Damages a copy of `files`: one to four of flipped bits, a garbled run
 * (random bytes, 0xff or 0x00), truncation, or garbage appended, each to a
 * random file. Returns the damaged files and what was done.
 */
export function damage (files: CoreFiles, random: () => number): { files: CoreFiles, done: string[] } {
  const out: CoreFiles = { header: b4a.from(files.header), tree: b4a.from(files.tree), bitfield: b4a.from(files.bitfield), data: b4a.from(files.data) }
  const done: string[] = []
  const n = 1 + Math.floor(random() * 4)
  for (let k = 0; k < n; k++) {
    const name = FILES[Math.floor(random() * FILES.length)]!
    let bytes = out[name]
    const size = bytes.byteLength
    const kind = Math.floor(random() * 4)
    if (kind === 0 && size > 0) {
      const flips = 1 + Math.floor(random() * 16)
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(random() * size)
        bytes[at]! ^= 1 << Math.floor(random() * 8)
      }
      done.push(`${name}: ${flips} bits flipped`)
    } else if (kind === 1 && size > 0) {
      const at = Math.floor(random() * size)
      const len = Math.min(size - at, 1 + Math.floor(random() * 100))
      const fill = Math.floor(random() * 3)
      for (let i = at; i < at + len; i++) bytes[i] = fill === 0 ? Math.floor(random() * 256) : fill === 1 ? 0xff : 0
      done.push(`${name}: bytes ${at}-${at + len - 1} garbled (${['random', '0xff', '0x00'][fill]})`)
    } else if (kind === 2 && size > 0) {
      const to = Math.floor(random() * size)
      bytes = bytes.subarray(0, to)
      done.push(`${name}: truncated to ${to} of ${size} bytes`)
    } else {
      const extra = b4a.alloc(1 + Math.floor(random() * 200))
      for (let i = 0; i < extra.byteLength; i++) extra[i] = Math.floor(random() * 256)
      bytes = b4a.concat([bytes, extra])
      done.push(`${name}: ${extra.byteLength} bytes of garbage appended`)
    }
    out[name] = bytes
  }
  return { files: out, done }
}

export interface TrialResult {
  /** Reads that returned bytes that are not the block (the property is broken). */
  wrong: string[]
  /** Errors without a code (the property is broken too). */
  uncoded: string[]
  /** What the damage was. */
  damage: string[]
  opened: boolean
  /** Reads that returned the right bytes, before and after the audit. */
  good: [number, number]
}

/**
 * One trial: damages a copy of `pristine`, then opens it, reads every block,
 * audits, reads every block again (verified, then raw: after an audit even
 * unverified reads must be right or null). In memory (random-access-memory
 * over the damaged bytes), or with `dir`, as files in it.
 */
export async function rotTrial (pristine: CoreFiles, blocks: Uint8Array[], seed: number, dir: string | null = null): Promise<TrialResult> {
  const { files, done } = damage(pristine, rng(seed))
  const result: TrialResult = { wrong: [], uncoded: [], damage: done, opened: false, good: [0, 0] }
  const coded = (what: string, err: unknown): void => {
    if (!isCoded(err)) result.uncoded.push(`${what}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  }

  let core: Hypercore
  if (dir !== null) {
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    for (const name of FILES) fs.writeFileSync(path.join(dir, name), files[name])
    core = new Hypercore(dir)
  } else {
    core = new Hypercore(name => new RAM(b4a.from(files[name as typeof FILES[number]])))
  }
  try {
    await core.ready()
  } catch (err) {
    coded('open', err)
    await core.close().catch(() => {})
    return result
  }
  result.opened = true
  try {
    const readAll = async (phase: string, verify: boolean): Promise<number> => {
      let good = 0
      for (let i = 0; i < core.length; i++) {
        let value: unknown
        try {
          value = await core.get(i, { wait: false, verify })
        } catch (err) {
          coded(`${phase} get(${i})`, err)
          continue
        }
        if (value === null) continue
        if (i >= blocks.length || !b4a.equals(value as Uint8Array, blocks[i]!)) result.wrong.push(`${phase} get(${i})`)
        else good++
      }
      return good
    }
    result.good[0] = await readAll('before audit', true)
    try {
      await core.audit()
    } catch (err) {
      coded('audit', err)
    }
    result.good[1] = await readAll('after audit', true)
    await readAll('after audit, verify: false', false)
  } finally {
    await core.close().catch(err => coded('close', err))
  }
  return result
}

/** A failure message that replays: the seed and the damage. */
export function describeTrial (seed: number, r: TrialResult): string {
  return `seed ${seed} (${r.damage.join('; ')}): ` + [...r.wrong.map(w => 'wrong bytes from ' + w), ...r.uncoded].join(', ')
}
