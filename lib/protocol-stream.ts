/**
 * Turning whatever `replicate()` is given into a protomux: a new Noise
 * secret stream for a boolean, the stream's own mux for a secret stream (a
 * Hyperswarm connection), or the mux itself — so cores and stores share one
 * connection the way Hypercore 11 and Corestore do.
 */
import Protomux from 'protomux'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { BAD_ARGUMENT } from './errors'
import type { KeyPair } from './crypto'
import { batchAlloc, type Allocating } from './batch-alloc'

export type Replicable = boolean | NoiseSecretStream | Protomux

export interface ProtocolStreamOptions {
  /** Send keep-alives every 5 s (default true), as Hypercore does. */
  keepAlive?: boolean
  /** Noise key pair for a stream we create. */
  keyPair?: KeyPair
}

/** The mux to replicate over, and the stream to hand back to the caller. */
export function protocolStream (from: Replicable, opts: ProtocolStreamOptions = {}): { mux: Protomux, stream: NoiseSecretStream | Protomux['stream'] } {
  if (Protomux.isProtomux(from)) return { mux: from, stream: from.stream }
  let noise: NoiseSecretStream
  let stream: NoiseSecretStream | Protomux['stream']
  if (typeof from === 'boolean') {
    noise = new NoiseSecretStream(from, null, opts.keyPair ? { keyPair: opts.keyPair } : {})
    stream = noise.rawStream as unknown as NoiseSecretStream
  } else if (from !== null && typeof from === 'object' && (from as NoiseSecretStream).noiseStream) {
    noise = (from as NoiseSecretStream).noiseStream
    stream = from
  } else {
    throw BAD_ARGUMENT('replicate() takes a boolean, a secret stream or a protomux')
  }
  if (!(noise.userData instanceof Protomux)) {
    if (opts.keepAlive !== false && noise.keepAlive === 0) noise.setKeepAlive(5000)
    // Set before the mux reads it: `alloc` asks the mux whether it is corked.
    let mux: Protomux | null = null
    const alloc = batchAlloc(noise as unknown as Allocating, () => mux !== null && mux.corked > 0)
    mux = new Protomux(noise as unknown as Protomux.MuxStream, { alloc })
    noise.userData = mux
  }
  return { mux: noise.userData as Protomux, stream }
}
