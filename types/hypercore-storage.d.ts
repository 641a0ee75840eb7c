// hypercore-storage (the RocksDB storage of Hypercore 11 / Corestore 7) ships
// no types; only what `nomadcore import` reads.
declare module 'hypercore-storage' {
  namespace CorestoreStorage {
    /** A core's place in the store: where its auth (core pointer) and data (data pointer) live. */
    interface CoreEntry {
      /** Storage format of the core; 2 in hypercore-storage 3. Older ones are migrated on resume (a write). */
      version: number
      corePointer: number
      dataPointer: number
      /** Set for named cores of a Corestore: the name and 32-byte namespace it was derived from. */
      alias: { name: string, namespace: Uint8Array } | null
    }

    interface Signer {
      signature: string
      namespace: Uint8Array
      publicKey: Uint8Array
    }

    interface Manifest {
      version: number
      hash: string
      quorum: number
      allowPatch?: boolean
      signers: Signer[]
      prologue: { hash: Uint8Array, length: number } | null
      linked: Uint8Array[] | null
      userData: Uint8Array | null
    }

    interface Auth {
      key: Uint8Array
      discoveryKey: Uint8Array
      manifest: Manifest | null
      keyPair: { publicKey: Uint8Array, secretKey: Uint8Array | null } | null
      encryptionKey: Uint8Array | null
    }

    interface Head {
      fork: number
      length: number
      rootHash: Uint8Array
      signature: Uint8Array | null
    }

    interface TreeNode {
      index: number
      size: number
      hash: Uint8Array
    }

    /** A named session (branch) of a core. */
    interface Session {
      name: string
      dataPointer: number
    }

    /** A read batch: the getters resolve only after `tryFlush()`. */
    interface ReadBatch {
      getAuth (): Promise<Auth | null>
      getHead (): Promise<Head | null>
      getSessions (): Promise<Session[] | null>
      getTreeNode (index: number): Promise<TreeNode | null>
      getBlock (index: number): Promise<Uint8Array | null>
      /** 4096 bytes: block 32768·index + i is byte i >> 3, bit i & 7. */
      getBitfieldPage (index: number): Promise<Uint8Array | null>
      tryFlush (): void
    }

    interface RangeOptions {
      gte?: number
      lt?: number
    }

    /** One core of the store (`HypercoreStorage` in the package). */
    interface Core {
      /** Data the default session reads through, oldest first (left by named sessions). */
      readonly dependencies: Array<{ dataPointer: number, length: number }>
      read (): ReadBatch
      createTreeNodeStream (opts?: RangeOptions): AsyncIterable<TreeNode>
      createUserDataStream (): AsyncIterable<{ key: string, value: Uint8Array }>
      close (): Promise<void>
    }

    interface Options {
      /** Open RocksDB read-only: nothing in the directory is written. */
      readOnly?: boolean
      /** Do not take the CORESTORE device file (a store copied to another place or device). */
      allowBackup?: boolean
    }
  }

  class CorestoreStorage {
    constructor (dir: string, opts?: CorestoreStorage.Options)
    ready (): Promise<void>
    close (): Promise<void>
    /** The Corestore primary key, null if none was set. */
    getSeed (): Promise<Uint8Array | null>
    createCoreStream (): AsyncIterable<{ discoveryKey: Uint8Array, core: CorestoreStorage.CoreEntry }>
    resumeCore (discoveryKey: Uint8Array): Promise<CorestoreStorage.Core | null>
  }

  export = CorestoreStorage
}
