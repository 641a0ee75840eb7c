/**
 * Hypercore 11's side of the two-process clone row (bench/clone.ts): what
 * `nomadcore serve` and `nomadcore clone` do, with hypercore@11.35.1, over
 * TCP inside a Noise secret stream, so the two rows compare like for like.
 *
 *   node dist/bench/hypercore-peer.js serve DIR        prints {"port":N}, serves until SIGTERM
 *   node dist/bench/hypercore-peer.js clone KEY DIR PORT   downloads every block, prints {"length","ms"}
 */
import * as net from 'net'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { Hypercore } from '../test/helpers/oracle'

async function serve (dir: string): Promise<void> {
  const core = new Hypercore(dir)
  await core.ready()
  const server = net.createServer(socket => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    const noise = new NoiseSecretStream(false, socket)
    noise.on('error', () => {})
    core.replicate(noise as unknown as boolean)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n')
  await new Promise<void>(resolve => process.once('SIGTERM', resolve))
  server.close()
  await core.close()
}

async function clone (key: string, dir: string, port: number): Promise<void> {
  const started = Date.now()
  const core = new Hypercore(dir, Buffer.from(key, 'hex'))
  await core.ready()
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const noise = new NoiseSecretStream(true, socket)
  core.replicate(noise as unknown as boolean)
  await core.update({ wait: true })
  await core.download({ start: 0, end: core.length }).done()
  const ms = Date.now() - started
  process.stdout.write(JSON.stringify({ length: core.length, ms }) + '\n')
  noise.destroy()
  await core.close()
}

const [command, ...args] = process.argv.slice(2)
const run = command === 'serve' ? serve(args[0]!) : command === 'clone' ? clone(args[0]!, args[1]!, Number(args[2])) : Promise.reject(new Error('usage: serve DIR | clone KEY DIR PORT'))
run.catch(err => {
  console.error(err)
  process.exit(1)
})
