/**
 * Little-endian integers, read and written in place: the on-disk formats
 * (header slot prefix, tree node sizes, the store's catalog) and the sizes
 * inside hash inputs and nonces.
 *
 * Apart because none of their users owns them. Sizes are safe integers, so
 * a uint64 that does not fit one reads as -1: such bytes are rot, never a
 * value.
 */

export function writeU32 (buf: Uint8Array, at: number, n: number): void {
  buf[at] = n
  buf[at + 1] = n >>> 8
  buf[at + 2] = n >>> 16
  buf[at + 3] = n >>> 24
}

export function readU32 (buf: Uint8Array, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)) >>> 0
}

export function writeU64 (buf: Uint8Array, at: number, n: number): void {
  const lo = n >>> 0
  writeU32(buf, at, lo)
  writeU32(buf, at + 4, (n - lo) / 0x100000000)
}

/** uint64 LE, or -1 when it does not fit a safe integer. */
export function readU64 (buf: Uint8Array, at: number): number {
  const hi = readU32(buf, at + 4)
  if (hi > 0x1fffff) return -1
  return hi * 0x100000000 + readU32(buf, at)
}
