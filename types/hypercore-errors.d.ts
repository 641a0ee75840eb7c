declare module 'hypercore-errors' {
  /** Hypercore's coded error: `message` is `${code}: ${msg}` (plus the discovery key when given). */
  class HypercoreError extends Error {
    constructor (msg: string, code: string, fn?: Function, discoveryKey?: Uint8Array | null)
    readonly code: string
    readonly discoveryKey: Uint8Array | null
    static ASSERTION (msg: string, discoveryKey?: Uint8Array | null): HypercoreError
    static BAD_ARGUMENT (msg: string, discoveryKey?: Uint8Array | null): HypercoreError
    static SNAPSHOT_NOT_AVAILABLE (msg?: string, discoveryKey?: Uint8Array | null): HypercoreError
    static REQUEST_CANCELLED (msg?: string, discoveryKey?: Uint8Array | null): HypercoreError
    static REQUEST_TIMEOUT (msg?: string, discoveryKey?: Uint8Array | null): HypercoreError
    static SESSION_CLOSED (msg?: string, discoveryKey?: Uint8Array | null): HypercoreError
    static DECODING_ERROR (msg?: string, discoveryKey?: Uint8Array | null): HypercoreError
  }
  export = HypercoreError
}
