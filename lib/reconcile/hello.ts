/**
 * The hello, each side's first message: its count, the 16-bucket estimator,
 * and either the keyed fingerprint of the whole set (the sides share a
 * secret) or a nonce (the key then comes from both nonces); the most ids it
 * accepts in one message when not the default; the since list, if any; how
 * large a difference the burst of cells that follows it covers (burst.ts),
 * if any. The type byte's low bits say which optional parts follow.
 */
import { INVALID_MESSAGE } from '../errors'
import { MAX_BURST_COVER } from './burst'
import { NONCE_BYTES } from './hash'
import { ID_BYTES } from './ids'
import type { Sum64 } from './fingerprint'
import { readEst1, writeEst1 } from './plan'
import { SINCE_HARD_MAX, readSince, writeSince } from './since'
import type { Reader, Writer } from './wire'

export const MSG_HELLO = 0x20
const FLAG_KEYED = 1
const FLAG_SINCE = 2
const FLAG_LIMIT = 4
const FLAG_BURST = 8
const FLAGS = FLAG_KEYED | FLAG_SINCE | FLAG_LIMIT | FLAG_BURST

export const DEFAULT_MAX_IDS_PER_MESSAGE = 1 << 18
export const MAX_IDS_PER_MESSAGE_LIMIT = 1 << 22
/** Past this a hello is refused before it is read. */
export const HELLO_MAX_BYTES = 64 + SINCE_HARD_MAX * ID_BYTES

export interface Hello {
  /** Without a shared secret. */
  nonce: Uint8Array | null
  count: number
  /** Most ids accepted in one message. */
  limit: number
  /** With a shared secret. */
  fp: Sum64 | null
  /** The estimator's 16 buckets (modulo 16 once read); none for an empty set. */
  est1: ArrayLike<number> | null
  since: Uint8Array | null
  /** The difference the burst that follows is sized for (0: no burst). */
  burst: number
}

/** Whether a message's type byte is a hello's. */
export function isHello (type: number): boolean {
  return type >= 0 && (type & ~FLAGS) === MSG_HELLO
}

export function writeHello (w: Writer, h: Hello): void {
  let flags = 0
  if (h.fp !== null) flags |= FLAG_KEYED
  if (h.since !== null) flags |= FLAG_SINCE
  if (h.limit !== DEFAULT_MAX_IDS_PER_MESSAGE) flags |= FLAG_LIMIT
  if (h.burst > 0) flags |= FLAG_BURST
  w.u8(MSG_HELLO | flags)
  if (h.nonce !== null) w.fixed(h.nonce)
  w.uint(h.count)
  if ((flags & FLAG_LIMIT) !== 0) w.uint(h.limit)
  if (h.fp !== null) w.fp(h.fp[0], h.fp[1])
  if (h.count > 0) writeEst1(w, h.est1 as Int32Array)
  if (h.since !== null) writeSince(w, h.since)
  if (h.burst > 0) w.uint(h.burst)
}

/** Reads the rest of a hello of type byte `type`; `keyed`: whether we share a secret (so must they). */
export function readHello (r: Reader, type: number, keyed: boolean): Hello {
  const flags = type & FLAGS
  if (((flags & FLAG_KEYED) !== 0) !== keyed) throw INVALID_MESSAGE('Both sides share a session key, or neither does')
  const nonce = keyed ? null : r.fixed(NONCE_BYTES)
  const count = r.uint(0xffffffff)
  const limit = Math.min((flags & FLAG_LIMIT) !== 0 ? r.uint() : DEFAULT_MAX_IDS_PER_MESSAGE, MAX_IDS_PER_MESSAGE_LIMIT)
  if (limit < 1) throw INVALID_MESSAGE('Peer accepts no ids')
  let fp: Sum64 | null = null
  if (keyed) {
    fp = [0, 0]
    r.fp(fp)
  }
  const est1 = count > 0 ? readEst1(r) : null
  const since = (flags & FLAG_SINCE) !== 0 ? readSince(r) : null
  let burst = 0
  if ((flags & FLAG_BURST) !== 0) {
    // Cells sent blind are confirmed by the keyed fingerprints, which only a shared secret gives before the second round.
    if (!keyed || count === 0) throw INVALID_MESSAGE('A burst needs a session key and ids')
    burst = r.uint(MAX_BURST_COVER)
    if (burst < 1) throw INVALID_MESSAGE('A burst for no difference')
  }
  return { nonce, count, limit, fp, est1, since, burst }
}
