/**
 * Helpers for tests where writers truncate and readers follow: one shape for
 * nomadcore and Hypercore 11 cores, waiting until a reader is on the writer's
 * fork and length, comparing every block, and counting the messages a
 * replication stream's protomux receives.
 */
import b4a from 'b4a'
import type Protomux from 'protomux'
import { makeHypercore, tmpDir, type Teardownable } from './oracle'
import { ramCore, replicate, type Link } from './replication'

export type Impl = 'nomad' | 'hc11'

/** What both implementations share, as these tests use it. */
export interface AnyCore {
  readonly key: Uint8Array | null
  readonly length: number
  readonly fork: number
  readonly contiguousLength: number
  append (blocks: Uint8Array[]): Promise<unknown>
  truncate (length: number): Promise<void>
  get (index: number, opts?: { wait?: boolean, timeout?: number }): Promise<unknown>
  has (index: number): Promise<boolean>
  update (opts?: { wait?: boolean }): Promise<boolean>
  seek (bytes: number, opts?: { wait?: boolean, timeout?: number }): Promise<[number, number] | null>
  download (range?: { start?: number, end?: number, blocks?: number[] }): { done (): Promise<void> }
  replicate (isInitiator: boolean | object, opts?: { keepAlive?: boolean }): unknown
  on (event: string, fn: (...args: any[]) => void): unknown
  off (event: string, fn: (...args: any[]) => void): unknown
  close (): Promise<void>
}

/** A core of either implementation (nomadcore in memory, Hypercore 11 in a temp dir), closed at teardown. */
export async function makeCore (t: Teardownable, impl: Impl, key?: Uint8Array | null): Promise<AnyCore> {
  if (impl === 'nomad') return await ramCore(t, key ?? null) as unknown as AnyCore
  const core = await makeHypercore(await tmpDir(t), key ?? null)
  t.teardown(() => core.close(), { order: 0 })
  return core as unknown as AnyCore
}

/** Connects two cores (either implementation). */
export function connect (t: Teardownable, a: AnyCore, b: AnyCore): Link {
  return replicate(t, a, b)
}

/** Blocks of fork `fork`, from index `from` on: each names its fork and index. */
export function forkBlocks (fork: number, from: number, n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => b4a.from('fork ' + fork + ' block ' + (from + i)))
}

/** Waits until `reader` is on `writer`'s fork and length, asking with update(). */
export async function follows (reader: AnyCore, writer: AnyCore, ms = 20000): Promise<void> {
  const deadline = Date.now() + ms
  while (reader.fork !== writer.fork || reader.length !== writer.length) {
    if (Date.now() > deadline) {
      throw new Error('Reader stuck at fork ' + reader.fork + ' length ' + reader.length + ', writer at fork ' + writer.fork + ' length ' + writer.length)
    }
    await Promise.race([reader.update({ wait: true }), sleep(50)])
    await sleep(5)
  }
}

/** Indices of the blocks `reader` returns that differ from `writer`'s (each read waits up to `ms`). */
export async function differingBlocks (reader: AnyCore, writer: AnyCore, ms = 10000): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < writer.length; i++) {
    const [ours, theirs] = await Promise.all([reader.get(i, { timeout: ms }), writer.get(i)])
    if (!b4a.equals(ours as Uint8Array, theirs as Uint8Array)) out.push(i)
  }
  return out
}

/** Channel messages the protomux of `stream` has received so far (every type, batched or not). */
export function messageCounter (stream: unknown): () => number {
  const s = stream as { userData?: unknown, noiseStream?: { userData?: unknown } }
  const mux = (s.noiseStream?.userData ?? s.userData) as Protomux & { _decode (remoteId: number, state: unknown): unknown }
  if (mux === undefined || typeof mux._decode !== 'function') throw new Error('Not a protomux stream')
  let count = 0
  const decode = mux._decode.bind(mux)
  mux._decode = (remoteId: number, state: unknown) => {
    // remoteId 0 is protomux's own control frame (open, close, batch); the rest are channel messages.
    if (remoteId !== 0) count++
    return decode(remoteId, state)
  }
  return () => count
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
