// The parts of hyperdht (and hyperdht/testnet) nomadcore's swarm example and test use; the package ships no types.
declare module 'hyperdht' {
  import { EventEmitter } from 'node:events'

  namespace HyperDHT {
    interface Node {
      host: string
      port: number
    }

    interface KeyPair {
      publicKey: Uint8Array
      secretKey: Uint8Array
    }

    interface DHTOptions {
      /** Nodes to bootstrap from; hyperdht's public ones when omitted. */
      bootstrap?: Array<Node | string>
      /** UDP port (default 49737, or the next free one). */
      port?: number
      /** Address to bind; 127.0.0.1 keeps every socket (and holepunch) on loopback. */
      host?: string
      ephemeral?: boolean
      firewalled?: boolean
      keyPair?: KeyPair
      seed?: Uint8Array
    }
  }

  class HyperDHT extends EventEmitter {
    constructor (opts?: HyperDHT.DHTOptions)
    readonly destroyed: boolean
    readonly bootstrapped: boolean
    readonly ephemeral: boolean
    readonly firewalled: boolean
    readonly defaultKeyPair: HyperDHT.KeyPair
    /** Where this node's UDP socket is bound. */
    address (): HyperDHT.Node & { family: number }
    ready (): Promise<void>
    fullyBootstrapped (): Promise<void>
    destroy (opts?: { force?: boolean }): Promise<void>
    static keyPair (seed?: Uint8Array): HyperDHT.KeyPair
  }

  export = HyperDHT
}

declare module 'hyperdht/testnet' {
  import HyperDHT from 'hyperdht'

  namespace createTestnet {
    interface TestnetOptions {
      /** Address the nodes advertise; 127.0.0.1 (the default) also binds them to 127.0.0.1. */
      host?: string
      /** Port of the first (bootstrap) node. */
      port?: number
      /** Join an existing network instead of starting a new one. */
      bootstrap?: HyperDHT.Node[]
      /** brittle's t.teardown: registers `destroy()` to run last. */
      teardown?: (fn: () => unknown, opts?: { order?: number }) => void
    }

    interface Testnet extends Iterable<HyperDHT> {
      readonly nodes: HyperDHT[]
      /** [{ host, port }] of the first node: pass as the swarms' `bootstrap`. */
      readonly bootstrap: HyperDHT.Node[]
      /** An ephemeral node bound to 127.0.0.1 that joins this testnet; destroyed with it. */
      createNode (opts?: HyperDHT.DHTOptions): HyperDHT
      destroy (): Promise<void>
    }
  }

  /** Starts `size` persistent DHT nodes (the first is the bootstrap node). */
  function createTestnet (
    size?: number,
    opts?: createTestnet.TestnetOptions | ((fn: () => unknown, opts?: { order?: number }) => void)
  ): Promise<createTestnet.Testnet>

  export = createTestnet
}
