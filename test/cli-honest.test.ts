/**
 * The operator never sees success where there was failure: a core in repair
 * mode is served with a warning and clones from it fail; an empty or
 * behind copy is never "healthy"; reads work while serve runs; --json errors
 * are JSON; a port that speaks no Noise is named for what it is; serve stops
 * with 0 on Ctrl-C; keys in either form; repair --proof checks blocks before
 * it says "healthy". Each case spawns the built CLI.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as net from 'net'
import * as path from 'path'
import b4a from 'b4a'
import * as idEncoding from 'hypercore-id-encoding'
import { Hypercore } from '../lib/hypercore'
import { fullRoots } from '../lib/flat-tree'
import {
  run, ok, json, start, tmp, filled, zeroNode, flipByte, lineText, badInput, jsonError, deadPort, type Tst
} from './helpers/cli'

/** A 20-block core whose first root (node 15) is zeroed on disk: it opens in repair mode. */
async function inRepairMode (t: Tst, dir: string): Promise<{ key: string, lostRoot: number }> {
  const key = await filled(t, dir, 20)
  const lostRoot = fullRoots(40)[0]!
  zeroNode(dir, lostRoot)
  return { key, lostRoot }
}

interface Listening { event: string, port: number, repairMode: boolean, missingRoots?: number[], servableBlocks?: number, blocks?: number, id: string, control: string }

test('serve says a core is in repair mode; a clone from it fails instead of "already holds all 0 blocks"', async t => {
  const root = tmp(t)
  const source = path.join(root, 'source')
  const { key, lostRoot } = await inRepairMode(t, source)

  const server = await start(['serve', source, '--json'])
  t.teardown(() => server.stop())
  const listening = JSON.parse(server.first) as Listening
  t.is(listening.repairMode, true, 'the listening event says repair mode')
  t.alike(listening.missingRoots, [lostRoot], 'and which roots are missing')
  t.ok(typeof listening.servableBlocks === 'number' && listening.servableBlocks <= listening.blocks!, 'and how many blocks it could serve at most')
  const addr = `127.0.0.1:${listening.port}`

  const copy = path.join(root, 'copy')
  badInput(t, await run(['clone', key, copy, '--connect', addr, '--timeout', '5']), /announced 20 blocks but proved a length of only 0/, 'clone from a core in repair mode')
  t.absent(fs.existsSync(copy), 'and it leaves nothing behind')
  jsonError(t, await run(['clone', key, copy, '--connect', addr, '--timeout', '5', '--json']), 'INCOMPLETE', /repair mode/, 'the same with --json')
  t.is(await server.stop('SIGINT'), 0, 'serve stops with 0')

  // The human form says it too, before anyone connects.
  const human = await start(['serve', source])
  t.ok(/REPAIR MODE/.test(human.first), `the serving line says so (${human.first})`)
  t.is(await human.stop('SIGINT'), 0)
  t.ok(/repair mode/.test(human.stderr()) && /cannot prove its length \(20 blocks\)/.test(human.stderr()), 'stderr explains what it can serve')
  t.ok(/a new clone gets nothing/i.test(human.stderr()), 'and that a new clone gets nothing')
})

test('info never calls an empty or behind copy healthy', async t => {
  const root = tmp(t)
  const source = path.join(root, 'source')
  const { key } = await inRepairMode(t, source)

  // A copy that has verified nothing: opened with the key, never replicated.
  const copy = path.join(root, 'copy')
  const empty = new Hypercore(copy, b4a.from(key, 'hex'))
  await empty.ready()
  await empty.close()
  const before = await json<{ length: number, state: string, healthy: boolean }>(t, ['info', copy])
  t.alike([before.length, before.state, before.healthy], [0, 'empty', false], 'an empty copy is "empty", not healthy')

  // Clone into it from a peer that announces 20 blocks but cannot prove them.
  const server = await start(['serve', source, '--json'])
  t.teardown(() => server.stop())
  const { port } = JSON.parse(server.first) as Listening
  const r = await run(['clone', key, copy, '--connect', `127.0.0.1:${port}`, '--timeout', '5'])
  badInput(t, r, /clone incomplete.*keeps 0 verified blocks/, 'clone into the existing copy')
  await server.stop()

  const after = await json<{ length: number, remoteLength: number | null, state: string, healthy: boolean }>(t, ['info', copy])
  t.alike([after.length, after.remoteLength, after.state, after.healthy], [0, 20, 'behind', false], 'length 0 with a known remote length of 20: behind')
  const text = (await ok(t, ['info', copy])).stdout.toString()
  t.ok(/health\s+BEHIND: .*announced 20 blocks/.test(text), 'the health line says BEHIND')
  t.absent(/health\s+healthy/.test(text), 'and never healthy')
})

