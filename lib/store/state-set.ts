/**
 * The reconcilable set of a store's core states: one id per core held
 * (lib/store/core-state.ts), kept up to date as cores change, so a
 * reconciliation with another store finds exactly the cores whose states
 * differ. Only the public surface of `reconcile` is used.
 */
import b4a from 'b4a'
import { ReconcileSet } from '../reconcile'
import { placeholderId, prefixOf, stateId, type CoreState } from './core-state'
import type { CoreRecord } from './catalog'

export class StateSet {
  readonly full: boolean
  readonly set: ReconcileSet
  readonly #ids = new Map<CoreRecord, Uint8Array>()

  constructor (full: boolean, records: Iterable<CoreRecord>) {
    this.full = full
    const ids: Uint8Array[] = []
    for (const record of records) {
      const id = this.#compute(record)
      this.#ids.set(record, id)
      ids.push(id)
    }
    this.set = new ReconcileSet()
    this.set.insertMany(ids)
  }

  get size (): number {
    return this.#ids.size
  }

  #compute (record: CoreRecord): Uint8Array {
    return stateId(record.key, record.discoveryKey, record.state, this.full)
  }

  /** The id `record` has in the set. */
  idOf (record: CoreRecord): Uint8Array {
    return this.#ids.get(record) ?? this.update(record)
  }

  /** The id a remote's record of the core `key` has, as we would compute it. */
  idFor (key: Uint8Array, discoveryKey: Uint8Array, state: CoreState): Uint8Array {
    return stateId(key, discoveryKey, state, this.full)
  }

  /** Puts `record`'s current state in the set (a new record, or a changed state); returns its id. */
  update (record: CoreRecord): Uint8Array {
    const id = this.#compute(record)
    const old = this.#ids.get(record)
    if (old !== undefined) {
      if (b4a.equals(old, id)) return old
      this.set.delete(old)
    }
    this.#ids.set(record, id)
    this.set.insert(id)
    return id
  }

  /**
   * A copy of the set in which each core of `cores` (id prefix in hex → the prefix) has the
   * same placeholder id on both sides, whether either holds it or not: the
   * cores two stores settle directly are left out of the comparison. Built
   * in one pass, O(n); the live set is not touched.
   */
  withPlaceholders (cores: Map<string, Uint8Array>): ReconcileSet {
    const ids: Uint8Array[] = []
    for (const [record, id] of this.#ids) if (!cores.has(prefixOf(record.discoveryKey))) ids.push(id)
    for (const prefix of cores.values()) ids.push(placeholderId(prefix))
    const copy = new ReconcileSet()
    copy.insertMany(ids)
    return copy
  }
}
