/**
 * The reconciliation protocol: a symmetric state machine, the same on both
 * sides (no leader), that exchanges messages of real bytes (compact-encoding)
 * until each side knows exactly which ids it lacks.
 *
 * Round 1 (hello): a 16-byte nonce, the id count, the 16 top-level counts
 * (sets of 64 ids or more) and, when this set remembers where its last sync
 * with this peer ended, the ids added since (the "since" fast path: round 2
 * then only compares the keyed fingerprints of both sets with the other's
 * since-ids added; equal means done, else the tree walk follows).
 * The session key is derived from both nonces; every fingerprint after that
 * is the sum mod 2^64 of a keyed 64-bit PRF of the ids under a prefix, so no
 * pair of sets can be made to collide on purpose.
 *
 * From then on both sides keep the same agenda — a list of open prefixes,
 * each with what both sides said about it — and every message carries, in
 * agenda order, the sender's part for the prefixes it has something to say
 * about. What happens to a prefix depends only on what both sides said, so
 * both always agree on the next agenda, and on when it is empty:
 *
 *  - same count and fingerprint: done.
 *  - one side has none: the other sends all its ids under it (bulk).
 *  - one side has ≤ 4, or 8× fewer ids: it sends them; the other answers
 *    with the ones it has beyond them (so a cold peer gets bulk too).
 *  - counts differ by 1 or 2 and differences are sparse at this depth (or
 *    one-sided): the side with more finds the 1 or 2 ids under the prefix
 *    whose keyed hashes sum to the fingerprint difference and sends just
 *    those (32 bytes an id: the information floor); the other checks them
 *    against the fingerprints. Not found: it sends its ids (small prefix)
 *    or its children instead.
 *  - both sides have ≤ 24 ids: both send an 8-byte keyed hash of each, then
 *    each sends the ids whose hashes the other lacks.
 *  - otherwise both send the children: a bitmap, then per child an 8-byte
 *    fingerprint and a count (the last child is implied by the parent). A
 *    side whose ids all share a longer prefix says so and sends the
 *    children of that (path compression), and a child holding ¾ of the ids
 *    comes with its own children (heavy path): clustered ids cost no extra
 *    round trips per shared digit.
 *
 * Shortcuts on the first tree round, from the counts of the hello and the
 * number of differences they let both sides estimate alike: a root (or
 * top-level prefix) whose counts differ by one is XOR-decoded at once (both
 * send their XOR of ids; the candidate is checked against the keyed
 * fingerprints); top-level prefixes whose counts differ send children
 * without comparing fingerprints first, and when differences are dense,
 * grandchildren too.
 *
 * Decoding treats the bytes as hostile: anything malformed, inconsistent or
 * over a limit (bytes and ids per message, open prefixes, ids learned) is an
 * INVALID_MESSAGE error, and the session is dead after it.
 */
import c from 'compact-encoding'
import type { State } from 'compact-encoding'
import b4a from 'b4a'
import sodium from 'sodium-universal'
import { INVALID_MESSAGE, INVALID_OPERATION, BAD_ARGUMENT, isCoded } from '../errors'
import { KeyedHash, deriveSessionKey, NONCE_BYTES } from './hash'
import { ReconcileSet, TreeData, ID_BYTES, MAX_DEPTH, nibbleAt, compareAt, hasPrefix, searchLeaf, checkId } from './tree'

/** Message types; a new protocol version gets new ones. */
const MSG_HELLO = 1
const MSG_ROUND = 2

const FLAG_L1 = 1
const FLAG_SINCE = 2
const FLAG_LIMIT = 4

/** A set this big sends its 16 top-level counts in its hello. */
export const L1_MIN = 64
/** A prefix with at most this many ids on a side is settled by sending ids. */
export const LIST_MAX = 4
/** ... as is one where one side has this many times fewer ids than the other. */
export const COLD_RATIO = 8
/** A prefix with at most this many ids on both sides is settled by exchanging keyed hashes of them. */
export const HASH_MAX = 24
/** Expected differences per node from which nodes are descended without comparing them first. */
const DENSE = 4
/** Expected differences per node up to which a count difference of 1 or 2 is decoded by search. */
const SPARSE = 3
/** Estimated differences up to which a root count difference of 1 is XOR-decoded. */
const XOR_ESTIMATE_MAX = 3
/**
 * Expected differences per top-level node up to which a count difference
 * of 1 there is XOR-decoded, and one of 2 compared (then searched) first.
 */
const SPARSE_L1 = 1

const DEFAULT_SINCE_LIMIT = 1024
const SINCE_HARD_MAX = 65536
const DEFAULT_MAX_IDS_PER_MESSAGE = 1 << 18
const MAX_IDS_PER_MESSAGE_LIMIT = 1 << 22
const DEFAULT_MAX_LEARNED = 1 << 22
const DEFAULT_MAX_OPEN = 1 << 18
/** Bytes a prefix can take in a message, at most (a heavy path of children lists). */
const MAX_TASK_BYTES = MAX_DEPTH * (16 * 17 + 16) + 64

// What a prefix is waiting for in the current round.
const K_ENTRY = 1 // both: fingerprint (counts are known)
const K_CHILDREN = 2 // both: the 16 children
const K_DEEP = 3 // both: the 16 children and their 16 children each
const K_SINGLE = 4 // the side with 1–2 more ids: those ids, or its children, or its ids
const K_HALF = 5 // the side that has not sent its children yet: its children
const K_XOR = 6 // both (root): fingerprint and XOR of all ids
const K_ALL = 7 // the side with ids (the other has none): all of them, in chunks
const K_LIST = 8 // the side(s) with few ids: all of them, in chunks
const K_EXTRAS = 9 // the side that got the other's list: its ids not in the list, in chunks
const K_SINCE = 10 // both: fingerprint and count after adding the other's since-ids
const K_HASHES = 11 // both: the keyed hash of each of their ids
const K_HEXTRAS = 12 // both, after K_HASHES: the ids the other lacks

const ME = 1
const THEM = 2
const BOTH = 3

const TAG_IDS = 0
const TAG_CHILDREN = 1
const TAG_LIST = 2

export type ReconcileMode = 'tree' | 'since' | 'bulk'

export interface SessionOptions {
  /** Who the remote is, for the since fast path: uses and needs `set.markSynced(peer)` from a previous sync. */
  peer?: string
  /** Most ids sent on the since path (default 1024); more added since falls back to the tree. */
  sinceLimit?: number
  /** Most ids this side accepts in one message, announced to the remote (default 262144). */
  maxIdsPerMessage?: number
  /** Most ids this session learns or holds for the remote (default 2^22). */
  maxLearned?: number
  /** Most open prefixes at once (default 2^18). */
  maxOpen?: number
  /** A secret both sides already share (e.g. a Noise handshake hash), mixed into the session key. */
  sessionKey?: Uint8Array
}

/** Children of a prefix as one side reported them. */
class Kids {
  readonly c = new Float64Array(16)
  readonly lo = new Uint32Array(16)
  readonly hi = new Uint32Array(16)
  /**
   * Path compression: all the side's ids under the parent share the
   * longer prefix `qp` (`q` digits), and these are the children of that.
   * Null: the children of the parent itself.
   */
  qp: Uint8Array | null = null
  q = 0
  /** Heavy path: the child holding most of the ids (-1: none) and its own children, sent along. */
  hv = -1
  heavy: Kids | null = null
}

/** The child of a node of `pc` ids worth descending into at once: ≥ 3/4 of the ids, too many to list. */
function heavyChild (kids: Kids, pc: number): number {
  if (kids.q + 1 >= MAX_DEPTH - 1) return -1
  for (let v = 0; v < 16; v++) {
    const c = kids.c[v]!
    if (c > HASH_MAX && c * 4 >= pc * 3) return v
  }
  return -1
}

/** One open prefix. */
class Task {
  kind = 0
  actor = 0
  k = 0
  mc = 0
  mlo = 0
  mhi = 0
  tc = 0
  tlo = 0
  thi = 0
  fpKnown = false
  myKids: Kids | null = null
  theirKids: Kids | null = null
  myGrand: Array<Kids | null> | null = null
  theirGrand: Array<Kids | null> | null = null
  myTag = -1
  theirTag = -1
  myXor: Uint8Array | null = null
  theirXor: Uint8Array | null = null
  myCursor: Uint8Array | null = null
  theirCursor: Uint8Array | null = null
  myDone = false
  theirDone = false
  theirList: IdBuffer | null = null
  theirHashes: Uint32Array | null = null

  constructor (readonly depth: number, readonly prefix: Uint8Array) {}
}

