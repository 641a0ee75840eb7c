/**
 * Small helpers for the reconciliation tests: deterministic ids, pairs of
 * sets with a known difference, and sessions driven message by message.
 */
import b4a from 'b4a'
import sodium from 'sodium-universal'
import { isCoded } from '../../lib/errors'
import { ReconcileSet, Session, type SyncResult, type SessionOptions } from '../../lib/reconcile'
import { answer } from '../../lib/reconcile/sync'

/** A small deterministic PRNG (xorshift32), so failures reproduce from the seed. */
export function prng (seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

/** `n` ids; with `cluster`, about half share a 6-digit prefix (a deep, skewed tree). */
export function makeIds (n: number, rand: () => number, cluster = false): Uint8Array[] {
  const buf = new Uint8Array(n * 32)
  const w = new Uint32Array(buf.buffer)
  for (let i = 0; i < w.length; i++) w[i] = rand()
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    const id = buf.subarray(i * 32, i * 32 + 32)
    if (cluster && (rand() & 1) === 1) {
      id[0] = 0xab
      id[1] = 0xcd
      id[2] = 0xe0 | (rand() & 1)
    }
    out.push(id)
  }
  return out
}

export function randomId (): Uint8Array {
  const id = new Uint8Array(32)
  sodium.randombytes_buf(id)
  return id
}

export const hex = (id: Uint8Array): string => b4a.toString(id as Buffer, 'hex')
export const hexes = (ids: readonly Uint8Array[]): string[] => ids.map(hex).sort()

export interface Pair { a: Uint8Array[], b: Uint8Array[], onlyA: Uint8Array[], onlyB: Uint8Array[] }

/** Two sets sharing `n` ids, with `da` ids only in a and `db` only in b. */
export function pair (n: number, da: number, db: number, seed: number, cluster = false): Pair {
  const rand = prng(seed)
  const all = makeIds(n + da + db, rand, cluster)
  const common = all.slice(0, n)
  const onlyA = all.slice(n, n + da)
  const onlyB = all.slice(n + da)
  return { a: common.concat(onlyA), b: common.concat(onlyB), onlyA, onlyB }
}

/** Whether a found exactly what b alone has and b exactly what a alone has. */
export function exact (res: { missingInA: Uint8Array[], missingInB: Uint8Array[] }, p: { onlyA: Uint8Array[], onlyB: Uint8Array[] }): boolean {
  return JSON.stringify(hexes(res.missingInA)) === JSON.stringify(hexes(p.onlyB)) &&
    JSON.stringify(hexes(res.missingInB)) === JSON.stringify(hexes(p.onlyA))
}

export interface Transcript {
  sa: Session
  sb: Session
  /** The messages of each round: [from a, from b]. */
  rounds: Array<[Uint8Array, Uint8Array]>
}

/** `s`'s answer to `m` in an exchange without a burst, where every message gets one. */
export function reply (s: Session, m: Uint8Array): Uint8Array | null {
  const r = s.receive(m)
  if (r === undefined) throw new Error('no answer in an exchange without a burst')
  return r
}

/** A full exchange between two sessions, message by message, with the same options on both sides. */
export function transcript (a: ReconcileSet | Uint8Array[], b: ReconcileSet | Uint8Array[], opts: SessionOptions = {}): Transcript {
  const sa = new Session(a, opts)
  const sb = new Session(b, opts)
  let ma: Uint8Array | null = sa.start()
  let mb: Uint8Array | null = sb.start()
  const rounds: Array<[Uint8Array, Uint8Array]> = []
  while (ma !== null && mb !== null) {
    rounds.push([ma, mb])
    const na = reply(sa, mb)
    const nb = reply(sb, ma)
    if ((na === null) !== (nb === null)) throw new Error('the two sides disagree on when they are done')
    ma = na
    mb = nb
  }
  return { sa, sb, rounds }
}

/** The result of a transcript, as `sync` reports it. */
export function resultOf (t: Transcript): Pick<SyncResult, 'missingInA' | 'missingInB' | 'mode' | 'rounds'> {
  return { missingInA: t.sa.missing(), missingInB: t.sb.missing(), mode: t.sa.mode, rounds: t.rounds.length }
}

/** Feeds `msg` to `s`: 'ok' (a reply or done) or 'coded' (a coded error); anything else throws. */
export function feed (s: Session, msg: Uint8Array): 'ok' | 'coded' {
  try {
    s.receive(msg)
    return 'ok'
  } catch (err) {
    if (isCoded(err)) return 'coded'
    throw err
  }
}

/** What `fn` throws, or null. */
export function thrown (fn: () => void): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return null
}

/**
 * A full exchange in which `tamper` sees each message on its way (`fromA`:
 * sent by a; a's burst too, if it sends one) and may hand over another:
 * 'coded' when a side refused one with a coded error, else 'done'.
 */
export function tamperedExchange (sa: Session, sb: Session, tamper: (msg: Uint8Array, fromA: boolean) => Uint8Array = m => m): 'done' | 'coded' {
  let ma = [sa.start(), ...sa.burst()]
  let mb = [sb.start(), ...sb.burst()]
  for (;;) {
    let na: Uint8Array | null
    let nb: Uint8Array | null
    try {
      na = answer(sa, mb.map(m => tamper(m, false)))
      nb = answer(sb, ma.map(m => tamper(m, true)))
    } catch (err) {
      if (isCoded(err)) return 'coded'
      throw err
    }
    // One side done and the other not (a tampered message can do that): the exchange is over.
    if (na === null || nb === null) return 'done'
    ma = [na]
    mb = [nb]
  }
}
