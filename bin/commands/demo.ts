import type { Command } from 'commander'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import { fullRoots, leftChild } from '../../lib/flat-tree'
import type { Hypercore } from '../../lib/hypercore'
import { CliError, describeError, withTimeout } from '../util/errors'
import { openCore, closeQuietly, hex, parseCount } from '../util/core'
import { treeHealth, describeHealth } from '../util/health'
import { dial, awaitPeer, type PeerLink } from '../util/peers'
import { formatAddress } from '../util/net'
import { listenTcp, type TcpServer } from './serve'
import { downloadAll } from './clone'
import { runAudit, describeAudit } from './audit'
import { repairFromPeers } from './repair'
import { progressBar, showProgress } from '../util/progress'
import { formatBytes, formatMs, printJson } from '../util/output'
import { action, atExit, withJson, withProgress } from '../util/run'

interface Options { json?: boolean, progress?: boolean, blocks: string, keep?: boolean }

const NODE_BYTES = 40

export function register (program: Command): void {
  withProgress(withJson(program.command('demo')
    .option('--blocks <n>', 'how many blocks the demo core gets', '5000')
    .option('--keep', 'keep the temporary directory (its path is printed)')
    .description('the self-healing story in a temp directory: create, clone over TCP, damage the clone on disk, repair it from the peer, audit, append')))
    .action(action(async (opts: Options) => {
      const n = parseCount(opts.blocks, '--blocks', 16)
      const json = opts.json === true
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-demo-'))
      const removeRoot = (): void => { if (opts.keep !== true) fs.rmSync(root, { recursive: true, force: true }) }
      const unregister = atExit(removeRoot)
      const oninterrupt = (): void => {
        removeRoot()
        process.exit(130)
      }
      process.on('SIGINT', oninterrupt)
      process.on('SIGTERM', oninterrupt)
      const steps: Array<{ step: number, title: string, ms: number, details: string[] }> = []
      let current: { step: number, title: string, started: number, details: string[] } | null = null
      const begin = (title: string): void => {
        current = { step: steps.length + 1, title, started: Date.now(), details: [] }
        if (!json) process.stdout.write(`\n${current.step}. ${title}\n`)
      }
      const say = (line: string): void => {
        current!.details.push(line)
        if (!json) process.stdout.write(`   ${line}\n`)
      }
      const end = (): void => {
        const c = current!
        const ms = Date.now() - c.started
        steps.push({ step: c.step, title: c.title, ms, details: c.details })
        if (!json) process.stdout.write(`   (${formatMs(ms)})\n`)
      }

      const writerDir = path.join(root, 'writer')
      const cloneDir = path.join(root, 'clone')
      let writer: Hypercore | null = null
      let clone: Hypercore | null = null
      let server: TcpServer | null = null
      let link: PeerLink | null = null
      const started = Date.now()
      try {
        if (!json) process.stdout.write(`nomadcore demo in ${root}\n`)

        begin(`create a core and append ${n} blocks`)
        writer = await openCore(writerDir, null, {})
        const blocks: Uint8Array[] = []
        for (let i = 0; i < n; i++) blocks.push(b4a.from(`entry ${i}: ${'nomad '.repeat(1 + (i % 13))}`))
        for (let i = 0; i < n; i += 1000) await writer.append(blocks.slice(i, i + 1000))
        say(`key ${hex(writer.key)}`)
        say(`${writer.length} blocks, ${formatBytes(writer.byteLength)}, in ${writerDir}`)
        end()

        begin('serve it on 127.0.0.1 and clone it over a real TCP socket (Noise-encrypted)')
        server = await listenTcp(writer, '127.0.0.1', 0)
        say(`writer serving on ${formatAddress(server.address)}`)
        link = await dial({ kind: 'tcp', addr: server.address }, 10000)
        clone = await openCore(cloneDir, writer.key, {})
        link.attach(clone)
        await awaitPeer(clone, link, 10000)
        const r = await downloadAll(clone, link, progressBar('download', showProgress(opts) && !json), 20000)
        say(`cloned ${r.downloaded} blocks (${formatBytes(r.byteLength)}) into ${cloneDir}, ${(r.byteLength / 1048576 / Math.max(0.001, r.ms / 1000)).toFixed(2)} MiB/s`)
        await link.close()
        link = null
        await clone.close()
        clone = null
        end()

        begin('damage the clone on disk: lose a root and an inner tree node, flip bytes in the data file')
        const roots = fullRoots(2 * n)
        const lostRoot = roots[0]!
        const lostInner = roots.length > 1 && (roots[1]! & 1) === 1 ? leftChild(roots[1]!) : leftChild(leftChild(lostRoot))
        const treeFd = fs.openSync(path.join(cloneDir, 'tree'), 'r+')
        fs.writeSync(treeFd, new Uint8Array(NODE_BYTES), 0, NODE_BYTES, NODE_BYTES * lostRoot)
        fs.writeSync(treeFd, new Uint8Array(NODE_BYTES), 0, NODE_BYTES, NODE_BYTES * lostInner)
        fs.closeSync(treeFd)
        say(`tree: zeroed node ${lostRoot} (a root; the roots are ${roots.join(', ')}) and node ${lostInner} (inside root ${roots.length > 1 ? roots[1] : lostRoot})`)
        const victim = Math.min(42, n - 1)
        let offset = 0
        for (let i = 0; i < victim; i++) offset += blocks[i]!.byteLength
        const dataFd = fs.openSync(path.join(cloneDir, 'data'), 'r+')
        const bytes = Buffer.alloc(3)
        const at = offset + Math.floor(blocks[victim]!.byteLength / 2)
        fs.readSync(dataFd, bytes, 0, 3, at)
        for (let i = 0; i < 3; i++) bytes[i] = bytes[i]! ^ 0xff
        fs.writeSync(dataFd, bytes, 0, 3, at)
        fs.closeSync(dataFd)
        say(`data: flipped 3 bytes of block ${victim} (at byte ${at})`)
        end()

        begin('reopen the clone: it notices, and goes into repair mode')
        clone = await openCore(cloneDir, writer.key, { createIfMissing: false })
        const before = await treeHealth(clone, cloneDir)
        say(`repair mode: ${clone.repairMode ? 'ON' : 'off'}`)
        say(`tree: ${describeHealth(before)}`)
        const right = n - 1
        const stillReads = await clone.get(right, { wait: false }).then(v => v === null ? '(not held)' : JSON.stringify(b4a.toString(v as Buffer).trim()), (err: unknown) => 'error: ' + describeError(err))
        say(`reads that need no lost node still work: block ${right} = ${stillReads}`)
        end()

        begin('repair from the peer: roots, then an audit, then everything lost comes back verified')
        link = await dial({ kind: 'tcp', addr: server.address }, 10000)
        link.attach(clone)
        await awaitPeer(clone, link, 10000)
        const repaired = await repairFromPeers(clone, cloneDir, {
          audit: true,
          fill: true,
          timeoutMs: 30000,
          onstep: (s, ms) => say(`${s} (${formatMs(ms)})`)
        })
        if (repaired.audit !== null) for (const line of describeAudit(repaired.audit)) say(`audit ${line}`)
        say(`repair mode: ${clone.repairMode ? 'ON' : 'off'}; tree: ${describeHealth(repaired.health)}`)
        const back = await clone.get(victim, { wait: false })
        say(`block ${victim} is back: ${back !== null && b4a.equals(back as Uint8Array, blocks[victim]!) ? 'yes, byte for byte' : 'NO'}`)
        end()

        begin('audit the clone again')
        const clean = await runAudit(clone, cloneDir, progressBar('audit', showProgress(opts) && !json))
        for (const line of describeAudit(clean)) say(line)
        if (clean.corruptBlocks > 0 || clean.droppedNodes > 0 || !clean.health.healthy) throw new CliError('FAILED', 'the clone did not audit clean')
        say('clean')
        end()

        begin('append again: the writer appends, the repaired clone follows live')
        const text = `written after the repair, ${new Date().toISOString()}`
        await writer.append(b4a.from(text))
        const got = await withTimeout((async () => {
          await clone!.update({ wait: true })
          return clone!.get(n, { timeout: 10000 })
        })(), 15000, 'the clone did not receive the new block')
        say(`writer length ${writer.length}; clone length ${clone.length}, block ${n} = ${JSON.stringify(b4a.toString(got as Buffer))}`)
        end()

        if (json) printJson({ dir: root, kept: opts.keep === true, ms: Date.now() - started, steps })
        else process.stdout.write(`\ndone in ${formatMs(Date.now() - started)}${opts.keep === true ? `; files kept in ${root}` : ''}\n`)
      } finally {
        await link?.close()
        await server?.close()
        await closeQuietly(clone)
        await closeQuietly(writer)
        process.off('SIGINT', oninterrupt)
        process.off('SIGTERM', oninterrupt)
        unregister()
        removeRoot()
      }
    }))
}