/** Ids back to back in a growable buffer. */
class IdBuffer {
  buf: Uint8Array
  n = 0

  constructor (cap = 16) {
    this.buf = new Uint8Array(cap * ID_BYTES)
  }

  push (src: Uint8Array, at: number): void {
    if ((this.n + 1) * ID_BYTES > this.buf.byteLength) {
      const grown = new Uint8Array(this.buf.byteLength * 2)
      grown.set(this.buf)
      this.buf = grown
    }
    this.buf.set(src.subarray(at, at + ID_BYTES), this.n * ID_BYTES)
    this.n++
  }

  /** For sorted contents: whether the id at src[at..] is in. */
  includes (src: Uint8Array, at: number): boolean {
    let lo = 0
    let hi = this.n - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const d = compareAt(this.buf, mid * ID_BYTES, src, at)
      if (d < 0) lo = mid + 1
      else if (d > 0) hi = mid - 1
      else return true
    }
    return false
  }
}

/** Builds a message with compact-encoding, growing the buffer as needed. */
class Writer {
  private readonly st: State

  constructor (size = 256) {
    this.st = c.state(0, size, new Uint8Array(size))
  }

  get length (): number {
    return this.st.start
  }

  private reserve (n: number): void {
    const st = this.st
    const buf = st.buffer!
    if (st.start + n <= buf.byteLength) return
    const grown = new Uint8Array(Math.max(buf.byteLength * 2, st.start + n))
    grown.set(buf.subarray(0, st.start))
    st.buffer = grown
    st.end = grown.byteLength
  }

  u8 (v: number): void { this.reserve(1); c.uint8.encode(this.st, v) }
  u16 (v: number): void { this.reserve(2); c.uint16.encode(this.st, v) }
  uint (v: number): void { this.reserve(9); c.uint.encode(this.st, v) }
  fp (lo: number, hi: number): void { this.reserve(8); c.uint32.encode(this.st, lo); c.uint32.encode(this.st, hi) }
  fixed (b: Uint8Array): void { this.reserve(b.byteLength); c.raw.encode(this.st, b) }

  finish (): Uint8Array {
    return this.st.buffer!.slice(0, this.st.start)
  }
}

/** Reads a hostile message; every failure becomes INVALID_MESSAGE. */
class Reader {
  readonly st: State

  constructor (msg: Uint8Array) {
    this.st = c.state(0, msg.byteLength, msg)
  }

  u8 (): number { return c.uint8.decode(this.st) }
  u16 (): number { return c.uint16.decode(this.st) }

  uint (max = Number.MAX_SAFE_INTEGER): number {
    const v = c.uint.decode(this.st)
    if (!Number.isSafeInteger(v) || v > max) throw INVALID_MESSAGE('Number out of range')
    return v
  }

  fp (out: Uint32Array): void {
    out[0] = c.uint32.decode(this.st)
    out[1] = c.uint32.decode(this.st)
  }

  fixed (n: number): Uint8Array {
    if (this.st.end - this.st.start < n) throw INVALID_MESSAGE('Message too short')
    const b = this.st.buffer!.subarray(this.st.start, this.st.start + n)
    this.st.start += n
    return b
  }

  end (): void {
    if (this.st.start !== this.st.end) throw INVALID_MESSAGE('Trailing bytes after message')
  }
}

function zigzag (d: number): number {
  return d >= 0 ? d * 2 : -d * 2 - 1
}

function unzigzag (z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2
}

/** 16 numbers below 2^34 in a common bit width: the width, then the bits, least significant first. */
function writePacked (w: Writer, z: number[]): void {
  let width = 0
  for (const x of z) while (x >= Math.pow(2, width)) width++
  w.u8(width)
  const out = new Uint8Array(Math.ceil(z.length * width / 8))
  let bit = 0
  for (const x of z) {
    let v = x
    for (let i = 0; i < width; i++, bit++) {
      if (v % 2 === 1) out[bit >>> 3] = out[bit >>> 3]! | (1 << (bit & 7))
      v = Math.floor(v / 2)
    }
  }
  w.fixed(out)
}

function readPacked (r: Reader): number[] {
  const width = r.u8()
  if (width > 34) throw INVALID_MESSAGE('Bad count width')
  const bytes = r.fixed(Math.ceil(16 * width / 8))
  const z = new Array<number>(16)
  let bit = 0
  for (let k = 0; k < 16; k++) {
    let v = 0
    let scale = 1
    for (let i = 0; i < width; i++, bit++) {
      if ((bytes[bit >>> 3]! & (1 << (bit & 7))) !== 0) v += scale
      scale *= 2
    }
    z[k] = v
  }
  return z
}

function popcount16 (x: number): number {
  let n = 0
  for (; x !== 0; x &= x - 1) n++
  return n
}

/** Whether the first `depth` digits of the id at buf[at..] sort before (<0), as (0) or after (>0) prefix. */
function comparePrefix (buf: Uint8Array, at: number, prefix: Uint8Array, depth: number): number {
  const whole = depth >>> 1
  for (let i = 0; i < whole; i++) {
    const d = buf[at + i]! - prefix[i]!
    if (d !== 0) return d
  }
  if ((depth & 1) === 1) return (buf[at + whole]! >>> 4) - (prefix[whole]! >>> 4)
  return 0
}

function childPrefix (prefix: Uint8Array, depth: number, v: number): Uint8Array {
  const p = prefix.slice()
  const byte = depth >>> 1
  p[byte] = (depth & 1) === 0 ? (v << 4) : ((p[byte]! & 0xf0) | v)
  return p
}

/** Keyed fingerprints of every node of a snapshot, and of every id (for searches). */
class Fingerprints {
  readonly idH: Uint32Array
  readonly base: Int32Array
  readonly node: Uint32Array

  constructor (t: TreeData, h: KeyedHash) {
    this.base = new Int32Array(t.top)
    this.node = new Uint32Array(t.top * 2)
    this.idH = new Uint32Array(t.size * 2)
    const STAGE = 8192
    const stage = new Uint32Array(STAGE * 8)
    let staged = 0
    let flushed = 0
    let next = 0
    const flush = (): void => {
      if (staged === 0) return
      h.many(stage, 0, staged, this.idH, flushed * 2)
      flushed += staged
      staged = 0
    }
    const leaves = (node: number): void => {
      const first = t.child[node]!
      if (first >= 0) {
        for (let v = 0; v < 16; v++) if (t.count[first + v]! > 0) leaves(first + v)
        return
      }
      const n = t.count[node]!
      this.base[node] = next
      next += n
      if (n === 0) return
      const buf = t.leaves[node]!
      const w = new Uint32Array(buf.buffer, buf.byteOffset, n * 8)
      let i = 0
      while (i < n) {
        const k = Math.min(n - i, STAGE - staged)
        stage.set(w.subarray(i * 8, (i + k) * 8), staged * 8)
        staged += k
        i += k
        if (staged === STAGE) flush()
      }
    }
    leaves(0)
    flush()
    const sums = (node: number): void => {
      const first = t.child[node]!
      let lo = 0
      let hi = 0
      if (first >= 0) {
        for (let v = 0; v < 16; v++) {
          const ch = first + v
          if (t.count[ch] === 0) continue
          sums(ch)
          const a = this.node[ch * 2]!
          const s = (lo + a) >>> 0
          hi = (hi + this.node[ch * 2 + 1]! + (s < a ? 1 : 0)) >>> 0
          lo = s
        }
      } else {
        const b = this.base[node]!
        const n = t.count[node]!
        for (let i = 0; i < n; i++) {
          const a = this.idH[(b + i) * 2]!
          const s = (lo + a) >>> 0
          hi = (hi + this.idH[(b + i) * 2 + 1]! + (s < a ? 1 : 0)) >>> 0
          lo = s
        }
      }
      this.node[node * 2] = lo
      this.node[node * 2 + 1] = hi
    }
    sums(0)
  }
}

/**
 * One side of a reconciliation. `start()` gives the first message; hand
 * every message from the remote to `receive()`, which gives the next one to
 * send, or null when both sides are done (they finish on the same round).
 * Then `missing()` holds the ids this side lacks.
 */
export class Session {
  readonly set: ReconcileSet<any>
  private tree: TreeData | null = null
  private readonly nonce: Uint8Array
  private readonly peer: string | null
  private readonly sinceLimit: number
  private readonly recvLimit: number
  private readonly maxLearned: number
  private readonly maxOpen: number
  private readonly secret: Uint8Array | null

  private state: 'new' | 'hello' | 'running' | 'done' | 'failed' = 'new'
  private agenda: Task[] = []
  private hasher: KeyedHash | null = null
  private fps: Fingerprints | null = null
  private peerLimit = 0

