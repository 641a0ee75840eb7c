/**
 * The machine's own limits for replication, measured in the same run as the
 * rows they bound: how many 1 KiB messages a Noise secret stream pair with
 * protomux carries per second in one process (the transport every
 * replication row rides on, corked in batches of 64 as a peer answers), and
 * how many 1 KiB leaves BLAKE2b hashes per second (a replicated block is
 * hashed twice: the serving peer checks it against its leaf before sending,
 * the reader verifies it). Replication rows are shown as a fraction of both,
 * and of the two together (one core doing nothing but carrying and hashing).
 */
import { performance } from 'perf_hooks'
import { ScratchHasher } from '../lib/blake2b'
import b4a from 'b4a'
import c from 'compact-encoding'
import Protomux from 'protomux'
import NoiseSecretStream from '@hyperswarm/secret-stream'

export interface MachineLimits {
  /** 1 KiB messages per second over a secret stream pair with protomux, batches of 64. */
  streamMessages: number
  /** The same, one message per write (no cork). */
  streamMessagesUncorked: number
  /** BLAKE2b leaf hashes of 1 KiB blocks per second (one native call each, as verification makes them). */
  blake2b: number
}

const MESSAGE = 1024
const BATCH = 64

/** Carries `n` messages of 1 KiB from one end to the other; seconds. */
async function streamSeconds (n: number, batch: number): Promise<number> {
  const a = new NoiseSecretStream(true)
  const b = new NoiseSecretStream(false)
  a.rawStream.pipe(b.rawStream).pipe(a.rawStream)
  const ma = Protomux.from(a as unknown as Protomux.MuxStream)
  const mb = Protomux.from(b as unknown as Protomux.MuxStream)
  let received = 0
  let done!: () => void
  const finished = new Promise<void>(resolve => { done = resolve })
  let ondrain: () => void = () => {}
  const rx = mb.createChannel({ protocol: 'nomadcore-bench/limits', messages: [{ encoding: c.raw, onmessage () { if (++received === n) done() } }] })!
  const tx = ma.createChannel({ protocol: 'nomadcore-bench/limits', messages: [{ encoding: c.raw }], ondrain: () => ondrain() })!
  rx.open()
  tx.open()
  await Promise.all([tx.fullyOpened(), rx.fullyOpened()])
  const msg = b4a.alloc(MESSAGE, 0xab)
  const send = tx.messages[0]!
  const t0 = performance.now()
  let sent = 0
  const pump = (): void => {
    while (sent < n) {
      if (batch > 1) ma.cork()
      for (let k = 0; k < batch && sent < n; k++, sent++) send.send(msg)
      if (batch > 1) ma.uncork()
      if (!ma.drained) return
    }
  }
  ondrain = pump
  pump()
  await finished
  const seconds = (performance.now() - t0) / 1000
  a.destroy()
  b.destroy()
  return seconds
}

function blake2bSeconds (n: number): number {
  // Type, uint64 size, the block: a leaf as verification hashes it, through the call nomadcore makes.
  const hasher = new ScratchHasher(9 + MESSAGE)
  hasher.input.fill(7)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) hasher.hash(9 + MESSAGE)
  return (performance.now() - t0) / 1000
}

/** Best of `rounds` of each; `scale` shrinks the counts (--quick). */
export async function measureLimits (scale = 1, rounds = 3): Promise<MachineLimits> {
  const n = Math.max(2000, Math.round(200_000 * scale))
  let stream = Infinity
  let uncorked = Infinity
  let hash = Infinity
  await streamSeconds(Math.min(n, 20_000), BATCH) // warm-up
  blake2bSeconds(Math.min(n, 20_000))
  for (let r = 0; r < rounds; r++) {
    stream = Math.min(stream, await streamSeconds(n, BATCH))
    uncorked = Math.min(uncorked, await streamSeconds(Math.round(n / 4), 1) * 4)
    hash = Math.min(hash, blake2bSeconds(n))
  }
  return { streamMessages: n / stream, streamMessagesUncorked: n / uncorked, blake2b: n / hash }
}

/**
 * Blocks per second of one core that only carried each block over the
 * secret stream and hashed it twice (the server's check, the reader's
 * verification): the ceiling of a one-process download.
 */
export function replicationCeiling (limits: MachineLimits): number {
  return 1 / (1 / limits.streamMessages + 2 / limits.blake2b)
}