test('info, cat and proof work while serve runs; append goes through it; audit is refused with the reason', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  const key = await filled(t, dir, 30)
  const direct = await json<{ proof: string }>(t, ['proof', dir, '0'])
  const server = await start(['serve', dir, '--json'])
  t.teardown(() => server.stop())
  const listening = JSON.parse(server.first) as Listening
  const pid = server.child.pid

  const [info, cat, proof, human] = await Promise.all([
    run(['info', dir, '--json']),
    run(['cat', dir]),
    run(['proof', dir, '0', '--json']),
    run(['info', dir])
  ])
  for (const [name, r] of [['info', info], ['cat', cat], ['proof', proof], ['info (human)', human]] as const) {
    t.is(r.code, 0, `${name} works on a served core (${r.stderr.trim()})`)
  }
  const i = JSON.parse(info.stdout.toString()) as { servedBy: number, length: number, state: string }
  t.alike([i.servedBy, i.length, i.state], [pid, 30, 'healthy'], 'info came from the serve process')
  t.is(cat.stdout.toString(), Array.from({ length: 30 }, (_, k) => lineText(k) + '\n').join(''), 'cat prints every block')
  t.is((JSON.parse(proof.stdout.toString()) as { proof: string }).proof, direct.proof, 'proof through serve is the proof read from the files')
  t.ok(/served by\s+nomadcore serve, pid \d+/.test(human.stdout.toString()), 'info says it asked the serve process')

  const appended = await json<{ length: number, servedBy: number }>(t, ['append', dir, 'while serving'])
  t.alike([appended.length, appended.servedBy], [31, pid], 'append goes through the serve process')
  t.is((await ok(t, ['cat', dir, '--start', '30'])).stdout.toString(), 'while serving\n', 'and the block is there')

  // A clone sees the appended block, and takes the key as its z-base-32 id.
  t.is(listening.id, idEncoding.encode(b4a.from(key, 'hex')), 'serve prints the id (z-base-32)')
  const copy = path.join(root, 'copy')
  const cloned = await json<{ length: number, key: string }>(t, ['clone', listening.id, copy, '--connect', `127.0.0.1:${listening.port}`])
  t.alike([cloned.length, cloned.key], [31, key], 'a clone by z-base-32 id gets all 31 blocks of the same core')

  // Garbage on the control socket drops that connection, nothing else.
  const hostile = await new Promise<boolean>(resolve => {
    const s = net.connect(listening.control)
    s.on('error', () => resolve(true))
    s.on('close', () => resolve(true))
    s.on('connect', () => s.write(b4a.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3])))
  })
  t.ok(hostile, 'a malformed frame closes that connection')
  t.is((await run(['info', dir])).code, 0, 'and serve goes on answering')

  badInput(t, await run(['audit', dir]), /being served by `nomadcore serve` \(pid \d+\): stop it first/, 'audit while serving')
  badInput(t, await run(['repair', dir, '--proof', path.join(root, 'none')]), /being served by `nomadcore serve`/, 'repair while serving')

  t.is(await server.stop('SIGINT'), 0, 'serve stops with 0')
  t.absent(fs.existsSync(listening.control), 'and removes its control socket')
  const local = await json<{ servedBy: number | null, length: number }>(t, ['info', dir])
  t.alike([local.servedBy, local.length], [null, 31], 'info reads the files again once serve is gone')
})

test('with --json, every error is a JSON object on stdout and the exit code is unchanged', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  const key = await filled(t, dir, 3)
  const missing = path.join(root, 'missing')
  const dead = await deadPort()
  const cases: Array<[string[], string, RegExp]> = [
    [['info', missing], 'NO_CORE', /no core at/],
    [['cat', dir, '--end', '9'], 'USAGE', /past the length/],
    [['clone', 'not-a-key', missing, '--connect', '127.0.0.1:1'], 'USAGE', /malformed key/],
    [['clone', 'y'.repeat(51) + 'l', missing, '--connect', '127.0.0.1:1'], 'USAGE', /malformed key/],
    // A key as its z-base-32 id is a key: this fails only on the dead port.
    [['clone', idEncoding.encode(b4a.from(key, 'hex')), missing, '--connect', `127.0.0.1:${dead}`], 'CONNECT_FAILED', /connection refused/],
    [['clone', key, missing, '--connect', `127.0.0.1:${dead}`], 'CONNECT_FAILED', /connection refused/],
    [['info', dir, '--bogus'], 'USAGE', /unknown option/],
    [['create', dir], 'CORE_EXISTS', /already holds a core/],
    [['proof', dir, '99'], 'USAGE', /not in the tree/]
  ]
  // None of them changes anything, so all run side by side.
  const results = await Promise.all(cases.map(([args]) => Promise.all([run(args), run([...args, '--json'])])))
  cases.forEach(([args, code, pattern], i) => {
    const what = 'nomadcore ' + args.map(a => a.startsWith(root) ? path.relative(root, a) : a).join(' ')
    const [plain, asJson] = results[i]!
    jsonError(t, asJson, code, pattern, what + ' --json')
    t.is(asJson.code, plain.code, `${what}: the same exit code as without --json (${String(plain.code)})`)
  })
})