  private myCount = 0
  private theirCount = 0
  private myL1: Float64Array | null = null
  private theirL1: Float64Array | null = null
  /** Estimated number of differences, -1 if unknown. */
  private estimate = -1
  private oneSided = false
  private mySince: Uint8Array | null = null
  private sinceLearned: Set<string> | null = null

  private readonly learned = new IdBuffer(64)
  private stateIds = 0
  private _mode: ReconcileMode = 'tree'

  private _messages = 0
  private _bytesSent = 0
  private _bytesReceived = 0

  // locate() results
  private ln = 0
  private ls = -1
  private le = -1
  private readonly h = new Uint32Array(2)

  constructor (set: ReconcileSet<any> | readonly Uint8Array[], opts: SessionOptions = {}) {
    if (set instanceof ReconcileSet) this.set = set
    else if (Array.isArray(set)) this.set = new ReconcileSet(set)
    else throw BAD_ARGUMENT('A session reconciles a ReconcileSet or an array of ids')
    this.peer = opts.peer ?? null
    this.sinceLimit = Math.min(Math.max(0, opts.sinceLimit ?? DEFAULT_SINCE_LIMIT), SINCE_HARD_MAX)
    this.recvLimit = Math.min(Math.max(1, opts.maxIdsPerMessage ?? DEFAULT_MAX_IDS_PER_MESSAGE), MAX_IDS_PER_MESSAGE_LIMIT)
    this.maxLearned = Math.max(0, opts.maxLearned ?? DEFAULT_MAX_LEARNED)
    this.maxOpen = Math.max(16, opts.maxOpen ?? DEFAULT_MAX_OPEN)
    if (opts.sessionKey !== undefined && !(opts.sessionKey instanceof Uint8Array)) throw BAD_ARGUMENT('sessionKey is bytes')
    this.secret = opts.sessionKey ?? null
    this.nonce = b4a.alloc(NONCE_BYTES)
    sodium.randombytes_buf(this.nonce)
  }

  /** True once the exchange is complete (receive() returned null). */
  get done (): boolean {
    return this.state === 'done'
  }

  /** How the sets were reconciled: the since fast path, bulk transfer, or the tree walk. */
  get mode (): ReconcileMode {
    return this._mode
  }

  /** Messages sent (= round trips, once done). */
  get messages (): number {
    return this._messages
  }

  get bytesSent (): number {
    return this._bytesSent
  }

  get bytesReceived (): number {
    return this._bytesReceived
  }

  /** The ids this side lacks (what it learned so far; complete once done). */
  missing (): Uint8Array[] {
    const out = new Array<Uint8Array>(this.learned.n)
    for (let i = 0; i < out.length; i++) out[i] = this.learned.buf.slice(i * ID_BYTES, (i + 1) * ID_BYTES)
    return out
  }

  /** The first message. */
  start (): Uint8Array {
    if (this.state !== 'new') throw INVALID_OPERATION('Session already started')
    const t = this.tree = this.set.snapshot()
    this.myCount = t.size
    if (this.peer !== null && this.sinceLimit > 0) this.mySince = this.set.addedSince(this.peer, this.sinceLimit)
    const w = new Writer(64 + (this.mySince?.byteLength ?? 0))
    w.u8(MSG_HELLO)
    w.fixed(this.nonce)
    let flags = 0
    if (this.myCount >= L1_MIN && t.child[0]! >= 0) flags |= FLAG_L1
    if (this.mySince !== null) flags |= FLAG_SINCE
    if (this.recvLimit !== DEFAULT_MAX_IDS_PER_MESSAGE) flags |= FLAG_LIMIT
    w.uint(flags)
    if ((flags & FLAG_LIMIT) !== 0) w.uint(this.recvLimit)
    w.uint(this.myCount)
    if ((flags & FLAG_L1) !== 0) {
      const l1 = this.myL1 = new Float64Array(16)
      const first = t.child[0]!
      const base = Math.floor(this.myCount / 16)
      const z = new Array<number>(16)
      for (let v = 0; v < 16; v++) {
        l1[v] = t.count[first + v]!
        z[v] = zigzag(l1[v]! - base)
      }
      writePacked(w, z)
    }
    if (this.mySince !== null) {
      w.uint(this.mySince.byteLength / ID_BYTES)
      w.fixed(this.mySince)
    }
    this.state = 'hello'
    return this.send(w)
  }

  /** Takes the remote's next message; returns ours, or null when done. */
  receive (msg: Uint8Array): Uint8Array | null {
    if (this.state === 'new') throw INVALID_OPERATION('Call start() first')
    if (this.state === 'done') throw INVALID_OPERATION('Session is done')
    if (this.state === 'failed') throw INVALID_OPERATION('Session failed')
    try {
      if (!(msg instanceof Uint8Array)) throw INVALID_MESSAGE('A message is bytes')
      this._bytesReceived += msg.byteLength
      const r = new Reader(msg)
      if (this.state === 'hello') {
        if (msg.byteLength > 128 + SINCE_HARD_MAX * ID_BYTES) throw INVALID_MESSAGE('Message too large')
        this.onHello(r)
      } else {
        if (msg.byteLength > 64 + this.recvLimit * ID_BYTES + this.agenda.length * MAX_TASK_BYTES) throw INVALID_MESSAGE('Message too large')
        this.onRound(r)
      }
      r.end()
      return this.next()
    } catch (err) {
      this.state = 'failed'
      if (isCoded(err)) throw err
      throw INVALID_MESSAGE('Cannot decode: ' + (err instanceof Error ? err.message : String(err)))
    }
  }

  // ---------------------------------------------------------------------
  // Rounds

  private send (w: Writer): Uint8Array {
    const out = w.finish()
    this._messages++
    this._bytesSent += out.byteLength
    return out
  }

  private onHello (r: Reader): void {
    if (r.u8() !== MSG_HELLO) throw INVALID_MESSAGE('Expected a hello (of this protocol version)')
    const theirNonce = r.fixed(NONCE_BYTES)
    const flags = r.uint()
    if ((flags & ~(FLAG_L1 | FLAG_SINCE | FLAG_LIMIT)) !== 0) throw INVALID_MESSAGE('Unknown flags')
    this.peerLimit = Math.min((flags & FLAG_LIMIT) !== 0 ? r.uint() : DEFAULT_MAX_IDS_PER_MESSAGE, MAX_IDS_PER_MESSAGE_LIMIT)
    if (this.peerLimit < 1) throw INVALID_MESSAGE('Peer accepts no ids')
    this.theirCount = r.uint(0xffffffff)
    if ((flags & FLAG_L1) !== 0) {
      const l1 = this.theirL1 = new Float64Array(16)
      const base = Math.floor(this.theirCount / 16)
      const z = readPacked(r)
      let sum = 0
      for (let v = 0; v < 16; v++) {
        l1[v] = base + unzigzag(z[v]!)
        if (l1[v]! < 0) throw INVALID_MESSAGE('Negative count')
        sum += l1[v]!
      }
      if (sum !== this.theirCount) throw INVALID_MESSAGE('Top-level counts do not add up')
    }
    let theirSince: Uint8Array | null = null
    if ((flags & FLAG_SINCE) !== 0) {
      const k = r.uint(SINCE_HARD_MAX)
      theirSince = r.fixed(k * ID_BYTES)
      for (let i = 1; i < k; i++) {
        if (compareAt(theirSince, (i - 1) * ID_BYTES, theirSince, i * ID_BYTES) >= 0) throw INVALID_MESSAGE('Since ids not sorted')
      }
    }

    this.hasher = new KeyedHash(deriveSessionKey(this.nonce, theirNonce, this.secret))
    if (this.myL1 !== null && this.theirL1 !== null) {
      // Differences: one-sided ones show in the net count difference, the
      // others in how unevenly the top-level count differences spread
      // (each difference moves one of them by ±1: their variance is d).
      const n = this.myCount - this.theirCount
      let e = 0
      for (let v = 0; v < 16; v++) {
        const d = (this.myL1[v]! - this.theirL1[v]!) - n / 16
        e += d * d
      }
      this.estimate = Math.max(Math.abs(n), e)
      // Mostly one-sided: a count difference of 1 or 2 is that many missing ids.
      this.oneSided = Math.abs(n) * 5 >= this.estimate * 4
    }

    if (this.mySince !== null || theirSince !== null) {
      const task = new Task(0, new Uint8Array(ID_BYTES))
      task.kind = K_SINCE
      task.actor = BOTH
      if (theirSince !== null) {
        this.sinceLearned = new Set()
        const t = this.tree!
        const h = this.h
        let lo = 0
        let hi = 0
        let added = 0
        for (let i = 0; i < theirSince.byteLength; i += ID_BYTES) {
          if (t.has(theirSince, i)) continue
          this.learn(theirSince, i)
          this.sinceLearned.add(b4a.toString(theirSince.subarray(i, i + ID_BYTES) as Buffer, 'hex'))
          this.hasher.one(theirSince, i, h, 0)
          const s = (lo + h[0]!) >>> 0
          hi = (hi + h[1]! + (s < h[0]! ? 1 : 0)) >>> 0
          lo = s
          added++
        }
        // Kept in the task until composing: my fingerprint after adding these.
        task.mc = added
        task.mlo = lo
        task.mhi = hi
      }
      this.agenda = [task]
    } else {
      this.agenda = this.planStart(true, null)
    }
    this.state = 'running'
  }

