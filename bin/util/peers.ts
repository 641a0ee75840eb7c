/**
 * Reaching peers for clone and repair: a TCP address (`--connect`) or
 * Hyperswarm (`--swarm`). Dialling TCP happens before any core is opened, so
 * an unreachable peer leaves nothing behind.
 */
import type * as net from 'net'
import type Hyperswarm from 'hyperswarm'
import type { Hypercore } from '../../lib/hypercore'
import { CliError } from './errors'
import {
  parseAddress, parseBootstrap, formatAddress, connectTcp, noiseHandshake, closedPromise,
  createSwarm, destroySwarm, waitForPeer, type Address
} from './net'

export interface PeerOptions {
  connect?: string
  swarm?: boolean
  bootstrap?: string
}

export type PeerTarget = { kind: 'tcp', addr: Address } | { kind: 'swarm', bootstrap: Address[] | null }

export function peerTarget (opts: PeerOptions, required = true): PeerTarget | null {
  if (opts.connect !== undefined && opts.swarm === true) throw new CliError('USAGE', 'give either --connect HOST:PORT or --swarm, not both')
  if (opts.connect !== undefined) return { kind: 'tcp', addr: parseAddress(opts.connect) }
  if (opts.swarm === true) return { kind: 'swarm', bootstrap: parseBootstrap(opts.bootstrap) }
  if (opts.bootstrap !== undefined) throw new CliError('USAGE', '--bootstrap only goes with --swarm')
  if (required) throw new CliError('USAGE', 'say where the peer is: --connect HOST:PORT or --swarm')
  return null
}

export function describeTarget (t: PeerTarget): string {
  return t.kind === 'tcp' ? formatAddress(t.addr) : 'Hyperswarm'
}

/** A connection (or swarm) a core replicates over. */
export interface PeerLink {
  readonly target: PeerTarget
  /** Settles when a TCP peer hangs up; never for a swarm. */
  readonly closed: Promise<void>
  attach (core: Hypercore): void
  close (): Promise<void>
}

/**
 * Connects to the peer and completes the Noise handshake (TCP), or prepares
 * a swarm; the core comes later. Each step gets `timeoutMs`.
 */
export async function dial (target: PeerTarget, timeoutMs: number): Promise<PeerLink> {
  if (target.kind === 'tcp') {
    const socket: net.Socket = await connectTcp(target.addr, timeoutMs)
    const noise = await noiseHandshake(socket, target.addr, timeoutMs)
    const closed = closedPromise(socket)
    return {
      target,
      closed,
      attach (core) { core.replicate(noise) },
      async close () {
        socket.destroy()
        await closed
      }
    }
  }
  let swarm: Hyperswarm | null = null
  return {
    target,
    closed: new Promise<void>(() => {}),
    attach (core) {
      swarm = createSwarm(target.bootstrap)
      swarm.on('connection', (conn) => {
        conn.on('error', () => {})
        core.replicate(conn)
      })
      const done = core.findingPeers()
      swarm.join(core.discoveryKey!, { server: false, client: true })
      swarm.flush().then(done, done)
    },
    async close () {
      await destroySwarm(swarm)
    }
  }
}

/** Waits until the peer replicates this core, with a message that says why not. */
export function awaitPeer (core: Hypercore, link: PeerLink, timeoutMs: number): Promise<void> {
  const where = describeTarget(link.target)
  const secs = Math.round(timeoutMs / 1000)
  const message = link.target.kind === 'tcp'
    ? `${where} is a nomadcore/Hypercore peer but does not serve this core (no replication within ${secs} s)`
    : `no peer found for this core on Hyperswarm within ${secs} s`
  const hungUp = link.closed.then(() => { throw new CliError('PEER_LACKS_CORE', `${where} hung up: it does not serve this core`) })
  hungUp.catch(() => {})
  return waitForPeer(core, timeoutMs, message, link.target.kind === 'tcp' ? hungUp : undefined, link.target.kind === 'tcp' ? 'PEER_LACKS_CORE' : 'TIMEOUT')
}
