/**
 * The building blocks every codec of the wire and manifest formats is made of,
 * and the `encode` / `decode` entry points that wrap them.
 *
 * Apart because every message group (manifests, data, control) shares them:
 * this is where hostile bytes are first bounded. Encoders trust their input
 * (it comes from us); decoders treat their bytes as hostile: integers must be
 * safe, arrays are bounded both by a fixed limit and by the bytes actually
 * left. `decode` / `decodeExact` turn every decoding failure into
 * `INVALID_MESSAGE`.
 */
import c from 'compact-encoding'
import type { State } from 'compact-encoding'
import b4a from 'b4a'
import { INVALID_MESSAGE, BAD_ARGUMENT, HypercoreError } from './errors'
import type { TreeNode } from './tree-node'

/** A compact-encoding codec; structurally the same as `c.Encoder<T>`. */
export interface Codec<T> {
  preencode (state: State, value: T): void
  encode (state: State, value: T): void
  decode (state: State): T
}

export type { State }

/** Most tree nodes a decoded node array may hold. */
export const MAX_NODES = 1024
/** Most elements of any other decoded array (compact-encoding's own limit). */
export const MAX_ARRAY = 0x100000

// ---------------------------------------------------------------------------
// Primitives

/** A varint that must be a safe integer. */
export const uint: Codec<number> = {
  preencode (state, n) {
    c.uint.preencode(state, n)
  },
  encode (state, n) {
    c.uint.encode(state, n)
  },
  decode (state) {
    const n = c.uint.decode(state)
    if (n > Number.MAX_SAFE_INTEGER) throw INVALID_MESSAGE('Integer is not safe')
    return n
  }
}

export const fixed32: Codec<Uint8Array> = c.fixed32
export const fixed64: Codec<Uint8Array> = c.fixed64

/** Length-prefixed buffer (`c.buffer`). */
export const buffer: Codec<Uint8Array> = {
  preencode (state, b) {
    c.uint.preencode(state, b.byteLength)
    state.end += b.byteLength
  },
  encode (state, b) {
    c.uint.encode(state, b.byteLength)
    state.buffer!.set(b, state.start)
    state.start += b.byteLength
  },
  decode (state) {
    return take(state, uint.decode(state))
  }
}

export function take (state: State, len: number): Uint8Array {
  if (len > state.end - state.start) throw INVALID_MESSAGE('Out of bounds')
  return state.buffer!.subarray(state.start, (state.start += len))
}

/** `c.optionalBuffer` (empty decodes as null) with a size cap on decode. */
export function optionalBuffer (max: number): Codec<Uint8Array | null> {
  return {
    preencode (state, b) {
      if (b) buffer.preencode(state, b)
      else state.end++
    },
    encode (state, b) {
      if (b) buffer.encode(state, b)
      else c.uint.encode(state, 0)
    },
    decode (state) {
      const len = uint.decode(state)
      if (len === 0) return null
      if (len > max) throw INVALID_MESSAGE('Buffer is too big')
      return take(state, len)
    }
  }
}

/**
 * `c.array(codec)`, refusing on decode more than `max` elements or more
 * elements than the remaining bytes could hold at `minBytes` each.
 */
export function array<T> (codec: Codec<T>, max: number, minBytes: number): Codec<T[]> {
  return {
    preencode (state, list) {
      if (list.length > max) throw BAD_ARGUMENT('Array is too big')
      c.uint.preencode(state, list.length)
      for (let i = 0; i < list.length; i++) codec.preencode(state, list[i]!)
    },
    encode (state, list) {
      c.uint.encode(state, list.length)
      for (let i = 0; i < list.length; i++) codec.encode(state, list[i]!)
    },
    decode (state) {
      const len = uint.decode(state)
      if (len > max) throw INVALID_MESSAGE('Array is too big')
      if (len * minBytes > state.end - state.start) throw INVALID_MESSAGE('Out of bounds')
      const list = new Array<T>(len)
      for (let i = 0; i < len; i++) list[i] = codec.decode(state)
      return list
    }
  }
}

/** `c.uint32array` with the length checked before anything is sliced. */
export const uint32array: Codec<Uint32Array> = {
  preencode (state, a) {
    c.uint32array.preencode(state, a)
  },
  encode (state, a) {
    c.uint32array.encode(state, a)
  },
  decode (state) {
    const start = state.start
    const len = uint.decode(state)
    if (len > (state.end - state.start) / 4) throw INVALID_MESSAGE('Out of bounds')
    state.start = start
    return c.uint32array.decode(state)
  }
}

// ---------------------------------------------------------------------------
// Tree nodes (in data proofs and in multi-signature patches alike)

export const node: Codec<TreeNode> = {
  preencode (state, n) {
    uint.preencode(state, n.index)
    uint.preencode(state, n.size)
    fixed32.preencode(state, n.hash)
  },
  encode (state, n) {
    uint.encode(state, n.index)
    uint.encode(state, n.size)
    fixed32.encode(state, n.hash)
  },
  decode (state) {
    return {
      index: uint.decode(state),
      size: uint.decode(state),
      hash: fixed32.decode(state)
    }
  }
}

/** At most `MAX_NODES` nodes on decode. */
export const nodeArray: Codec<TreeNode[]> = array(node, MAX_NODES, 34)

// ---------------------------------------------------------------------------
// Helpers

/** Encodes `value` into a fresh buffer of exactly the right size. */
export function encode<T> (codec: Codec<T>, value: T): Uint8Array {
  const state: State = { start: 0, end: 0, buffer: null }
  try {
    codec.preencode(state, value)
    state.buffer = b4a.allocUnsafe(state.end)
    codec.encode(state, value)
  } catch (err) {
    if (err instanceof HypercoreError) throw err
    throw BAD_ARGUMENT('Cannot encode: ' + reason(err))
  }
  return state.buffer
}

/**
 * Decodes one value from the front of `bytes`; trailing bytes are ignored
 * (forward compatibility, as Hypercore). Any failure is `INVALID_MESSAGE`.
 */
export function decode<T> (codec: Codec<T>, bytes: Uint8Array): T {
  try {
    return codec.decode({ start: 0, end: bytes.byteLength, buffer: bytes })
  } catch (err) {
    throw INVALID_MESSAGE('Cannot decode: ' + reason(err))
  }
}

/** As `decode`, but trailing bytes are an error too. */
export function decodeExact<T> (codec: Codec<T>, bytes: Uint8Array): T {
  const state: State = { start: 0, end: 0, buffer: bytes }
  let value: T
  try {
    state.end = bytes.byteLength
    value = codec.decode(state)
  } catch (err) {
    throw INVALID_MESSAGE('Cannot decode: ' + reason(err))
  }
  if (state.start !== state.end) throw INVALID_MESSAGE('Trailing bytes after message')
  return value
}

function reason (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
