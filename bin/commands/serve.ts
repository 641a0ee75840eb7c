import type { Command } from 'commander'
import * as net from 'net'
import type Hyperswarm from 'hyperswarm'
import type { Hypercore } from '../../lib/hypercore'
import { CliError, reason } from '../util/errors'
import { openExisting, closeQuietly, parseCount, hex } from '../util/core'
import { formatAddress, replicateSocket, createSwarm, destroySwarm, parseBootstrap, type Address } from '../util/net'
import { formatBytes } from '../util/output'
import { action, withJson } from '../util/run'

interface Options { json?: boolean, port?: string, host?: string, swarm?: boolean, bootstrap?: string }

export interface TcpServer {
  address: Address
  close (): Promise<void>
}

/** Serves `core` to every TCP client, each socket inside a Noise secret stream. */
export function listenTcp (core: Hypercore, host: string, port: number, onevent: (ev: Record<string, unknown>) => void = () => {}): Promise<TcpServer> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    onevent({ event: 'connection', remote })
    socket.once('close', () => {
      sockets.delete(socket)
      onevent({ event: 'disconnect', remote })
    })
    replicateSocket(core, socket, false)
  })
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new CliError(`cannot listen on ${formatAddress({ host, port })}: ${reason(err)}`)))
    server.listen(port, host, () => {
      server.removeAllListeners('error')
      server.on('error', () => {})
      const a = server.address() as net.AddressInfo
      resolve({
        address: { host: a.address, port: a.port },
        close: () => new Promise<void>(done => {
          for (const s of sockets) s.destroy()
          server.close(() => done())
        })
      })
    })
  })
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal (): Promise<string> {
  return new Promise(resolve => {
    const on = (sig: string): void => {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
      resolve(sig)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
}

export function register (program: Command): void {
  withJson(program.command('serve')
    .argument('<dir>', 'directory of a core')
    .option('--port <port>', 'TCP port (default 0: any free port, printed)', '0')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--swarm', 'announce the core on Hyperswarm instead of listening on TCP')
    .option('--bootstrap <host:port,...>', 'DHT bootstrap nodes for --swarm (default: the public ones)')
    .description('replicate the core to peers until Ctrl-C (TCP + Noise, or Hyperswarm)')
    .addHelpText('after', `
Prints "serving KEY on HOST:PORT" once listening (with --json: one JSON object
per line: listening, connection, disconnect). Peers fetch with
  nomadcore clone KEY DIR --connect HOST:PORT`))
    .action(action(async (dir: string, opts: Options) => {
      const port = parseCount(opts.port ?? '0', '--port')
      if (port > 65535) throw new CliError(`--port must be at most 65535, not ${port}`)
      const host = opts.host ?? '127.0.0.1'
      if (opts.swarm !== true && opts.bootstrap !== undefined) throw new CliError('--bootstrap only goes with --swarm')
      const bootstrap = parseBootstrap(opts.bootstrap)
      const emit = (ev: Record<string, unknown>, human: string): void => {
        if (opts.json === true) process.stdout.write(JSON.stringify(ev) + '\n')
        else if (ev.event === 'listening' || ev.event === 'announced') process.stdout.write(human + '\n')
        else process.stderr.write(human + '\n')
      }

      const core = await openExisting(dir, { readOnly: true })
      let server: TcpServer | null = null
      let swarm: Hyperswarm | null = null
      let uploaded = 0
      let uploadedBytes = 0
      core.on('upload', (_index, bytes) => { uploaded++; uploadedBytes += bytes })
      const stopped = untilSignal()
      try {
        const key = hex(core.key)
        if (opts.swarm === true) {
          swarm = createSwarm(bootstrap)
          swarm.on('connection', (conn) => {
            conn.on('error', () => {})
            emit({ event: 'connection', remote: hex(conn.remotePublicKey) }, `peer ${hex(conn.remotePublicKey).slice(0, 16)}… connected`)
            conn.once('close', () => emit({ event: 'disconnect', remote: hex(conn.remotePublicKey) }, `peer ${hex(conn.remotePublicKey).slice(0, 16)}… left`))
            core.replicate(conn)
          })
          await swarm.join(core.discoveryKey!, { server: true, client: false }).flushed()
          emit({ event: 'announced', key, discoveryKey: hex(core.discoveryKey), length: core.length },
            `serving ${key} on Hyperswarm (discovery key ${hex(core.discoveryKey)}), ${core.length} blocks — Ctrl-C to stop`)
        } else {
          server = await listenTcp(core, host, port, (ev) => {
            emit(ev, ev.event === 'connection' ? `peer ${String(ev.remote)} connected` : `peer ${String(ev.remote)} left`)
          })
          emit({ event: 'listening', key, discoveryKey: hex(core.discoveryKey), host: server.address.host, port: server.address.port, length: core.length },
            `serving ${key} on ${formatAddress(server.address)}, ${core.length} blocks — Ctrl-C to stop`)
        }
        await stopped
      } finally {
        await server?.close()
        await destroySwarm(swarm)
        await closeQuietly(core)
      }
      emit({ event: 'stopped', uploaded, uploadedBytes }, `stopped: served ${uploaded} blocks (${formatBytes(uploadedBytes)})`)
    }))
}