  private onRound (r: Reader): void {
    if (r.u8() !== MSG_ROUND) throw INVALID_MESSAGE('Expected a round')
    const budget = { ids: this.recvLimit }
    const next: Task[] = []
    for (const task of this.agenda) {
      this.decodeTask(task, r, budget)
      this.resolveTask(task, next)
      if (next.length > this.maxOpen) throw INVALID_MESSAGE('Too many open prefixes')
    }
    this.agenda = next
  }

  /** Our next message, or null (and done) when the agenda is empty. */
  private next (): Uint8Array | null {
    if (this.agenda.length === 0) {
      this.state = 'done'
      return null
    }
    const w = new Writer(256 + this.agenda.length * 32)
    w.u8(MSG_ROUND)
    const budget = { ids: Math.min(this.peerLimit, this.recvLimit) }
    for (const task of this.agenda) this.composeTask(task, w, budget)
    return this.send(w)
  }

  /**
   * The root-level plan, from counts alone (round 2, or after a failed since
   * check or XOR decode, which passes its task: the root fingerprints are known).
   */
  private planStart (allowXor: boolean, known: Task | null): Task[] {
    const rootFpKnown = known !== null
    const out: Task[] = []
    const mc = this.myCount
    const tc = this.theirCount
    if (mc === 0 && tc === 0) return out
    const root = new Task(0, new Uint8Array(ID_BYTES))
    root.mc = mc
    root.tc = tc
    if (known !== null) {
      root.fpKnown = true
      root.mlo = known.mlo
      root.mhi = known.mhi
      root.tlo = known.tlo
      root.thi = known.thi
    }
    if (mc === 0 || tc === 0) {
      root.kind = K_ALL
      root.actor = tc === 0 ? ME : THEM
      this._mode = 'bulk'
      out.push(root)
      return out
    }
    // Fingerprints are not known yet: equal counts may well be equal sets.
    const listers = mc === tc ? 0 : this.listers(mc, tc)
    if (listers !== 0) {
      root.kind = K_LIST
      root.actor = listers
      this._mode = 'bulk'
      out.push(root)
      return out
    }
    const n = mc - tc
    const est = this.estimate
    if (n !== 0 && Math.max(mc, tc) <= HASH_MAX) {
      root.kind = K_HASHES
      root.actor = BOTH
      out.push(root)
      return out
    }
    if (allowXor && Math.abs(n) === 1 && (est < 0 || est <= XOR_ESTIMATE_MAX)) {
      root.kind = K_XOR
      root.actor = BOTH
      out.push(root)
      return out
    }
    const myL1 = this.myL1
    const theirL1 = this.theirL1
    if (myL1 !== null && theirL1 !== null) {
      let same = n === 0
      for (let v = 0; v < 16 && same; v++) if (myL1[v] !== theirL1[v]) same = false
      if (same && !rootFpKnown) {
        root.kind = K_ENTRY
        root.actor = BOTH
        out.push(root)
        return out
      }
      for (let v = 0; v < 16; v++) {
        const a = myL1[v]!
        const b = theirL1[v]!
        if (a === 0 && b === 0) continue
        const t = new Task(1, childPrefix(root.prefix, 0, v))
        t.mc = a
        t.tc = b
        t.actor = BOTH
        const l = a === b ? 0 : this.listers(a, b)
        if (a === 0 || b === 0) {
          t.kind = K_ALL
          t.actor = b === 0 ? ME : THEM
        } else if (l !== 0) {
          t.kind = K_LIST
          t.actor = l
        } else if (Math.abs(a - b) === 1 && (est / 16 <= SPARSE_L1 || this.oneSided)) {
          t.kind = K_XOR
        } else if (Math.abs(a - b) === 2 && (est / 16 <= SPARSE_L1 || this.oneSided)) {
          t.kind = K_ENTRY
        } else if (a !== b && Math.max(a, b) <= HASH_MAX) {
          t.kind = K_HASHES
        } else if (est / 256 >= DENSE) {
          t.kind = K_DEEP
        } else if (a !== b || est / 16 >= DENSE) {
          t.kind = K_CHILDREN
        } else {
          t.kind = K_ENTRY
        }
        out.push(t)
      }
      return out
    }
    root.actor = BOTH
    root.kind = n === 0 && !rootFpKnown ? K_ENTRY : K_CHILDREN
    out.push(root)
    return out
  }

  /** Which sides settle a prefix with these counts by sending their ids (0: neither, descend). */
  private listers (mc: number, tc: number): number {
    if (mc <= LIST_MAX && tc <= LIST_MAX) return BOTH
    const min = Math.min(mc, tc)
    const max = Math.max(mc, tc)
    if (min <= LIST_MAX || min * COLD_RATIO <= max) return mc < tc ? ME : THEM
    return 0
  }

  /** Whether differences are sparse enough at `depth` to decode a count difference by search. */
  private sparse (depth: number): boolean {
    return this.estimate < 0 || this.oneSided || this.estimate / Math.pow(16, depth) <= SPARSE
  }

  /** Decides what a compared prefix needs next (both entries and fingerprints known). */
  private classify (t: Task, out: Task[], mine: Kids | null = null, theirs: Kids | null = null): void {
    const mc = t.mc
    const tc = t.tc
    if (mc === tc && t.mlo === t.tlo && t.mhi === t.thi) return
    if (mc === 0 || tc === 0) {
      t.kind = K_ALL
      t.actor = tc === 0 ? ME : THEM
      out.push(t)
      return
    }
    const diff = mc - tc
    const ad = Math.abs(diff)
    if (ad <= 2 && ad >= 1 && this.sparse(t.depth)) {
      t.kind = K_SINGLE
      t.actor = diff > 0 ? ME : THEM
      t.k = ad
      out.push(t)
      return
    }
    const l = this.listers(mc, tc)
    if (l !== 0 || t.depth >= MAX_DEPTH) {
      t.kind = K_LIST
      t.actor = l === 0 ? BOTH : l
      out.push(t)
      return
    }
    if (mine !== null && theirs !== null) {
      this.compareSpans(t, mine, theirs, out)
      return
    }
    t.kind = Math.max(mc, tc) <= HASH_MAX ? K_HASHES : K_CHILDREN
    t.actor = BOTH
    out.push(t)
  }

  /** Compares children that may come with path compression (see Kids). */
  private compareSpans (parent: Task, mine: Kids, theirs: Kids, out: Task[]): void {
    const p = parent.depth
    const qm = mine.q
    const qt = theirs.q
    if (qm === p && qt === p) {
      this.compareKids(parent, mine, theirs, out)
      return
    }
    const pm = mine.qp ?? parent.prefix
    const pt = theirs.qp ?? parent.prefix
    let l = p
    const lim = Math.min(qm, qt)
    while (l < lim && nibbleAt(pm, 0, l) === nibbleAt(pt, 0, l)) l++
    if (qm === qt && l === qm) {
      this.compareKids(new Task(qm, pm), mine, theirs, out)
      return
    }
    if (l < qm && l < qt) {
      // The spans part ways: no id in common, each side gets all of the other's.
      const a = new Task(qm, pm)
      a.kind = K_ALL
      a.actor = ME
      a.mc = parent.mc
      const b = new Task(qt, pt)
      b.kind = K_ALL
      b.actor = THEM
      b.tc = parent.tc
      if (nibbleAt(pm, 0, l) < nibbleAt(pt, 0, l)) out.push(a, b)
      else out.push(b, a)
      return
    }
    // One span lies inside the other: compare under the shorter one, the
    // longer one's side holding all its ids in one of those children.
    const inner = qm > qt // my span is the longer one
    const short = inner ? theirs : mine
    const q = short.q
    const sp = inner ? pt : pm
    const c = nibbleAt(inner ? pm : pt, 0, q)
    const whole = inner ? mine : theirs
    let wlo = 0
    let whi = 0
    for (let v = 0; v < 16; v++) {
      if (whole.c[v] === 0) continue
      const s = (wlo + whole.lo[v]!) >>> 0
      whi = (whi + whole.hi[v]! + (s < wlo ? 1 : 0)) >>> 0
      wlo = s
    }
    for (let v = 0; v < 16; v++) {
      if (short.c[v] === 0 && v !== c) continue
      const t = new Task(q + 1, childPrefix(sp, q, v))
      t.fpKnown = true
      const sc = short.c[v]!
      const slo = short.lo[v]!
      const shi = short.hi[v]!
      const [wc, wl, wh] = v === c ? [inner ? parent.mc : parent.tc, wlo, whi] : [0, 0, 0]
      if (inner) {
        t.mc = wc; t.mlo = wl; t.mhi = wh
        t.tc = sc; t.tlo = slo; t.thi = shi
      } else {
        t.mc = sc; t.mlo = slo; t.mhi = shi
        t.tc = wc; t.tlo = wl; t.thi = wh
      }
      this.classify(t, out)
    }
  }

