/**
 * One way for a command to use a core, wherever it is open: here (this
 * process opens the files and holds the lock) or in a running
 * `nomadcore serve` (asked over its control socket, see control.ts). The
 * operations are the same functions either way: the serving process runs
 * them on its core for the client.
 */
import b4a from 'b4a'
import type { Hypercore } from '../../lib/hypercore'
import { inTree } from '../../lib/flat-tree'
import { CliError, describeError, errorCode } from './errors'
import { assertCore, openExisting, closeQuietly, hex } from './core'
import { collectInfo, type CoreInfo } from './info'
import { connectControl, listenControl, MAX_PAYLOAD_BYTES, type ControlClient, type ControlServer, type Frame } from './control'

/** How long a command waits for a core another short-lived command holds (an append, a second `cat`). */
const LOCK_WAIT_MS = 5000
/** One read answers at most this many blocks, or about this many bytes. */
const READ_BATCH_BLOCKS = 1024
const READ_BATCH_BYTES = 4 * 1024 * 1024

export interface CoreStatus {
  /** Hex. */
  key: string
  discoveryKey: string
  length: number
  byteLength: number
  writable: boolean
  repairMode: boolean
}

export interface ReadBatch {
  /** Blocks from the start asked for, in order; null for one not stored. Fewer than asked when the batch is full. */
  blocks: Array<Uint8Array | null>
  /** Why the block after the last one returned could not be read. */
  error: CliError | null
}

export interface CoreAccess {
  readonly dir: string
  /** The pid of the `nomadcore serve` this goes through, or null when the core is open here. */
  readonly servedBy: number | null
  status (): Promise<CoreStatus>
  info (): Promise<CoreInfo>
  read (start: number, end: number): Promise<ReadBatch>
  proof (node: number): Promise<Uint8Array>
  append (blocks: Uint8Array[]): Promise<{ length: number, byteLength: number }>
  close (): Promise<void>
}

// ---------------------------------------------------------------------------
// The operations, on an open core

function status (core: Hypercore): CoreStatus {
  return {
    key: hex(core.key),
    discoveryKey: hex(core.discoveryKey),
    length: core.length,
    byteLength: core.byteLength,
    writable: core.writable,
    repairMode: core.repairMode
  }
}

async function readBatch (core: Hypercore, dir: string, start: number, end: number): Promise<ReadBatch> {
  const blocks: Array<Uint8Array | null> = []
  let bytes = 0
  for (let i = start; i < end && blocks.length < READ_BATCH_BLOCKS && bytes < READ_BATCH_BYTES; i++) {
    try {
      const block = await core.get(i, { wait: false }) as Uint8Array | null
      blocks.push(block)
      bytes += block?.byteLength ?? 0
    } catch (err) {
      return { blocks, error: new CliError(errorCode(err), `block ${i} of ${dir} cannot be read: ${describeError(err, dir)}`) }
    }
  }
  return { blocks, error: null }
}

async function proveNode (core: Hypercore, dir: string, node: number): Promise<Uint8Array> {
  if (!inTree(node, core.length)) throw new CliError('USAGE', `tree node ${node} is not in the tree of ${dir} (length ${core.length})`)
  try {
    return await core.generateRemoteProofForTreeNode(node)
  } catch (err) {
    throw new CliError(errorCode(err), `cannot prove tree node ${node} from ${dir}: ${describeError(err, dir)}`)
  }
}

async function appendBlocks (core: Hypercore, dir: string, blocks: Uint8Array[]): Promise<{ length: number, byteLength: number }> {
  if ((core.keyPair?.secretKey ?? null) === null) throw new CliError('NOT_WRITABLE', `${dir} is a read-only copy (no secret key): only its writer can append`)
  if (core.repairMode) throw new CliError('REPAIR_MODE', `${dir} is in repair mode (tree roots missing): run \`nomadcore repair\` first`)
  if (!core.writable) throw new CliError('NOT_WRITABLE', `${dir} is open read-only here`)
  if (blocks.length === 0) return { length: core.length, byteLength: core.byteLength }
  try {
    return await core.append(blocks)
  } catch (err) {
    throw new CliError(errorCode(err), describeError(err, dir))
  }
}

// ---------------------------------------------------------------------------
// Here

function localAccess (core: Hypercore, dir: string): CoreAccess {
  return {
    dir,
    servedBy: null,
    status: async () => status(core),
    info: () => collectInfo(core, dir, null),
    read: (start, end) => readBatch(core, dir, start, end),
    proof: (node) => proveNode(core, dir, node),
    append: (blocks) => appendBlocks(core, dir, blocks),
    close: () => closeQuietly(core)
  }
}

