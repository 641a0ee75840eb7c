// The parts of protomux nomadcore uses; the package ships no types.
declare module 'protomux' {
  import type { State } from 'compact-encoding'

  interface Encoding<T> {
    preencode (state: State, value: T): void
    encode (state: State, value: T): void
    decode (state: State): T
  }

  namespace Protomux {
    interface Message<T = unknown> {
      type: number
      send (message: T, channel?: Channel): boolean
    }

    interface MessageOptions<T = unknown> {
      encoding?: Encoding<T>
      onmessage?: (message: T, channel: Channel) => unknown
    }

    interface Channel {
      userData: unknown
      protocol: string
      id: Uint8Array | null
      opened: boolean
      closed: boolean
      destroyed: boolean
      messages: Array<Message<any>>
      open (handshake?: unknown): void
      close (): void
      cork (): void
      uncork (): void
      fullyOpened (): Promise<boolean>
      fullyClosed (): Promise<void>
      readonly drained: boolean
    }

    interface ChannelOptions {
      userData?: unknown
      protocol: string
      aliases?: string[]
      id?: Uint8Array | null
      unique?: boolean
      handshake?: Encoding<any> | null
      messages?: Array<MessageOptions<any> | null>
      onopen?: (handshake: any, channel: Channel) => unknown
      onclose?: (isRemote: boolean, channel: Channel) => unknown
      ondestroy?: (channel: Channel) => unknown
      ondrain?: (channel: Channel) => unknown
    }

    interface MuxStream {
      userData: unknown
      isInitiator: boolean
      handshakeHash: Uint8Array | null
      opened: Promise<boolean>
      destroyed: boolean
      on (event: string, fn: (...args: any[]) => void): unknown
      once (event: string, fn: (...args: any[]) => void): unknown
      removeListener (event: string, fn: (...args: any[]) => void): unknown
      setMaxListeners? (n: number): unknown
      destroy (err?: Error): void
    }
  }

  class Protomux {
    /** `alloc`: the buffers messages are encoded into (default: the stream's own `alloc`). */
    constructor (stream: Protomux.MuxStream, opts?: { alloc?: (n: number) => Uint8Array })
    readonly isProtomux: true
    /** How many `cork()`s are not yet matched by an `uncork()`: while above 0, sends are queued. */
    readonly corked: number
    readonly stream: Protomux.MuxStream
    drained: boolean
    static from (stream: Protomux.MuxStream): Protomux
    static isProtomux (value: unknown): value is Protomux
    cork (): void
    uncork (): void
    pair (opts: { protocol: string, id?: Uint8Array | null }, notify: (id: Uint8Array) => unknown): void
    unpair (opts: { protocol: string, id?: Uint8Array | null }): void
    opened (opts: { protocol: string, id?: Uint8Array | null }): boolean
    createChannel (opts: Protomux.ChannelOptions): Protomux.Channel | null
    destroy (err?: Error): void
    [Symbol.iterator] (): Iterator<Protomux.Channel>
  }

  export = Protomux
}