  private compareKids (parent: Task, mine: Kids, theirs: Kids, out: Task[], myGrand: Array<Kids | null> | null = null, theirGrand: Array<Kids | null> | null = null): void {
    for (let v = 0; v < 16; v++) {
      const a = mine.c[v]!
      const b = theirs.c[v]!
      if (a === 0 && b === 0) continue
      const t = new Task(parent.depth + 1, childPrefix(parent.prefix, parent.depth, v))
      t.mc = a
      t.mlo = mine.lo[v]!
      t.mhi = mine.hi[v]!
      t.tc = b
      t.tlo = theirs.lo[v]!
      t.thi = theirs.hi[v]!
      t.fpKnown = true
      const g1 = myGrand?.[v] ?? (mine.hv === v ? mine.heavy : null)
      const g2 = theirGrand?.[v] ?? (theirs.hv === v ? theirs.heavy : null)
      this.classify(t, out, g1, g2)
    }
  }

  // ---------------------------------------------------------------------
  // Composing our part

  private composeTask (t: Task, w: Writer, budget: { ids: number }): void {
    switch (t.kind) {
      case K_SINCE: {
        // Root fingerprint and count after adding the since-ids we lacked.
        const f = this.fingerprints()
        const lo0 = f.node[0]!
        const s = (lo0 + t.mlo) >>> 0
        const hi = (f.node[1]! + t.mhi + (s < lo0 ? 1 : 0)) >>> 0
        t.mc = this.myCount + t.mc
        t.mlo = s
        t.mhi = hi
        w.fp(t.mlo, t.mhi)
        w.uint(t.mc)
        return
      }
      case K_ENTRY:
        this.myFp(t)
        w.fp(t.mlo, t.mhi)
        return
      case K_XOR: {
        this.myFp(t)
        w.fp(t.mlo, t.mhi)
        t.myXor = this.xorAt(t.prefix, t.depth)
        w.fixed(t.myXor)
        return
      }
      case K_CHILDREN:
        t.myKids = this.kidsAt(t.prefix, t.depth, true)
        this.writeKids(w, t.myKids, t.depth, t.mc, t.fpKnown, t.mlo, t.mhi)
        return
      case K_DEEP: {
        const kids = t.myKids = this.kidsAt(t.prefix, t.depth, false)
        this.writeKids(w, kids, t.depth, t.mc, false, 0, 0)
        t.myGrand = new Array<Kids | null>(16).fill(null)
        for (let v = 0; v < 16; v++) {
          if (kids.c[v] === 0) continue
          const g = t.myGrand[v] = this.kidsAt(childPrefix(t.prefix, t.depth, v), t.depth + 1, false)
          this.writeKids(w, g, t.depth + 1, kids.c[v]!, true, kids.lo[v]!, kids.hi[v]!)
        }
        return
      }
      case K_SINGLE: {
        if (t.actor !== ME) return
        const found = this.search(t)
        if (found !== null) {
          t.myTag = TAG_IDS
          w.u8(TAG_IDS)
          w.fixed(found)
        } else if (t.mc <= HASH_MAX || t.depth >= MAX_DEPTH) {
          // A small prefix: all our ids, the other side answers with what it has beyond them.
          t.myTag = TAG_LIST
          w.u8(TAG_LIST)
          this.writeChunk(t, w, { ids: Number.MAX_SAFE_INTEGER }, false)
        } else {
          t.myTag = TAG_CHILDREN
          w.u8(TAG_CHILDREN)
          t.myKids = this.kidsAt(t.prefix, t.depth, true)
          this.writeKids(w, t.myKids, t.depth, t.mc, true, t.mlo, t.mhi)
        }
        return
      }
      case K_HALF:
        if (t.actor !== ME) return
        t.myKids = this.kidsAt(t.prefix, t.depth, true)
        this.writeKids(w, t.myKids, t.depth, t.mc, true, t.mlo, t.mhi)
        return
      case K_ALL:
        if (t.actor === ME) this.writeChunk(t, w, budget, false)
        return
      case K_LIST:
        if ((t.actor & ME) !== 0 && !t.myDone) this.writeChunk(t, w, budget, false)
        return
      case K_EXTRAS:
        if (t.actor === ME) this.writeChunk(t, w, budget, true)
        return
      case K_HASHES:
        this.writeHashes(t, w)
        return
      case K_HEXTRAS:
        this.writeUnhashed(t, w)
    }
  }

  /** The keyed hash of each of our ids under the prefix (as many as our count says). */
  private writeHashes (t: Task, w: Writer): void {
    const f = this.fingerprints()
    this.walk(t.prefix, t.depth, null, (_buf, _at, leaf, i) => {
      const j = (f.base[leaf]! + i) * 2
      w.fp(f.idH[j]!, f.idH[j + 1]!)
      return true
    })
  }

  /** Our ids under the prefix whose hashes are not among theirs, as one chunk. */
  private writeUnhashed (t: Task, w: Writer): void {
    const f = this.fingerprints()
    const theirs = t.theirHashes!
    const ids = new IdBuffer(4)
    this.walk(t.prefix, t.depth, null, (buf, at, leaf, i) => {
      const j = (f.base[leaf]! + i) * 2
      const lo = f.idH[j]!
      const hi = f.idH[j + 1]!
      for (let m = 0; m < theirs.length; m += 2) if (theirs[m] === lo && theirs[m + 1] === hi) return true
      ids.push(buf, at)
      return true
    })
    w.uint(ids.n * 2)
    w.fixed(ids.buf.subarray(0, ids.n * ID_BYTES))
  }

  private fingerprints (): Fingerprints {
    if (this.fps === null) this.fps = new Fingerprints(this.tree!, this.hasher!)
    return this.fps
  }

  /** Sets t.mlo/mhi to our fingerprint of the prefix. */
  private myFp (t: Task): void {
    const f = this.fingerprints()
    this.locate(t.prefix, t.depth)
    if (this.ls === -1) {
      t.mlo = f.node[this.ln * 2]!
      t.mhi = f.node[this.ln * 2 + 1]!
      return
    }
    let lo = 0
    let hi = 0
    const b = f.base[this.ln]!
    for (let i = this.ls; i < this.le; i++) {
      const a = f.idH[(b + i) * 2]!
      const s = (lo + a) >>> 0
      hi = (hi + f.idH[(b + i) * 2 + 1]! + (s < a ? 1 : 0)) >>> 0
      lo = s
    }
    t.mlo = lo
    t.mhi = hi
  }

  /**
   * Finds the prefix in the snapshot: `ln` is an inner node exactly at it
   * (`ls` = -1), or the leaf holding it with its ids in [ls, le).
   */
  private locate (prefix: Uint8Array, depth: number): void {
    const t = this.tree!
    let node = 0
    while (t.child[node]! >= 0 && t.depth[node]! < depth) node = t.child[node]! + nibbleAt(prefix, 0, t.depth[node]!)
    this.ln = node
    if (t.child[node]! >= 0) {
      this.ls = -1
      this.le = -1
      return
    }
    const n = t.count[node]!
    if (t.depth[node] === depth || n === 0) {
      this.ls = 0
      this.le = n
      return
    }
    const buf = t.leaves[node]!
    let s = 0
    while (s < n && comparePrefix(buf, s * ID_BYTES, prefix, depth) < 0) s++
    let e = s
    while (e < n && comparePrefix(buf, e * ID_BYTES, prefix, depth) === 0) e++
    this.ls = s
    this.le = e
  }

