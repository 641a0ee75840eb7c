/**
 * Hypercore 11's static helpers as plain functions: the key of a manifest,
 * and protocol streams made without a core. The `Hypercore` class exposes
 * them under Hypercore 11's names.
 */
import type Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import * as manifests from './manifest'
import { protocolStream, type Replicable, type ProtocolStreamOptions } from './protocol-stream'
import { BAD_ARGUMENT } from './errors'

export interface KeyOptions {
  /** The signer's public key is the key (a Hypercore 10 core). */
  compat?: boolean
  version?: number
  namespace?: Uint8Array
}

/** The key of the core a manifest (or a single signer's public key) describes. */
export function keyOf (manifest: manifests.ManifestInput | Uint8Array, opts: KeyOptions = {}): Uint8Array {
  let input: manifests.ManifestInput | Uint8Array = manifest
  if (manifest instanceof Uint8Array && manifest.byteLength === 32) {
    input = { version: opts.version, signers: [{ publicKey: manifest, namespace: opts.namespace }] } as manifests.ManifestInput
  }
  const parsed = manifests.createManifest(input)
  return opts.compat === true ? parsed.signers[0]!.publicKey : manifests.manifestHash(parsed)
}

/** The protomux a protocol stream carries. */
export function protocolMuxer (stream: NoiseSecretStream | Protomux['stream']): Protomux {
  const noise = (stream as NoiseSecretStream).noiseStream ?? stream
  return (noise as NoiseSecretStream).userData as Protomux
}

export interface ProtocolStreamCreateOptions extends ProtocolStreamOptions {
  /** Called with the discovery key of each core the remote opens a channel for. */
  ondiscoverykey?: (discoveryKey: Uint8Array) => unknown
}

/** A replication stream without a core; `ondiscoverykey` hears each core the remote asks for. */
export function createProtocolStream (isInitiator: Replicable, opts: ProtocolStreamCreateOptions = {}): NoiseSecretStream | Protomux['stream'] {
  const { mux, stream } = protocolStream(isInitiator, opts)
  const ondiscoverykey = opts.ondiscoverykey
  if (ondiscoverykey) {
    mux.pair({ protocol: 'hypercore/alpha' }, (dk: Uint8Array) => {
      if (!(dk instanceof Uint8Array) || dk.byteLength !== 32) throw BAD_ARGUMENT('Invalid discovery key')
      return ondiscoverykey(dk)
    })
  }
  return stream
}
