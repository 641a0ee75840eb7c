/**
 * The operator CLI, end to end: every case spawns `node dist/bin/nomadcore.js`
 * the way a person or a script would, and looks only at exit codes, stdout,
 * stderr and the files on disk.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as net from 'net'
import * as path from 'path'
import b4a from 'b4a'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import createTestnet from 'hyperdht/testnet'
import { Hypercore } from '../lib/hypercore'
import { fullRoots, leftChild } from '../lib/flat-tree'
import { run, ok, json, start, tmp, filled, zeroNode, flipByte, badInput, deadPort } from './helpers/cli'

test('create, append, cat and info round trip', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  const created = await ok(t, ['create', dir])
  const key = /key\s+([0-9a-f]{64})/.exec(created.stdout.toString())?.[1]
  t.ok(key, 'create prints the key')
  await ok(t, ['append', dir, 'hello'])
  await ok(t, ['append', dir, 'world'])
  t.is((await ok(t, ['cat', dir])).stdout.toString(), 'hello\nworld\n', 'cat prints every block')
  t.is((await ok(t, ['cat', dir, '--start', '1'])).stdout.toString(), 'world\n', '--start')
  t.is((await ok(t, ['cat', dir, '--end', '1'])).stdout.toString(), 'hello\n', '--end')
  const info = (await ok(t, ['info', dir])).stdout.toString()
  t.ok(info.includes(key!), 'info shows the key')
  t.ok(/length\s+2 blocks/.test(info), 'and the length')
  t.ok(/byte length\s+10 bytes/.test(info), 'and the byte length')
  t.ok(/repair mode\s+off/.test(info), 'and repair mode')
  t.ok(/blocks held\s+2 of 2/.test(info), 'and how many blocks are held')
  t.ok(/1\/1 roots present, 0 of 3 expected nodes missing/.test(info), 'and tree health')
})

test('append from stdin: one block per line, or fixed-size blocks', async t => {
  const dir = path.join(tmp(t), 'log')
  await ok(t, ['create', dir])
  const appended = await json<{ appended: number, length: number }>(t, ['append', dir, '-'], { input: 'a\nbb\n\nd' })
  t.is(appended.appended, 4, 'four lines, the last without a newline')
  const blocks = await json<Array<{ index: number, text: string }>>(t, ['cat', dir])
  t.alike(blocks.map(b => b.text), ['a', 'bb', '', 'd'], 'newlines are not stored; an empty line is an empty block')

  const bytes = b4a.from(Array.from({ length: 10 }, (_, i) => i * 25))
  const fixed = await json<{ appended: number, length: number }>(t, ['append', dir, '-', '--block-size', '3'], { input: bytes })
  t.is(fixed.appended, 4, '10 bytes in blocks of 3')
  const raw = await ok(t, ['cat', dir, '--start', '4', '--raw'])
  t.alike(raw.stdout, b4a.from(bytes), '--raw gives the bytes back')
  const binary = await json<Array<{ base64?: string }>>(t, ['cat', dir, '--start', '4'])
  t.ok(binary.some(b => typeof b.base64 === 'string'), 'bytes that are not UTF-8 come as base64 in JSON')
})

test('--json output of every command parses', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  const created = await json<{ key: string, discoveryKey: string }>(t, ['create', dir])
  t.ok(/^[0-9a-f]{64}$/.test(created.key), 'create: key')
  t.ok(/^[0-9a-f]{64}$/.test(created.discoveryKey), 'create: discovery key')
  const appended = await json<{ length: number, byteLength: number }>(t, ['append', dir, 'x'])
  t.alike([appended.length, appended.byteLength], [1, 1], 'append: length and byte length')
  const info = await json<{ key: string, length: number, repairMode: boolean, blocks: number, healthy: boolean, tree: { roots: number, missingNodes: number } }>(t, ['info', dir])
  t.is(info.key, created.key, 'info: key')
  t.alike([info.length, info.repairMode, info.blocks, info.healthy, info.tree.roots, info.tree.missingNodes], [1, false, 1, true, 1, 0], 'info: state and health')
  t.alike(await json(t, ['cat', dir]), [{ index: 0, byteLength: 1, text: 'x' }], 'cat')
  const audit = await json<{ blocks: number, clean: boolean }>(t, ['audit', dir])
  t.alike([audit.blocks, audit.clean], [1, true], 'audit')
  const proof = await json<{ node: number, proof: string }>(t, ['proof', dir, '0'])
  t.ok(proof.node === 0 && proof.proof.length > 0, 'proof: base64 bytes')
})

test('proof > file, then repair --proof restores zeroed tree nodes', async t => {
  const root = tmp(t)
  const healthy = path.join(root, 'healthy')
  const damaged = path.join(root, 'damaged')
  await filled(t, healthy, 100)
  fs.cpSync(healthy, damaged, { recursive: true })
  const roots = fullRoots(200)
  const root0 = roots[0]!
  const inner = leftChild(roots[1]!)
  zeroNode(damaged, root0)
  zeroNode(damaged, inner)

  const before = await json<{ repairMode: boolean, tree: { missing: number[] } }>(t, ['info', damaged])
  t.ok(before.repairMode, 'a lost root: repair mode')
  t.alike(before.tree.missing, [root0, inner].sort((a, b) => a - b), 'info names the missing nodes')
  t.is((await run(['append', damaged, 'nope'])).code, 1, 'append is refused in repair mode')

  const rootProof = path.join(root, 'root.proof')
  await ok(t, ['proof', healthy, String(root0)], { stdoutFile: rootProof })
  t.ok(fs.statSync(rootProof).size > 32, 'the proof went to the file')
  const first = await run(['repair', damaged, '--proof', rootProof, '--json'])
  t.is(first.code, 2, 'repaired, but a node is still missing: exit 2')
  const firstOut = JSON.parse(first.stdout.toString()) as { repairMode: boolean, restoredNodes: number }
  t.alike([firstOut.repairMode, firstOut.restoredNodes], [false, 1], 'the root is back, out of repair mode')

  const innerProof = path.join(root, 'inner.proof')
  await ok(t, ['proof', healthy, String(inner)], { stdoutFile: innerProof })
  const second = await json<{ healthy: boolean }>(t, ['repair', damaged, '--proof', innerProof])
  t.ok(second.healthy, 'the inner node is back too')
  t.alike(fs.readFileSync(path.join(damaged, 'tree')), fs.readFileSync(path.join(healthy, 'tree')), 'the tree file is byte-identical again')
  await ok(t, ['append', damaged, 'after the repair'])
  t.is((await ok(t, ['cat', damaged, '--start', '100'])).stdout.toString(), 'after the repair\n', 'and it appends again')
})

test('serve + clone over TCP on 127.0.0.1 gets every block; clone resumes what is stored', async t => {
  const root = tmp(t)
  const source = path.join(root, 'source')
  const key = await filled(t, source, 300)
  const expected = (await ok(t, ['cat', source])).stdout
  const server = await start(['serve', source, '--port', '0', '--host', '127.0.0.1', '--json'])
  t.teardown(() => server.stop())
  const listening = JSON.parse(server.first) as { event: string, key: string, port: number }
  t.is(listening.event, 'listening', 'serve prints where it listens')
  t.is(listening.key, key, 'and what it serves')
  const addr = `127.0.0.1:${listening.port}`

  const copy = path.join(root, 'nested', 'copy')
  const cloned = await json<{ length: number, downloaded: number, had: number }>(t, ['clone', key, copy, '--connect', addr])
  t.alike([cloned.length, cloned.downloaded, cloned.had], [300, 300, 0], 'every block downloaded')
  t.alike((await ok(t, ['cat', copy])).stdout, expected, 'the same blocks')
  const info = await json<{ writable: boolean, blocks: number, healthy: boolean }>(t, ['info', copy])
  t.alike([info.writable, info.blocks, info.healthy], [false, 300, true], 'a healthy read-only copy')
  const again = await json<{ downloaded: number, had: number }>(t, ['clone', key, copy, '--connect', addr])
  t.alike([again.downloaded, again.had], [0, 300], 'cloning again downloads nothing')

  // A clone stopped halfway (its bitfield persists) is resumed by the same command.
  const partial = path.join(root, 'partial')
  const core = new Hypercore(partial, b4a.from(key, 'hex'))
  await core.ready()
  const socket = net.connect({ host: '127.0.0.1', port: listening.port })
  socket.on('error', () => {})
  const noise = new NoiseSecretStream(true, socket)
  noise.on('error', () => {})
  core.replicate(noise)
  await core.update({ wait: true })
  await core.download({ start: 0, end: 120 }).done()
  socket.destroy()
  await core.close()
  const resumed = await json<{ downloaded: number, had: number, length: number }>(t, ['clone', key, partial, '--connect', addr])
  t.alike([resumed.had, resumed.downloaded, resumed.length], [120, 180, 300], 'resumed from block 120')
  t.alike(fs.readFileSync(path.join(partial, 'data')), fs.readFileSync(path.join(source, 'data')), 'the data file is whole')

  t.is(await server.stop(), 0, 'serve stops cleanly on SIGTERM')
})

test('audit finds flipped data bytes; repair --connect brings them back from a peer', async t => {
  const root = tmp(t)
  const healthy = path.join(root, 'healthy')
  const damaged = path.join(root, 'damaged')
  await filled(t, healthy, 50)
  fs.cpSync(healthy, damaged, { recursive: true })
  // Blocks are "line i ~…" + (i % 5) tildes: find where block 7 starts.
  let offset = 0
  for (let i = 0; i < 7; i++) offset += `line ${i} ${'~'.repeat(i % 5)}`.length
  flipByte(damaged, offset + 2)

  const audit = await run(['audit', damaged, '--json'])
  t.is(audit.code, 2, 'damage found: exit 2')
  const report = JSON.parse(audit.stdout.toString()) as { corruptBlocks: number, clearedBlocks: number[], droppedNodes: number }
  t.alike([report.corruptBlocks, report.clearedBlocks, report.droppedNodes], [1, [7], 0], 'block 7 is corrupt, and cleared')
  const human = await ok(t, ['audit', damaged])
  t.ok(/0 corrupt/.test(human.stdout.toString()), 'a second audit finds nothing more')
  t.ok(/49 of 50 blocks held/.test(human.stdout.toString()), 'and says a block is missing')

  const server = await start(['serve', healthy, '--json'])
  t.teardown(() => server.stop())
  const { port } = JSON.parse(server.first) as { port: number }
  const repaired = await json<{ healthy: boolean, refetchedBlocks: number }>(t, ['repair', damaged, '--connect', `127.0.0.1:${port}`])
  t.alike([repaired.healthy, repaired.refetchedBlocks], [true, 1], 'repair fetched the block back')
  t.alike(fs.readFileSync(path.join(damaged, 'data')), fs.readFileSync(path.join(healthy, 'data')), 'the data file is whole again')
  t.is((await run(['audit', damaged])).code, 0, 'and audits clean')
})

test('bad input: one line on stderr, non-zero exit, no stack trace, nothing created or changed', async t => {
  const root = tmp(t)
  const dir = path.join(root, 'log')
  const key = await filled(t, dir, 10)
  const missing = path.join(root, 'missing')
  const file = path.join(root, 'file.txt')
  fs.writeFileSync(file, 'not a proof, not a core\n')
  const copy = path.join(root, 'copy')
  fs.cpSync(dir, copy, { recursive: true })
  // A read-only copy: the same core without its secret key.
  const header = await json<{ key: string }>(t, ['info', dir])
  t.is(header.key, key)
  const treeBefore = fs.readFileSync(path.join(dir, 'tree'))
  const dead = await deadPort()

  const cases: Array<[string[], RegExp, string[]]> = [
    [['info', missing], /no core at .*does not exist/, [missing]],
    [['cat', path.join(missing, 'deeper')], /no core at/, [missing]],
    [['append', missing, 'x'], /no core at/, [missing]],
    [['audit', missing], /no core at/, [missing]],
    [['proof', missing, '0'], /no core at/, [missing]],
    [['serve', missing], /no core at/, [missing]],
    [['repair', missing, '--proof', file], /no core at/, [missing]],
    [['info', file], /not a directory/, []],
    [['clone', 'not-a-key', missing, '--connect', '127.0.0.1:1'], /malformed key/, [missing]],
    [['clone', key, missing, '--connect', `127.0.0.1:${dead}`], /cannot connect to 127\.0\.0\.1:\d+: connection refused/, [missing]],
    [['clone', key, missing, '--connect', 'nowhere'], /malformed address/, [missing]],
    [['clone', key, missing], /--connect HOST:PORT or --swarm/, [missing]],
    [['clone', 'ab'.repeat(32), dir, '--connect', '127.0.0.1:1'], /holds a different core/, []],
    [['repair', dir, '--proof', file], /is not a proof/, []],
    [['repair', dir, '--proof', path.join(root, 'nofile')], /cannot read .*no such file/, []],
    [['repair', dir, '--connect', `127.0.0.1:${dead}`], /connection refused/, []],
    [['repair', dir], /--connect HOST:PORT or --swarm/, []],
    [['proof', dir, '9999'], /not in the tree/, []],
    [['proof', dir, '-1'], /unknown option|whole number/, []],
    [['cat', dir, '--end', '11'], /past the length/, []],
    [['cat', dir, '--start', 'x'], /whole number/, []],
    [['create', dir], /already holds a core/, []],
    [['serve', dir, '--port', '70000'], /at most 65535/, []],
    [['append', dir], /nothing to append/, []],
    [['bogus'], /unknown command/, []],
    [['info', dir, '--bogus'], /unknown option/, []],
    [['info'], /missing required argument/, []]
  ]
  // A core is locked while open: each case that names it gets its own copy, so all run side by side.
  const copies = cases.map(([args], i) => {
    if (!args.includes(dir)) return null
    const own = path.join(root, `log-${i}`)
    fs.cpSync(dir, own, { recursive: true })
    return own
  })
  const results = await Promise.all(cases.map(([args], i) => run(args.map(a => a === dir ? copies[i]! : a))))
  cases.forEach(([args, pattern, absent], i) => {
    const what = 'nomadcore ' + args.map(a => a.startsWith(root) ? path.relative(root, a) : a).join(' ')
    badInput(t, results[i]!, pattern, what)
    for (const p of absent) t.absent(fs.existsSync(p), `${what}: ${path.relative(root, p)} not created`)
  })
  for (const own of copies) if (own !== null) t.alike(fs.readFileSync(path.join(own, 'tree')), treeBefore, `${path.basename(own)}: the core that was named is unchanged`)

  // A proof for another core is refused and nothing is written.
  const other = path.join(root, 'other')
  await filled(t, other, 10)
  const proof = path.join(root, 'other.proof')
  await ok(t, ['proof', other, '3'], { stdoutFile: proof })
  badInput(t, await run(['repair', dir, '--proof', proof]), /proof for another core/, 'a proof for another core')
  t.alike(fs.readFileSync(path.join(dir, 'tree')), treeBefore, 'the tree file is byte-identical')

  // A damaged core: garbage header.
  fs.writeFileSync(path.join(copy, 'header'), b4a.alloc(300, 7))
  const garbage = fs.readFileSync(path.join(copy, 'header'))
  badInput(t, await run(['info', copy]), /corrupt/, 'a core with a garbage header')
  badInput(t, await run(['cat', copy]), /corrupt/, 'cat of a core with a garbage header')
  t.alike(fs.readFileSync(path.join(copy, 'header')), garbage, 'the header is left as it was')

  // A core in repair mode is not audited blind.
  const lost = path.join(root, 'lost')
  fs.cpSync(dir, lost, { recursive: true })
  zeroNode(lost, fullRoots(20)[0]!)
  badInput(t, await run(['audit', lost]), /repair mode/, 'audit in repair mode')

  // A read-only copy refuses appends.
  const server = await start(['serve', dir, '--json'])
  t.teardown(() => server.stop())
  const { port } = JSON.parse(server.first) as { port: number }
  const clone = path.join(root, 'clone')
  await ok(t, ['clone', key, clone, '--connect', `127.0.0.1:${port}`])
  badInput(t, await run(['append', clone, 'x']), /read-only/, 'append to a clone')
  // A peer that does not have the core.
  const stranger = await json<{ key: string }>(t, ['create', path.join(root, 'stranger')])
  const nothing = path.join(root, 'nothing')
  badInput(t, await run(['clone', stranger.key, nothing, '--connect', `127.0.0.1:${port}`, '--timeout', '1']), /does not serve this core|hung up/, 'a peer without the core')
  t.absent(fs.existsSync(nothing), 'a clone that got nothing leaves nothing')
})

test('every command has --help', async t => {
  const commands = ['create', 'append', 'cat', 'info', 'serve', 'clone', 'audit', 'repair', 'proof', 'demo']
  const results = await Promise.all(commands.map(c => run([c, '--help'])))
  commands.forEach((c, i) => {
    const r = results[i]!
    t.is(r.code, 0, `${c} --help exits 0`)
    t.ok(r.stdout.toString().startsWith(`Usage: nomadcore ${c}`), `${c} --help prints its usage`)
    t.ok(r.stdout.toString().includes('--json'), `${c} --help lists --json`)
  })
  const top = await ok(t, ['--help'])
  for (const c of commands) t.ok(top.stdout.toString().includes(c), `nomadcore --help lists ${c}`)
})

test('serve --swarm and clone --swarm on a local DHT testnet', async t => {
  const testnet = await createTestnet(3, { host: '127.0.0.1' })
  t.teardown(() => testnet.destroy(), { order: 1 })
  const bootstrap = testnet.bootstrap.map(b => `${b.host}:${b.port}`).join(',')
  const root = tmp(t)
  const source = path.join(root, 'source')
  const key = await filled(t, source, 40)
  const server = await start(['serve', source, '--swarm', '--bootstrap', bootstrap, '--json'], line => line.includes('"announced"'))
  t.teardown(() => server.stop())
  t.is((JSON.parse(server.stdout().split('\n')[0]!) as { event: string }).event, 'announcing', 'says it is announcing')
  t.is((JSON.parse(server.first) as { event: string }).event, 'announced', 'announced on the DHT')
  const copy = path.join(root, 'copy')
  const cloned = await json<{ length: number, downloaded: number }>(t, ['clone', key, copy, '--swarm', '--bootstrap', bootstrap, '--timeout', '10'])
  t.alike([cloned.length, cloned.downloaded], [40, 40], 'every block over Hyperswarm')
})

test('demo tells the whole story', async t => {
  const r = await json<{ steps: Array<{ title: string, ms: number, details: string[] }> }>(t, ['demo', '--blocks', '300'], { timeout: 20000 })
  t.is(r.steps.length, 7, 'seven steps, each timed')
  const text = JSON.stringify(r.steps)
  t.ok(/repair mode: ON/.test(text), 'the damaged clone went into repair mode')
  t.ok(/block 42 is back: yes/.test(text), 'the corrupt block came back from the peer')
  t.ok(/"clean"/.test(text), 'it audits clean')
  t.ok(r.steps.every(s => typeof s.ms === 'number'), 'every step is timed')
})