  /** The XOR of our ids under a prefix. */
  private xorAt (prefix: Uint8Array, depth: number): Uint8Array {
    const t = this.tree!
    const xor = new Uint8Array(ID_BYTES)
    const x32 = new Int32Array(xor.buffer)
    this.locate(prefix, depth)
    if (this.ls === -1 || (this.ls === 0 && this.le === t.count[this.ln])) {
      x32.set(t.xors.subarray(this.ln * 8, this.ln * 8 + 8))
      return xor
    }
    const buf = t.leaves[this.ln]!
    const w = new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2)
    for (let i = this.ls; i < this.le; i++) for (let k = 0; k < 8; k++) x32[k] = x32[k]! ^ w[i * 8 + k]!
    return xor
  }

  /** The id at one end of our ids under a prefix (first or last), as [buffer, offset], or null. */
  private endUnder (prefix: Uint8Array, depth: number, last: boolean): [Uint8Array, number] | null {
    const t = this.tree!
    this.locate(prefix, depth)
    if (this.ls !== -1) {
      if (this.le <= this.ls) return null
      return [t.leaves[this.ln]!, (last ? this.le - 1 : this.ls) * ID_BYTES]
    }
    let node = this.ln
    while (t.child[node]! >= 0) {
      const first = t.child[node]!
      let next = -1
      for (let k = 0; k < 16; k++) {
        const v = last ? 15 - k : k
        if (t.count[first + v]! > 0) {
          next = first + v
          break
        }
      }
      if (next < 0) return null
      node = next
    }
    const n = t.count[node]!
    return n === 0 ? null : [t.leaves[node]!, (last ? n - 1 : 0) * ID_BYTES]
  }

  /**
   * Our 16 children of a prefix: counts and keyed fingerprints. `compress`:
   * of the longest prefix all our ids under it share (when that is longer).
   */
  private kidsAt (prefix: Uint8Array, depth: number, compress: boolean): Kids {
    const f = this.fingerprints()
    const t = this.tree!
    const kids = new Kids()
    kids.q = depth
    if (compress) {
      const a = this.endUnder(prefix, depth, false)
      const b = this.endUnder(prefix, depth, true)
      if (a !== null && b !== null && (a[0] !== b[0] || a[1] !== b[1])) {
        // Two different ids differ at some digit before the last: q < MAX_DEPTH.
        let q = depth
        while (nibbleAt(a[0], a[1], q) === nibbleAt(b[0], b[1], q)) q++
        if (q > depth) {
          const qp = new Uint8Array(ID_BYTES)
          qp.set(a[0].subarray(a[1], a[1] + ((q + 1) >>> 1)))
          if ((q & 1) === 1) qp[q >>> 1] = qp[q >>> 1]! & 0xf0
          kids.qp = qp
          kids.q = q
          prefix = qp
          depth = q
        }
      }
    }
    this.locate(prefix, depth)
    if (this.ls === -1) {
      const first = t.child[this.ln]!
      for (let v = 0; v < 16; v++) {
        kids.c[v] = t.count[first + v]!
        kids.lo[v] = f.node[(first + v) * 2]!
        kids.hi[v] = f.node[(first + v) * 2 + 1]!
      }
    } else {
      const buf = t.leaves[this.ln]
      const b = f.base[this.ln]!
      for (let i = this.ls; i < this.le; i++) {
        const v = nibbleAt(buf!, i * ID_BYTES, depth)
        kids.c[v]!++
        const a = f.idH[(b + i) * 2]!
        const s = (kids.lo[v]! + a) >>> 0
        kids.hi[v] = kids.hi[v]! + f.idH[(b + i) * 2 + 1]! + (s < a ? 1 : 0)
        kids.lo[v] = s
      }
    }
    if (compress) {
      let pc = 0
      for (let v = 0; v < 16; v++) pc += kids.c[v]!
      const hv = heavyChild(kids, pc)
      if (hv >= 0) {
        kids.hv = hv
        kids.heavy = this.kidsAt(childPrefix(prefix, depth, hv), depth + 1, true)
      }
    }
    return kids
  }

  /**
   * Children as: a bitmap of the non-empty ones, then for each but the last
   * its fingerprint and its count (zigzag, relative to an even split of the
   * parent's); the last one's count (and fingerprint, when the parent's is
   * known) is what is left of the parent's.
   */
  private writeKids (w: Writer, kids: Kids, depth: number, pc: number, fpKnown: boolean, plo: number, phi: number): void {
    if (kids.q > depth) {
      // An empty bitmap for a non-empty parent: a span of shared digits follows.
      w.u16(0)
      const skip = kids.q - depth
      w.uint(skip)
      const packed = new Uint8Array((skip + 1) >>> 1)
      for (let i = 0; i < skip; i++) packed[i >>> 1] = packed[i >>> 1]! | (nibbleAt(kids.qp!, 0, depth + i) << ((i & 1) === 0 ? 4 : 0))
      w.fixed(packed)
    }
    let bitmap = 0
    let k = 0
    for (let v = 0; v < 16; v++) {
      if (kids.c[v]! > 0) {
        bitmap |= 1 << v
        k++
      }
    }
    w.u16(bitmap)
    if (k === 0) return
    const exp = Math.floor(pc / k)
    let seen = 0
    for (let v = 0; v < 16; v++) {
      if (kids.c[v] === 0) continue
      if (++seen < k) {
        w.fp(kids.lo[v]!, kids.hi[v]!)
        w.uint(zigzag(kids.c[v]! - exp))
      } else if (!fpKnown) {
        w.fp(kids.lo[v]!, kids.hi[v]!)
      }
    }
    if (kids.heavy !== null) this.writeKids(w, kids.heavy, kids.q + 1, kids.c[kids.hv]!, true, kids.lo[kids.hv]!, kids.hi[kids.hv]!)
  }

  private readKids (r: Reader, prefix: Uint8Array, depth: number, pc: number, fpKnown: boolean, plo: number, phi: number, span: boolean): Kids {
    const kids = new Kids()
    kids.q = depth
    let bitmap = r.u16()
    if (bitmap === 0 && pc > 0 && span) {
      const skip = r.uint(MAX_DEPTH - 1 - depth)
      if (skip < 1 || pc < 2) throw INVALID_MESSAGE('Bad span')
      const packed = r.fixed((skip + 1) >>> 1)
      if ((skip & 1) === 1 && (packed[packed.length - 1]! & 0x0f) !== 0) throw INVALID_MESSAGE('Bad span padding')
      const qp = prefix.slice()
      for (let i = 0; i < skip; i++) {
        const d = depth + i
        const v = (packed[i >>> 1]! >>> ((i & 1) === 0 ? 4 : 0)) & 15
        const byte = d >>> 1
        qp[byte] = (d & 1) === 0 ? (v << 4) : ((qp[byte]! & 0xf0) | v)
      }
      kids.qp = qp
      kids.q = depth + skip
      bitmap = r.u16()
      if (bitmap === 0) throw INVALID_MESSAGE('Empty span')
    }
    const k = popcount16(bitmap)
    if ((pc === 0) !== (bitmap === 0)) throw INVALID_MESSAGE('Children do not match their parent')
    if (k === 0) return kids
    const exp = Math.floor(pc / k)
    let seen = 0
    let sum = 0
    let lo = 0
    let hi = 0
    const h = this.h
    for (let v = 0; v < 16; v++) {
      if ((bitmap & (1 << v)) === 0) continue
      if (++seen < k) {
        r.fp(h)
        const cnt = exp + unzigzag(r.uint(0x3ffffffff))
        sum += cnt
        if (cnt < 1 || sum > pc - (k - seen)) throw INVALID_MESSAGE('Children counts do not add up')
        kids.c[v] = cnt
        kids.lo[v] = h[0]!
        kids.hi[v] = h[1]!
        const s = (lo + h[0]!) >>> 0
        hi = (hi + h[1]! + (s < h[0]! ? 1 : 0)) >>> 0
        lo = s
      } else {
        kids.c[v] = pc - sum
        if (fpKnown) {
          kids.lo[v] = (plo - lo) >>> 0
          kids.hi[v] = (phi - hi - (plo < lo ? 1 : 0)) >>> 0
        } else {
          r.fp(h)
          kids.lo[v] = h[0]!
          kids.hi[v] = h[1]!
        }
      }
    }
    if (span) {
      const hv = heavyChild(kids, pc)
      if (hv >= 0) {
        kids.hv = hv
        kids.heavy = this.readKids(r, childPrefix(kids.qp ?? prefix, kids.q, hv), kids.q + 1, kids.c[hv]!, true, kids.lo[hv]!, kids.hi[hv]!, true)
      }
    }
    return kids
  }

  /**
   * Our ids under the prefix, in order, after `after` (exclusive): calls fn
   * with the leaf, the id's offset in it, the leaf node and the id's index;
   * stops when fn returns false.
   */
  private walk (prefix: Uint8Array, depth: number, after: Uint8Array | null, fn: (buf: Uint8Array, at: number, leaf: number, i: number) => boolean): void {
    const t = this.tree!
    this.locate(prefix, depth)
    const node = this.ln
    if (this.ls !== -1) {
      const buf = t.leaves[node]
      if (buf === null) return
      let i = this.ls
      if (after !== null) {
        const p = searchLeaf(buf, t.count[node]!, after, 0)
        i = Math.max(i, p >= 0 ? p + 1 : ~p)
      }
      for (const e = this.le; i < e; i++) if (!fn(buf, i * ID_BYTES, node, i)) return
      return
    }
    this.walkNode(node, after, after !== null, fn)
  }

  private walkNode (node: number, after: Uint8Array | null, bounded: boolean, fn: (buf: Uint8Array, at: number, leaf: number, i: number) => boolean): boolean {
    const t = this.tree!
    const first = t.child[node]!
    if (first >= 0) {
      const a = bounded ? nibbleAt(after!, 0, t.depth[node]!) : 0
      for (let v = a; v < 16; v++) {
        if (t.count[first + v] === 0) continue
        if (!this.walkNode(first + v, after, bounded && v === a, fn)) return false
      }
      return true
    }
    const n = t.count[node]!
    if (n === 0) return true
    const buf = t.leaves[node]!
    let i = 0
    if (bounded) {
      const p = searchLeaf(buf, n, after!, 0)
      i = p >= 0 ? p + 1 : ~p
    }
    for (; i < n; i++) if (!fn(buf, i * ID_BYTES, node, i)) return false
    return true
  }

  /**
   * Our 1 or 2 ids under the prefix whose keyed hashes sum to the
   * fingerprint difference (sorted, back to back), or null.
   */
  private search (t: Task): Uint8Array | null {
    const f = this.fingerprints()
    const dlo = (t.mlo - t.tlo) >>> 0
    const dhi = (t.mhi - t.thi - (t.mlo < t.tlo ? 1 : 0)) >>> 0
    let found: Uint8Array | null = null
    if (t.k === 1) {
      this.walk(t.prefix, t.depth, null, (buf, at, leaf, i) => {
        const j = (f.base[leaf]! + i) * 2
        if (f.idH[j] !== dlo || f.idH[j + 1] !== dhi) return true
        found = buf.slice(at, at + ID_BYTES)
        return false
      })
      return found
    }
    // Two ids: remember each hash, look for the complement.
    const los: number[] = []
    const his: number[] = []
    const where: Array<[Uint8Array, number]> = []
    const byLo = new Map<number, number>()
    const chain: number[] = []
    this.walk(t.prefix, t.depth, null, (buf, at, leaf, i) => {
      const j = (f.base[leaf]! + i) * 2
      const lo = f.idH[j]!
      const hi = f.idH[j + 1]!
      const needLo = (dlo - lo) >>> 0
      const needHi = (dhi - hi - (dlo < lo ? 1 : 0)) >>> 0
      for (let m = byLo.get(needLo) ?? -1; m >= 0; m = chain[m]!) {
        if (his[m] === needHi) {
          const [b2, at2] = where[m]!
          const out = new Uint8Array(2 * ID_BYTES)
          // b2 comes first: it was walked earlier, and the walk is in order.
          out.set(b2.subarray(at2, at2 + ID_BYTES), 0)
          out.set(buf.subarray(at, at + ID_BYTES), ID_BYTES)
          found = out
          return false
        }
      }
      const idx = los.length
      los.push(lo)
      his.push(hi)
      where.push([buf, at])
      chain.push(byLo.get(lo) ?? -1)
      byLo.set(lo, idx)
      return true
    })
    return found
  }

  /**
   * A chunk of our ids under the prefix (after the last one sent): count and
   * "more" flag, then the ids. `extras`: only those not in the remote's list.
   */
  private writeChunk (t: Task, w: Writer, budget: { ids: number }, extras: boolean): void {
    const runs: Array<[Uint8Array, number, number]> = []
    let k = 0
    let more = false
    const cap = budget.ids
    const list = extras ? t.theirList : null
    let last: Uint8Array | null = null
    let lastAt = 0
    this.walk(t.prefix, t.depth, t.myCursor, (buf, at) => {
      if (list !== null && list.includes(buf, at)) return true
      if (k >= cap) {
        more = true
        return false
      }
      k++
      last = buf
      lastAt = at
      const r = runs.length > 0 ? runs[runs.length - 1]! : null
      if (r !== null && r[0] === buf && r[1] + r[2] === at) r[2] += ID_BYTES
      else runs.push([buf, at, ID_BYTES])
      return true
    })
    budget.ids -= k
    w.uint(k * 2 + (more ? 1 : 0))
    for (const [buf, at, len] of runs) w.fixed(buf.subarray(at, at + len))
    if (last !== null) t.myCursor = (last as Uint8Array).slice(lastAt, lastAt + ID_BYTES)
    t.myDone = !more
  }

  // ---------------------------------------------------------------------
  // Decoding their part

  private decodeTask (t: Task, r: Reader, budget: { ids: number }): void {
    const h = this.h
    switch (t.kind) {
      case K_SINCE:
        r.fp(h)
        t.tlo = h[0]!
        t.thi = h[1]!
        t.tc = r.uint()
        return
      case K_ENTRY:
        r.fp(h)
        t.tlo = h[0]!
        t.thi = h[1]!
        return
      case K_XOR:
        r.fp(h)
        t.tlo = h[0]!
        t.thi = h[1]!
        t.theirXor = r.fixed(ID_BYTES)
        return
      case K_CHILDREN:
        t.theirKids = this.readKids(r, t.prefix, t.depth, t.tc, t.fpKnown, t.tlo, t.thi, true)
        return
      case K_DEEP: {
        const kids = t.theirKids = this.readKids(r, t.prefix, t.depth, t.tc, false, 0, 0, false)
        t.theirGrand = new Array<Kids | null>(16).fill(null)
        for (let v = 0; v < 16; v++) {
          if (kids.c[v] === 0) continue
          t.theirGrand[v] = this.readKids(r, childPrefix(t.prefix, t.depth, v), t.depth + 1, kids.c[v]!, true, kids.lo[v]!, kids.hi[v]!, false)
        }
        return
      }
      case K_SINGLE: {
        if (t.actor !== THEM) return
        const tag = t.theirTag = r.u8()
        if (tag === TAG_IDS) {
          const ids = r.fixed(t.k * ID_BYTES)
          let lo = 0
          let hi = 0
          for (let i = 0; i < t.k; i++) {
            const at = i * ID_BYTES
            if (!hasPrefix(ids, at, t.prefix, t.depth)) throw INVALID_MESSAGE('Id outside its prefix')
            if (i > 0 && compareAt(ids, at - ID_BYTES, ids, at) >= 0) throw INVALID_MESSAGE('Ids not sorted')
            this.hasher!.one(ids, at, h, 0)
            const s = (lo + h[0]!) >>> 0
            hi = (hi + h[1]! + (s < h[0]! ? 1 : 0)) >>> 0
            lo = s
          }
          const dlo = (t.tlo - t.mlo) >>> 0
          const dhi = (t.thi - t.mhi - (t.tlo < t.mlo ? 1 : 0)) >>> 0
          if (lo !== dlo || hi !== dhi) throw INVALID_MESSAGE('Ids do not match the fingerprints')
          for (let i = 0; i < t.k; i++) if (!this.tree!.has(ids, i * ID_BYTES)) this.learn(ids, i * ID_BYTES)
        } else if (tag === TAG_CHILDREN) {
          if (t.depth >= MAX_DEPTH) throw INVALID_MESSAGE('No children below a whole id')
          t.theirKids = this.readKids(r, t.prefix, t.depth, t.tc, true, t.tlo, t.thi, true)
        } else if (tag === TAG_LIST) {
          this.readChunk(t, r, { ids: HASH_MAX }, true)
          if (!t.theirDone) throw INVALID_MESSAGE('A short list comes in one piece')
        } else {
          throw INVALID_MESSAGE('Unknown tag')
        }
        return
      }
      case K_HALF:
        if (t.actor === THEM) t.theirKids = this.readKids(r, t.prefix, t.depth, t.tc, true, t.tlo, t.thi, true)
        return
      case K_ALL:
        if (t.actor === THEM) this.readChunk(t, r, budget, false)
        return
      case K_LIST:
        if ((t.actor & THEM) !== 0 && !t.theirDone) this.readChunk(t, r, budget, (t.actor & ME) === 0)
        return
      case K_EXTRAS:
        if (t.actor === THEM) this.readChunk(t, r, budget, false)
        return
      case K_HASHES:
        t.theirHashes = this.readHashes(r, t.tc)
        return
      case K_HEXTRAS:
        this.readChunk(t, r, { ids: HASH_MAX }, false)
        if (!t.theirDone) throw INVALID_MESSAGE('Unhashed ids come in one piece')
    }
  }

  private readHashes (r: Reader, n: number): Uint32Array {
    const out = new Uint32Array(n * 2)
    const h = this.h
    for (let i = 0; i < n; i++) {
      r.fp(h)
      out[i * 2] = h[0]!
      out[i * 2 + 1] = h[1]!
    }
    return out
  }

  /** Their chunk of ids under the prefix: learns the ones we lack; `keep`: also keeps all of them (their list). */
  private readChunk (t: Task, r: Reader, budget: { ids: number }, keep: boolean): void {
    const head = r.uint()
    const k = Math.floor(head / 2)
    if (k > budget.ids) throw INVALID_MESSAGE('Too many ids in one message')
    budget.ids -= k
    const ids = r.fixed(k * ID_BYTES)
    const tree = this.tree!
    let prev = t.theirCursor
    let prevAt = 0
    for (let i = 0; i < k; i++) {
      const at = i * ID_BYTES
      if (!hasPrefix(ids, at, t.prefix, t.depth)) throw INVALID_MESSAGE('Id outside its prefix')
      if (prev !== null && compareAt(prev, prevAt, ids, at) >= 0) throw INVALID_MESSAGE('Ids not sorted')
      prev = ids
      prevAt = at
      if (keep) {
        if (this.stateIds >= this.maxLearned) throw INVALID_MESSAGE('Too many ids for one session')
        this.stateIds++
        if (t.theirList === null) t.theirList = new IdBuffer(Math.min(k, 1024))
        t.theirList.push(ids, at)
      }
      if (!tree.has(ids, at)) this.learn(ids, at)
    }
    if (k > 0) t.theirCursor = ids.slice((k - 1) * ID_BYTES, k * ID_BYTES)
    t.theirDone = (head & 1) === 0
  }

  private learn (src: Uint8Array, at: number): void {
    if (this.sinceLearned !== null && this.sinceLearned.size > 0 && this.sinceLearned.has(b4a.toString(src.subarray(at, at + ID_BYTES) as Buffer, 'hex'))) return
    if (this.stateIds >= this.maxLearned) throw INVALID_MESSAGE('Too many ids for one session')
    this.stateIds++
    this.learned.push(src, at)
  }

  // ---------------------------------------------------------------------
  // After both parts of a round

  private resolveTask (t: Task, out: Task[]): void {
    switch (t.kind) {
      case K_SINCE:
        if (t.mc === t.tc && t.mlo === t.tlo && t.mhi === t.thi) {
          this._mode = 'since'
          return
        }
        for (const x of this.planStart(true, null)) out.push(x)
        return
      case K_ENTRY:
        t.fpKnown = true
        this.classify(t, out)
        return
      case K_XOR: {
        t.fpKnown = true
        const x = new Uint8Array(ID_BYTES)
        for (let i = 0; i < ID_BYTES; i++) x[i] = t.myXor![i]! ^ t.theirXor![i]!
        const iAmAhead = t.mc > t.tc
        const h = this.h
        this.hasher!.one(x, 0, h, 0)
        const [alo, ahi, blo, bhi] = iAmAhead ? [t.mlo, t.mhi, t.tlo, t.thi] : [t.tlo, t.thi, t.mlo, t.mhi]
        const dlo = (alo - blo) >>> 0
        const dhi = (ahi - bhi - (alo < blo ? 1 : 0)) >>> 0
        if (h[0] === dlo && h[1] === dhi && hasPrefix(x, 0, t.prefix, t.depth)) {
          if (!iAmAhead && !this.tree!.has(x, 0)) this.learn(x, 0)
          return
        }
        // More than one difference: descend.
        if (t.depth === 0) {
          for (const y of this.planStart(false, t)) out.push(y)
          return
        }
        t.kind = K_CHILDREN
        t.actor = BOTH
        out.push(t)
        return
      }
      case K_CHILDREN:
        this.compareSpans(t, t.myKids!, t.theirKids!, out)
        return
      case K_DEEP:
        this.compareKids(t, t.myKids!, t.theirKids!, out, t.myGrand, t.theirGrand)
        return
      case K_SINGLE: {
        const tag = t.actor === ME ? t.myTag : t.theirTag
        if (tag === TAG_IDS) return
        if (tag === TAG_CHILDREN) {
          // The side ahead sent its children; the other sends its own next round.
          t.kind = K_HALF
          t.actor = t.actor === ME ? THEM : ME
          out.push(t)
          return
        }
        // A list from the side ahead, in one piece: the other answers with its extras.
        t.kind = K_EXTRAS
        t.actor = t.actor === ME ? THEM : ME
        if (t.actor === ME && t.theirList === null) t.theirList = new IdBuffer(1)
        t.myCursor = null
        t.theirCursor = null
        t.myDone = false
        t.theirDone = false
        out.push(t)
        return
      }
      case K_HALF:
        this.compareSpans(t, t.myKids!, t.theirKids!, out)
        return
      case K_ALL:
        if (t.actor === ME ? !t.myDone : !t.theirDone) out.push(t)
        return
      case K_LIST: {
        const meSends = (t.actor & ME) !== 0
        const theySend = (t.actor & THEM) !== 0
        const pending = (meSends && !t.myDone) || (theySend && !t.theirDone)
        if (pending) {
          out.push(t)
          return
        }
        if (meSends && theySend) return
        // One side listed all its ids: the other sends what it has beyond them.
        t.kind = K_EXTRAS
        t.actor = meSends ? THEM : ME
        if (t.actor === ME && t.theirList === null) t.theirList = new IdBuffer(1)
        t.myCursor = null
        t.theirCursor = null
        t.myDone = false
        t.theirDone = false
        out.push(t)
        return
      }
      case K_EXTRAS:
        if (t.actor === ME ? !t.myDone : !t.theirDone) out.push(t)
        return
      case K_HASHES:
        t.kind = K_HEXTRAS
        t.actor = BOTH
        out.push(t)
    }
  }
}

