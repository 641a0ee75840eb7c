// The parts of @hyperswarm/secret-stream nomadcore uses; the package ships no types.
declare module '@hyperswarm/secret-stream' {
  import { Duplex } from 'node:stream'

  interface SecretStreamOptions {
    keyPair?: { publicKey: Uint8Array, secretKey: Uint8Array }
    publicKey?: Uint8Array
    remotePublicKey?: Uint8Array
    keepAlive?: number
    [key: string]: unknown
  }

  /** A Noise-encrypted duplex (streamx based; typed loosely as Node's Duplex). */
  class NoiseSecretStream extends Duplex {
    constructor (isInitiator: boolean, rawStream?: NodeJS.ReadWriteStream | Duplex | null, opts?: SecretStreamOptions)
    readonly noiseStream: NoiseSecretStream
    readonly isInitiator: boolean
    rawStream: Duplex
    publicKey: Uint8Array | null
    remotePublicKey: Uint8Array | null
    handshakeHash: Uint8Array | null
    userData: unknown
    keepAlive: number
    readonly opened: Promise<boolean>
    setKeepAlive (ms: number): void
    static keyPair (seed?: Uint8Array): { publicKey: Uint8Array, secretKey: Uint8Array }
  }

  export = NoiseSecretStream
}
