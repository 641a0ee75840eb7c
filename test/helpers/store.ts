/** Small builders for Store tests: stores in fresh directories, connections with byte counts, waiting. */
import b4a from 'b4a'
import { Store, type StoreOptions } from '../../lib/store'
import { freshDir } from './core'
import { pipePair, type Pipeable } from './replication'
import type { Teardownable } from './oracle'

export { Store }

/** A store in a fresh directory (or `dir`), closed at teardown; no periodic repair unless asked. */
export function openStore (t: Teardownable, opts: StoreOptions & { dir?: string } = {}): Store {
  const { dir, ...rest } = opts
  const store = new Store(dir ?? freshDir(t, 'store'), { repairInterval: 0, ...rest })
  t.teardown(() => store.close())
  return store
}

export interface CountedLink {
  /** Bytes a sent to b, and b to a, on the wire (Noise frames included). */
  readonly bytes: { ab: number, ba: number }
  destroy (): void
}

/** Connects `a` (initiator) and `b` over an in-memory pipe, counting bytes both ways. */
export function connect (t: Teardownable, a: Store, b: Store): CountedLink {
  const s1 = a.replicate(true, { keepAlive: false }) as unknown as Pipeable
  const s2 = b.replicate(false, { keepAlive: false }) as unknown as Pipeable
  const bytes = { ab: 0, ba: 0 }
  s1.on('data', (d: Uint8Array) => { bytes.ab += d.byteLength })
  s2.on('data', (d: Uint8Array) => { bytes.ba += d.byteLength })
  const link = pipePair(t, s1, s2)
  return { bytes, destroy: () => link.destroy() }
}

export async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 30000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

/** Everything `list()` streams. */
export async function listed (store: Store, namespace?: Uint8Array): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const dk of store.list(namespace)) out.push(dk as Uint8Array)
  return out
}

/** Resolves once both stores agree (a group check found nothing to do) after `fn` started them off. */
export function agreement (a: Store, b: Store, ms = 60000): Promise<void> {
  return new Promise((resolve, reject) => {
    let n = 0
    const timer = setTimeout(() => reject(new Error('stores did not agree')), ms)
    const on = (): void => {
      if (++n < 2) return
      clearTimeout(timer)
      resolve()
    }
    a.once('synced', on)
    b.once('synced', on)
  })
}

/** Makes `n` named cores of `blocks` blocks each in `store`, a few at a time, and closes them. */
export async function fill (store: Store, n: number, blocks = 1, prefix = 'core'): Promise<Uint8Array[]> {
  const keys: Uint8Array[] = new Array(n)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      const core = store.get({ name: prefix + i })
      await core.append(Array.from({ length: blocks }, (_, j) => b4a.from(`${prefix} ${i} block ${j}`)))
      keys[i] = core.key!
      await core.close()
    }
  }
  await Promise.all(Array.from({ length: Math.min(16, n) }, worker))
  return keys
}

export const hex = (b: Uint8Array): string => b4a.toString(b as Buffer, 'hex')