export function createSession (set: ReconcileSet<any> | readonly Uint8Array[], opts?: SessionOptions): Session {
  return new Session(set, opts)
}

export interface SyncOptions extends SessionOptions {
  /** Use and update since bookkeeping between the two sets (keyed by their `id`s). */
  remember?: boolean
  /** Insert what each side lacks into it afterwards (ReconcileSets that are not views). */
  apply?: boolean
}

export interface SyncResult {
  /** Ids b has and a lacks. */
  missingInA: Uint8Array[]
  /** Ids a has and b lacks. */
  missingInB: Uint8Array[]
  /** Round trips: messages each side sent. */
  rounds: number
  /** Bytes both sides sent. */
  bytes: number
  mode: ReconcileMode
}

function toSet (x: ReconcileSet<any> | readonly Uint8Array[]): ReconcileSet<any> {
  if (x instanceof ReconcileSet) return x
  if (!Array.isArray(x)) throw BAD_ARGUMENT('sync() takes ReconcileSets or arrays of ids')
  for (const id of x) checkId(id)
  return new ReconcileSet(x)
}

/**
 * Runs the protocol between two local sets: two sessions, the same code as
 * over the network, exchanging their messages as bytes.
 */
export function sync (a: ReconcileSet<any> | readonly Uint8Array[], b: ReconcileSet<any> | readonly Uint8Array[], opts: SyncOptions = {}): SyncResult {
  const A = toSet(a)
  const B = toSet(b)
  const { remember, apply, ...rest } = opts
  const sa = new Session(A, { ...rest, peer: remember === true ? B.id : rest.peer })
  const sb = new Session(B, { ...rest, peer: remember === true ? A.id : rest.peer })
  let ma: Uint8Array = sa.start()
  let mb: Uint8Array = sb.start()
  let rounds = 1
  let bytes = ma.byteLength + mb.byteLength
  for (;;) {
    const na = sa.receive(mb)
    const nb = sb.receive(ma)
    if (na === null && nb === null) break
    if (na === null || nb === null) throw INVALID_OPERATION('The two sides disagree on when they are done')
    rounds++
    bytes += na.byteLength + nb.byteLength
    ma = na
    mb = nb
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
  return { missingInA, missingInB, rounds, bytes, mode: sa.mode }
}
