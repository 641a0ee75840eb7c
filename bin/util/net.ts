/**
 * Getting a core onto a connection: plain TCP wrapped in a Noise secret
 * stream, or Hyperswarm. Every socket error is handled, so a peer that hangs
 * up never crashes the process.
 */
import * as net from 'net'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type Hyperswarm from 'hyperswarm'
import type HyperDHT from 'hyperdht'
import type { Hypercore } from '../../lib/hypercore'
import { CliError, reason, withTimeout } from './errors'
import { shorten } from './core'

export interface Address {
  host: string
  port: number
}

/** "HOST:PORT" or "[IPv6]:PORT". */
export function parseAddress (s: string): Address {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s.trim()) ?? /^([^:\s]+):(\d+)$/.exec(s.trim())
  const port = m === null ? NaN : Number(m[2])
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CliError('USAGE', `malformed address "${shorten(s)}": expected HOST:PORT with a port from 1 to 65535`)
  }
  return { host: m[1]!, port }
}

export function formatAddress (a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

/** Opens a TCP connection, failing with one clear line. */
export function connectTcp (addr: Address, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: addr.host, port: addr.port })
    let timer: ReturnType<typeof setTimeout> | null = null
    const fail = (why: string): void => {
      if (timer !== null) clearTimeout(timer)
      socket.destroy()
      reject(new CliError('CONNECT_FAILED', `cannot connect to ${formatAddress(addr)}: ${why}`))
    }
    if (timeoutMs > 0) timer = setTimeout(() => fail('no answer'), timeoutMs)
    socket.once('error', (err) => fail(reason(err)))
    socket.once('connect', () => {
      if (timer !== null) clearTimeout(timer)
      socket.removeAllListeners('error')
      socket.on('error', () => {})
      resolve(socket)
    })
  })
}

/** A Noise secret stream over a TCP socket. */
export function secretStream (socket: net.Socket, isInitiator: boolean): NoiseSecretStream {
  socket.on('error', () => {})
  socket.setNoDelay(true)
  const Noise = require('@hyperswarm/secret-stream') as typeof NoiseSecretStream
  const noise = new Noise(isInitiator, socket)
  noise.on('error', () => {})
  return noise
}

/** Replicates `core` over a TCP socket, inside a Noise secret stream. */
export function replicateSocket (core: Hypercore, socket: net.Socket, isInitiator: boolean): NoiseSecretStream {
  const noise = secretStream(socket, isInitiator)
  core.replicate(noise)
  return noise
}

/**
 * Runs the Noise handshake as initiator on a connected socket. Whatever
 * answers without completing it — a web server, a silent port, garbage —
 * is no nomadcore or Hypercore peer, and is named so.
 */
export async function noiseHandshake (socket: net.Socket, addr: Address, timeoutMs: number): Promise<NoiseSecretStream> {
  const noise = secretStream(socket, true)
  const secs = Math.round(timeoutMs / 1000)
  let opened: boolean
  try {
    opened = await withTimeout(noise.opened, timeoutMs, `${formatAddress(addr)} is not a nomadcore/Hypercore peer: no Noise handshake within ${secs} s`)
  } catch (err) {
    noise.destroy()
    socket.destroy()
    if (err instanceof CliError) throw new CliError('NOT_A_PEER', err.message)
    throw err
  }
  if (!opened) {
    socket.destroy()
    throw new CliError('NOT_A_PEER', `${formatAddress(addr)} is not a nomadcore/Hypercore peer: the Noise handshake failed`)
  }
  return noise
}

/**
 * Resolves once a peer replicates this core with us; rejects after
 * `timeoutMs` with `message`, or when `closed` settles first.
 */
export function waitForPeer (core: Hypercore, timeoutMs: number, message: string, closed?: Promise<unknown>, code = 'PEER_LACKS_CORE'): Promise<void> {
  if (core.peers.length > 0) return Promise.resolve()
  let onadd: (() => void) | null = null
  const added = new Promise<void>(resolve => {
    onadd = () => resolve()
    core.once('peer-add', onadd)
  })
  const races: Array<Promise<void>> = [added]
  if (closed !== undefined) races.push(closed.then(() => { throw new CliError('PEER_LACKS_CORE', message) }))
  return withTimeout(Promise.race(races), timeoutMs, message).catch((err: unknown) => {
    throw err instanceof CliError && err.code === 'TIMEOUT' ? new CliError(code, err.message) : err
  }).finally(() => {
    if (onadd !== null) core.off('peer-add', onadd)
  })
}

/** Resolves when the socket (or noise stream) closes. */
export function closedPromise (stream: { once (ev: 'close', fn: () => void): unknown, destroyed?: boolean }): Promise<void> {
  return new Promise(resolve => {
    if (stream.destroyed === true) return resolve()
    stream.once('close', () => resolve())
  })
}

// ---------------------------------------------------------------------------
// Hyperswarm

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/

/**
 * A swarm. With `--bootstrap` pointing only at loopback nodes (a local DHT
 * testnet), its DHT node binds to 127.0.0.1 too, so nothing leaves the host,
 * and is told it is not firewalled: a node on loopback never learns a remote
 * address, and a "firewalled" one there accepts no connection from another
 * process (the client's handshake completes, its packets never arrive).
 */
export function createSwarm (bootstrap: Address[] | null): Hyperswarm {
  // Loaded on first use: it doubles the start-up time of every other command.
  const Swarm = require('hyperswarm') as typeof Hyperswarm
  const DHT = require('hyperdht') as typeof HyperDHT
  if (bootstrap === null || bootstrap.length === 0) return new Swarm()
  const local = bootstrap.every(b => LOOPBACK.test(b.host))
  const dht = new DHT(local ? { bootstrap, host: '127.0.0.1', firewalled: false } : { bootstrap })
  return new Swarm({ dht })
}

export function parseBootstrap (s: string | undefined): Address[] | null {
  if (s === undefined) return null
  return s.split(',').filter(x => x.trim() !== '').map(parseAddress)
}

/** `force` skips taking announcements back from the DHT (for a stop while still announcing). */
export async function destroySwarm (swarm: Hyperswarm | null, force = false): Promise<void> {
  if (swarm === null) return
  await swarm.destroy({ force }).catch(() => {})
}