// ---------------------------------------------------------------------------
// Through a running serve

function remoteAccess (client: ControlClient, dir: string): CoreAccess {
  const servedBy = Number(client.hello.pid)
  return {
    dir,
    servedBy,
    status: async () => (await client.request({ op: 'status' })).header as unknown as CoreStatus,
    info: async () => (await client.request({ op: 'info' })).header.info as CoreInfo,
    async read (start, end) {
      const res = await client.request({ op: 'read', start, end })
      const missing = new Set(res.header.missing as number[])
      const count = Number(res.header.count)
      const blocks: Array<Uint8Array | null> = []
      let k = 0
      for (let j = 0; j < count; j++) blocks.push(missing.has(j) ? null : res.parts[k++] ?? null)
      const e = res.header.failed as { code: string, message: string } | undefined
      return { blocks, error: e === undefined ? null : new CliError(e.code, e.message) }
    },
    proof: async (node) => (await client.request({ op: 'proof', node })).parts[0] ?? b4a.alloc(0),
    async append (blocks) {
      let bytes = 0
      for (const b of blocks) bytes += b.byteLength
      if (bytes > MAX_PAYLOAD_BYTES) {
        throw new CliError('USAGE', `a block of ${bytes} bytes is more than a running serve takes at once (${MAX_PAYLOAD_BYTES} bytes): stop \`nomadcore serve\` (pid ${servedBy}) and append again`)
      }
      const res = await client.request({ op: 'append' }, blocks)
      return { length: Number(res.header.length), byteLength: Number(res.header.byteLength) }
    },
    close: async () => client.close()
  }
}

/** Answers the control socket of `dir` for the serving process, on its open `core`. */
export function serveControl (core: Hypercore, dir: string): Promise<ControlServer> {
  return listenControl(dir, async (req: Frame): Promise<Frame> => {
    const h = req.header
    switch (h.op) {
      case 'hello':
        return { header: { pid: process.pid, key: hex(core.key) }, parts: [] }
      case 'status':
        return { header: { ...status(core) }, parts: [] }
      case 'info':
        return { header: { info: await collectInfo(core, dir, process.pid) }, parts: [] }
      case 'read': {
        const start = wholeNumber(h.start)
        const end = Math.min(wholeNumber(h.end), core.length)
        const r = await readBatch(core, dir, start, end)
        const missing: number[] = []
        const parts: Uint8Array[] = []
        r.blocks.forEach((b, j) => { if (b === null) missing.push(j); else parts.push(b) })
        const failed = r.error === null ? undefined : { code: r.error.code, message: r.error.message }
        return { header: { count: r.blocks.length, missing, failed }, parts }
      }
      case 'proof':
        return { header: {}, parts: [await proveNode(core, dir, wholeNumber(h.node))] }
      case 'append': {
        const res = await appendBlocks(core, dir, req.parts)
        return { header: { length: res.length, byteLength: res.byteLength }, parts: [] }
      }
    }
    throw new CliError('USAGE', `unknown control request ${JSON.stringify(h.op)}`)
  })
}

function wholeNumber (v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new CliError('USAGE', 'a control request needs whole numbers')
  return v
}

// ---------------------------------------------------------------------------
// Opening

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/**
 * The core in `dir`, through its running serve if there is one, else opened
 * here (read-only unless `write`). A core another short command holds is
 * waited for briefly.
 */
export async function openAccess (dir: string, opts: { write?: boolean } = {}): Promise<CoreAccess> {
  assertCore(dir)
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    const client = await connectControl(dir)
    if (client !== null) return remoteAccess(client, dir)
    try {
      return localAccess(await openExisting(dir, { readOnly: opts.write !== true }), dir)
    } catch (err) {
      if (!(err instanceof CliError && err.code === 'CORE_IN_USE') || Date.now() > deadline) throw err
    }
    await sleep(100)
  }
}

/**
 * Runs `open` (which needs the core to itself). A core another short command
 * holds (an `info`, an `append`) is waited for briefly; when a running serve
 * holds it, that is said, with its pid.
 */
export async function openAlone<T> (dir: string, purpose: string, open: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      return await open()
    } catch (err) {
      if (!(err instanceof CliError && err.code === 'CORE_IN_USE')) throw err
      const client = await connectControl(dir).catch(() => null)
      if (client !== null) {
        const pid = Number(client.hello.pid)
        client.close()
        throw new CliError('CORE_IN_USE', `${dir} is being served by \`nomadcore serve\` (pid ${pid}): stop it first, ${purpose} needs the core to itself`)
      }
      if (Date.now() > deadline) throw err
    }
    await sleep(100)
  }
}
