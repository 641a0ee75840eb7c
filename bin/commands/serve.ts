import type { Command } from 'commander'
import * as net from 'net'
import type Hyperswarm from 'hyperswarm'
import type { Hypercore } from '../../lib/hypercore'
import * as fs from 'fs'
import { CliError, reason } from '../util/errors'
import { openExisting, closeQuietly, parseCount, hex, z32 } from '../util/core'
import { openAlone, serveControl } from '../util/access'
import type { ControlServer } from '../util/control'
import { treeHealth, servableBlocks } from '../util/health'
import { formatAddress, replicateSocket, createSwarm, destroySwarm, parseBootstrap, type Address } from '../util/net'
import { formatBytes } from '../util/output'
import { action, atExit, onInterrupt, withJson } from '../util/run'
import { takeEarlySignal } from '../util/signals'

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
    server.once('error', (err) => reject(new CliError('FAILED', `cannot listen on ${formatAddress({ host, port })}: ${reason(err)}`)))
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

/**
 * Resolves on the first SIGINT or SIGTERM, which asks for a clean stop. A
 * second one while stopping gives up on it: exit 130 at once.
 */
function untilSignal (): { stopped: Promise<string>, dispose: () => void } {
  let resolve: (sig: string) => void = () => {}
  const stopped = new Promise<string>(res => { resolve = res })
  return { stopped, dispose: onInterrupt(sig => resolve(sig), takeEarlySignal()) }
}

/** The lines (stderr) and fields (JSON) that say a core in repair mode serves little. */
async function repairModeReport (core: Hypercore, dir: string): Promise<{ fields: Record<string, unknown>, lines: string[] }> {
  const h = await treeHealth(core, dir)
  const servable = await servableBlocks(core, dir)
  const roots = `${h.missingRoots.length} of ${h.roots.length} tree roots missing (${h.missingRoots.join(', ')})`
  return {
    fields: { repairMode: true, missingRoots: h.missingRoots, blocks: h.blocks, servableBlocks: servable },
    lines: [
      `warning: ${dir} is in repair mode: ${roots}, so it cannot prove its length (${core.length} blocks) to any peer.`,
      `  A new clone gets nothing from it; a peer that already holds a signed copy can fetch at most ${servable} of the ${h.blocks} blocks held here.`,
      `  It heals itself from any healthy peer of this core that connects, or run \`nomadcore repair ${dir} --connect HOST:PORT\` (or --proof FILE).`
    ]
  }
}

