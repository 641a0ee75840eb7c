// The parts of hyperswarm nomadcore's swarm example and test use; the package ships no types.
declare module 'hyperswarm' {
  import { EventEmitter } from 'node:events'
  import HyperDHT from 'hyperdht'
  import NoiseSecretStream from '@hyperswarm/secret-stream'

  namespace Hyperswarm {
    interface SwarmOptions {
      /** Swarm key pair (the connections' Noise static keys). */
      keyPair?: HyperDHT.KeyPair
      seed?: Uint8Array
      /** A DHT node to use; the swarm destroys it in `destroy()`. */
      dht?: HyperDHT
      /** Bootstrap nodes for the DHT the swarm makes when `dht` is not given. */
      bootstrap?: Array<HyperDHT.Node | string>
      port?: number
      maxPeers?: number
      maxParallel?: number
      /** Return true to reject a connecting peer. */
      firewall?: (remotePublicKey: Uint8Array, payload: unknown) => boolean
    }

    interface JoinOptions {
      /** Announce the topic and accept connections (default true). */
      server?: boolean
      /** Look the topic up and connect to who announced it (default true). */
      client?: boolean
      limit?: number
    }

    /** What `join()` returns. */
    interface PeerDiscoverySession {
      readonly topic: Uint8Array
      readonly isClient: boolean
      readonly isServer: boolean
      /** Resolves once the topic is announced (server) and looked up (client). */
      flushed (): Promise<void>
      refresh (opts?: JoinOptions): Promise<void>
      destroy (): Promise<void>
    }

    interface PeerInfo {
      readonly publicKey: Uint8Array
      readonly topics: Uint8Array[]
      /** True when we dialled this peer. */
      readonly client: boolean
      readonly prioritized: boolean
      ban (val?: boolean): void
      reconnect (val?: boolean): void
    }

    /** A swarm connection: an opened Noise secret stream. */
    type Connection = NoiseSecretStream
  }

  interface HyperswarmEvents {
    connection: (conn: Hyperswarm.Connection, info: Hyperswarm.PeerInfo) => void
    update: () => void
  }

  class Hyperswarm extends EventEmitter {
    constructor (opts?: Hyperswarm.SwarmOptions)
    readonly dht: HyperDHT
    readonly keyPair: HyperDHT.KeyPair
    readonly connections: Set<Hyperswarm.Connection>
    readonly peers: Map<string, Hyperswarm.PeerInfo>
    readonly connecting: number
    readonly destroyed: boolean
    join (topic: Uint8Array, opts?: Hyperswarm.JoinOptions): Hyperswarm.PeerDiscoverySession
    leave (topic: Uint8Array): Promise<void>
    status (topic: Uint8Array): Hyperswarm.PeerDiscoverySession | null
    joinPeer (publicKey: Uint8Array): void
    leavePeer (publicKey: Uint8Array): void
    /** Resolves once every joined topic is flushed and the peers found so far are connected (or failed). */
    flush (): Promise<boolean>
    listen (): Promise<void>
    destroy (opts?: { force?: boolean }): Promise<void>

    on<K extends keyof HyperswarmEvents> (event: K, listener: HyperswarmEvents[K]): this
    once<K extends keyof HyperswarmEvents> (event: K, listener: HyperswarmEvents[K]): this
    off<K extends keyof HyperswarmEvents> (event: K, listener: HyperswarmEvents[K]): this
  }

  export = Hyperswarm
}
