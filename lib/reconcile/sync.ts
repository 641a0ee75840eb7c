/**
 * `sync()`: the protocol between two local sets — two sessions, the same
 * code as over the network, exchanging their messages as bytes — and the
 * numbers a benchmark wants from it.
 */
import b4a from 'b4a'
import sodium from 'sodium-universal'
import { BAD_ARGUMENT, INVALID_OPERATION } from '../errors'
import { checkId } from './ids'
import { ReconcileSet } from './set'
import { Session, type SessionOptions, type ReconcileMode } from './session'

export interface SyncOptions extends SessionOptions {
  /** Use and update since bookkeeping between the two sets (keyed by their `id`s). */
  remember?: boolean
  /** Insert what each side lacks into it afterwards (ReconcileSets that are not views). */
  apply?: boolean
  /** a follows its hello with a burst of cells for a difference of up to this many ids (see `SessionOptions.burst`). */
  burst?: number
}

export interface SyncResult {
  /** Ids b has and a lacks. */
  missingInA: Uint8Array[]
  /** Ids a has and b lacks. */
  missingInB: Uint8Array[]
  /** Rounds: messages each side sent. Both sides send at once, so a round is one flight. */
  rounds: number
  /** Bytes both sides sent. */
  bytes: number
  /** Rounds, and bytes both sides had sent, until one side knew the whole difference (the decoding side, on the symbols path; of a burst, the packets it read). */
  firstKnows: { rounds: number, bytes: number }
  mode: ReconcileMode
}

function toSet (x: ReconcileSet<any> | readonly Uint8Array[]): ReconcileSet<any> {
  if (x instanceof ReconcileSet) return x
  if (!Array.isArray(x)) throw BAD_ARGUMENT('sync() takes ReconcileSets or arrays of ids')
  for (const id of x) checkId(id)
  return new ReconcileSet(x)
}

/** A secret of this process: with it, two local sets get the same key every time they sync, and only this process knows it. */
const PROCESS_SECRET = b4a.alloc(32)
sodium.randombytes_buf(PROCESS_SECRET)

/** The key two local sets share, as two peers share their connection's handshake hash. */
function pairKey (a: ReconcileSet<any>, b: ReconcileSet<any>): Uint8Array {
  const [x, y] = a.id < b.id ? [a.id, b.id] : [b.id, a.id]
  const out = b4a.alloc(32)
  sodium.crypto_generichash_batch(out, [PROCESS_SECRET, b4a.from(x + ':' + y)])
  return out
}

/**
 * Runs the protocol between two local sets. Unless given a `sessionKey`,
 * the pair shares a key of this process (so each set keeps its
 * fingerprint up to date for the other, as over a long-lived connection).
 */
export function sync (a: ReconcileSet<any> | readonly Uint8Array[], b: ReconcileSet<any> | readonly Uint8Array[], opts: SyncOptions = {}): SyncResult {
  const A = toSet(a)
  const B = toSet(b)
  const { remember, apply, ...rest } = opts
  const sessionKey = rest.sessionKey ?? pairKey(A, B)
  const burst = rest.burst ?? 0
  const sa = new Session(A, { ...rest, sessionKey, burst, peer: remember === true ? B.id : rest.peer })
  const sb = new Session(B, { ...rest, sessionKey, burst: 0, peer: remember === true ? A.id : rest.peer })
  // What each side sends in a round: one message, and in the first a's burst behind its hello.
  let ma: Uint8Array[] = [sa.start(), ...sa.burst()]
  let mb: Uint8Array[] = [sb.start()]
  let rounds = 1
  let bytes = total(ma) + total(mb)
  for (;;) {
    const na = answer(sa, mb)
    const nb = answer(sb, ma)
    if (na === null && nb === null) break
    if (na === null || nb === null) throw INVALID_OPERATION('The two sides disagree on when they are done')
    rounds++
    bytes += na.byteLength + nb.byteLength
    ma = [na]
    mb = [nb]
  }
  const missingInA = sa.missing()
  const missingInB = sb.missing()
  if (apply === true) {
    if (!A.readonly) A.insertMany(missingInA)
    if (!B.readonly) B.insertMany(missingInB)
  }
  if (remember === true && (apply === true || (missingInA.length === 0 && missingInB.length === 0))) {
    A.markSynced(B.id)
    B.markSynced(A.id)
  }
  // The side that knew first (on a tie, with fewer bytes), and the bytes both sides had sent by then.
  const knew = [sa, sb].map(s => ({ rounds: s.knowsAllAfter ?? rounds, bytes: s.knowsAllBytes ?? bytes }))
    .sort((x, y) => x.rounds - y.rounds || x.bytes - y.bytes)[0]!
  return { missingInA, missingInB, rounds, bytes, firstKnows: knew, mode: sa.mode }
}

function total (msgs: Uint8Array[]): number {
  return msgs.reduce((n, m) => n + m.byteLength, 0)
}

/** A side's answer to the remote's messages of one round: it answers once (a burst's packets but one get none). */
export function answer (s: Session, msgs: Uint8Array[]): Uint8Array | null {
  let out: Uint8Array | null | undefined
  for (const m of msgs) {
    const r = s.receive(m)
    if (r === undefined) continue
    if (out !== undefined) throw INVALID_OPERATION('Two answers in one round')
    out = r
  }
  if (out === undefined) throw INVALID_OPERATION('No answer in a round')
  return out
}

export function createSession (set: ReconcileSet<any> | readonly Uint8Array[], opts?: SessionOptions): Session {
  return new Session(set, opts)
}