export function register (program: Command): void {
  withJson(program.command('serve')
    .argument('<dir>', 'directory of a core')
    .option('--port <port>', 'TCP port (default 0: any free port, printed)', '0')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--swarm', 'announce the core on Hyperswarm instead of listening on TCP')
    .option('--bootstrap <host:port,...>', 'DHT bootstrap nodes for --swarm (default: the public ones)')
    .description('replicate the core to peers until Ctrl-C (TCP + Noise, or Hyperswarm); info, cat, proof and append keep working on it')
    .addHelpText('after', `
Prints "serving KEY on HOST:PORT" once listening (with --json: one JSON object
per line: announcing, listening or announced, connection, disconnect, stopped).
Peers fetch with
  nomadcore clone KEY DIR --connect HOST:PORT

While it runs, \`nomadcore info|cat|proof|append DIR\` go through it (over a
control socket, DIR/serve.sock); an append is announced to its peers at once.
audit and repair need the core to themselves: stop serve first.

A core in repair mode is served with a warning: it cannot prove its length,
so a new clone gets nothing from it until it is repaired.

Ctrl-C (or SIGTERM) stops it cleanly, exit status 0; a second one exits at
once with 130.`))
    .action(action(async (dir: string, opts: Options) => {
      const port = parseCount(opts.port ?? '0', '--port')
      if (port > 65535) throw new CliError('USAGE', `--port must be at most 65535, not ${port}`)
      const host = opts.host ?? '127.0.0.1'
      if (opts.swarm !== true && opts.bootstrap !== undefined) throw new CliError('USAGE', '--bootstrap only goes with --swarm')
      const bootstrap = parseBootstrap(opts.bootstrap)
      const emit = (ev: Record<string, unknown>, human: string | string[], toStdout = false): void => {
        if (opts.json === true) process.stdout.write(JSON.stringify(ev) + '\n')
        else (toStdout ? process.stdout : process.stderr).write((Array.isArray(human) ? human.join('\n') : human) + '\n')
      }
      // From here on a Ctrl-C is a clean stop, whatever step is under way.
      const signal = untilSignal()
      let core: Hypercore | null = null
      let control: ControlServer | null = null
      let server: TcpServer | null = null
      let swarm: Hyperswarm | null = null
      let uploaded = 0
      let uploadedBytes = 0
      let announcing = false
      /** Runs a step that may take long, unless a stop comes first; true when it did. */
      const interrupted = async (step: Promise<unknown>): Promise<boolean> => {
        const which = await Promise.race([step.then(() => 'done'), signal.stopped.then(() => 'stop')])
        return which === 'stop'
      }
      try {
        // Writable (when this is the writer), so appends can come through the control socket.
        const opening = openAlone(dir, 'a second serve', () => openExisting(dir))
        opening.catch(() => {})
        if (await interrupted(opening)) {
          core = await opening.catch(() => null)
        } else {
          core = await opening
          core.on('upload', (_index: number, bytes: number) => { uploaded++; uploadedBytes += bytes })
          control = await serveControl(core, dir)
          const stale = control.path
          atExit(() => { try { fs.unlinkSync(stale) } catch {} })
          const repair = core.repairMode ? await repairModeReport(core, dir) : null
          const key = hex(core.key)
          const base = { key, id: z32(core.key), discoveryKey: hex(core.discoveryKey), length: core.length, repairMode: core.repairMode, control: control.path, ...(repair?.fields ?? {}) }
          const what = repair === null ? `${core.length} blocks` : `REPAIR MODE (length ${core.length} unprovable, at most ${String(repair.fields.servableBlocks)} blocks servable)`
          if (repair !== null && opts.json !== true) process.stderr.write(repair.lines.join('\n') + '\n')
          if (opts.swarm === true) {
            swarm = createSwarm(bootstrap)
            const sw = swarm
            sw.on('connection', (conn) => {
              conn.on('error', () => {})
              emit({ event: 'connection', remote: hex(conn.remotePublicKey) }, `peer ${hex(conn.remotePublicKey).slice(0, 16)}… connected`)
              conn.once('close', () => emit({ event: 'disconnect', remote: hex(conn.remotePublicKey) }, `peer ${hex(conn.remotePublicKey).slice(0, 16)}… left`))
              core!.replicate(conn)
            })
            emit({ event: 'announcing', ...base }, `announcing ${key} on Hyperswarm…`)
            const flushed = sw.join(core.discoveryKey!, { server: true, client: false }).flushed()
            flushed.catch(() => {})
            announcing = true
            if (!(await interrupted(flushed))) {
              announcing = false
              emit({ event: 'announced', ...base }, `serving ${key} on Hyperswarm (discovery key ${hex(core.discoveryKey)}), ${what} — Ctrl-C to stop`, true)
            }
          } else {
            server = await listenTcp(core, host, port, (ev) => {
              emit(ev, ev.event === 'connection' ? `peer ${String(ev.remote)} connected` : `peer ${String(ev.remote)} left`)
            })
            emit({ event: 'listening', ...base, host: server.address.host, port: server.address.port },
              `serving ${key} on ${formatAddress(server.address)}, ${what} — Ctrl-C to stop`, true)
          }
          await signal.stopped
        }
      } finally {
        await control?.close()
        await server?.close()
        // Stopped while still announcing: hyperswarm would wait for its DHT bootstrap to give up; the core matters, not that.
        const gone = destroySwarm(swarm, announcing)
        await (announcing ? Promise.race([gone, new Promise(resolve => setTimeout(resolve, 1000).unref())]) : gone)
        await closeQuietly(core)
        signal.dispose()
      }
      emit({ event: 'stopped', uploaded, uploadedBytes }, `stopped: served ${uploaded} blocks (${formatBytes(uploadedBytes)})`)
    }))
}
