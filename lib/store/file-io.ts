/** Reading the store's own small files whole (the rest of the promise forms are lib/storage/file-io.ts's). */
import type { RandomAccessStorage } from 'random-access-storage'
import { EMPTY, pRead, pSize } from '../storage/file-io'

/** The whole file, empty when it does not exist yet. */
export async function readAll (s: RandomAccessStorage): Promise<Uint8Array> {
  const size = await pSize(s).catch(() => 0)
  return size === 0 ? EMPTY : await pRead(s, 0, size)
}