test('a port that never completes the Noise handshake is "not a nomadcore/Hypercore peer"', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  const key = await filled(t, dir, 3)
  // Accepts, then says nothing (a closed service, a wrong port); and one that answers in HTTP.
  const sockets = new Set<net.Socket>()
  const servers = [false, true].map(http => net.createServer(s => {
    sockets.add(s)
    s.on('error', () => {})
    if (http) s.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
  }))
  const ports = await Promise.all(servers.map(s => new Promise<number>(resolve => s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)))))
  t.teardown(() => { for (const s of sockets) s.destroy(); for (const s of servers) s.close() })

  const copies = ports.map(port => path.join(root, `copy-${port}`))
  const [silent, http, repair, asJson] = await Promise.all([
    ...ports.map((port, i) => run(['clone', key, copies[i]!, '--connect', `127.0.0.1:${port}`, '--timeout', '1'])),
    run(['repair', dir, '--connect', `127.0.0.1:${ports[0]!}`, '--timeout', '1']),
    run(['clone', key, path.join(root, 'x'), '--connect', `127.0.0.1:${ports[0]!}`, '--timeout', '1', '--json'])
  ])
  badInput(t, silent!, /127\.0\.0\.1:\d+ is not a nomadcore\/Hypercore peer/, 'clone from a silent port')
  badInput(t, http!, /127\.0\.0\.1:\d+ is not a nomadcore\/Hypercore peer/, 'clone from an HTTP server')
  for (const copy of copies) t.absent(fs.existsSync(copy), 'clone leaves nothing behind')
  badInput(t, repair!, /is not a nomadcore\/Hypercore peer/, 'repair')
  jsonError(t, asJson!, 'NOT_A_PEER', /not a nomadcore\/Hypercore peer/, 'clone --json')
})

test('clone and repair share one timeout policy', async t => {
  const [clone, repair] = await Promise.all([run(['clone', '--help']), run(['repair', '--help'])])
  const option = (help: string): string => /--timeout <seconds>\s+([\s\S]*?\(default: "\d+"\))/.exec(help)?.[1]?.replace(/\s+/g, ' ') ?? ''
  t.ok(option(clone.stdout.toString()) !== '', 'clone has --timeout')
  t.is(option(repair.stdout.toString()), option(clone.stdout.toString()), 'repair has the same --timeout: the same meaning and default')
})

test('serve exits 0 on Ctrl-C, also while it is still announcing', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  await filled(t, dir, 3)
  // A DHT that never answers: announcing does not finish by itself.
  const bootstrap = `127.0.0.1:${await deadPort()}`
  const server = await start(['serve', dir, '--swarm', '--bootstrap', bootstrap, '--json'], line => line.includes('"announcing"'))
  t.teardown(() => server.stop('SIGKILL'))
  const code = await server.stop('SIGINT')
  t.is(code, 0, 'exit status 0')
  const events = server.stdout().trim().split('\n').map(l => (JSON.parse(l) as { event: string }).event)
  t.alike(events, ['announcing', 'stopped'], 'it stopped while announcing, without waiting for the DHT')
  // (Ctrl-C on a TCP serve with 0 is checked where the other tests stop theirs.)
})

test('repair --proof says healthy only once the blocks were checked too', async t => {
  const root = tmp(t)
  const healthy = path.join(root, 'healthy')
  await filled(t, healthy, 20)
  const lostRoot = fullRoots(40)[0]!
  const proof = path.join(root, 'root.proof')
  await ok(t, ['proof', healthy, String(lostRoot)], { stdoutFile: proof })
  // A lost root (repair mode) and a corrupt block 3 that the proof does not touch.
  let block3 = 0
  for (let i = 0; i < 3; i++) block3 += lineText(i).length
  const damage = (name: string): string => {
    const dir = path.join(root, name)
    fs.cpSync(healthy, dir, { recursive: true })
    zeroNode(dir, lostRoot)
    flipByte(dir, block3 + 1)
    return dir
  }

  const checked = damage('checked')
  const r = await run(['repair', checked, '--proof', proof, '--json'])
  t.is(r.code, 2, 'damage remains: exit 2')
  const out = JSON.parse(r.stdout.toString()) as { repairMode: boolean, blocksChecked: boolean, corruptBlocks: number, healthy: boolean | null }
  t.alike([out.repairMode, out.blocksChecked, out.corruptBlocks, out.healthy], [false, true, 1, false], 'the roots are back, the blocks were checked, block 3 is corrupt: not healthy')
  badInput(t, await run(['cat', checked, '--start', '3', '--end', '4']), /block 3 is not stored/, 'the corrupt block was cleared, not kept')

  const unchecked = damage('unchecked')
  const human = await ok(t, ['repair', unchecked, '--proof', proof, '--no-audit'])
  t.ok(/blocks NOT checked/.test(human.stdout.toString()), 'with --no-audit it says the blocks were not checked')
  t.absent(/^healthy/m.test(human.stdout.toString()), 'and does not say healthy')
  const again = damage('unchecked-json')
  const asJson = await json<{ blocksChecked: boolean, healthy: boolean | null }>(t, ['repair', again, '--proof', proof, '--no-audit'])
  t.alike([asJson.blocksChecked, asJson.healthy], [false, null], 'JSON: blocksChecked false, healthy null')
})
