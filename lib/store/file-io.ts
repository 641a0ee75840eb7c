/** Promise forms of the random-access-storage calls the store's own small files need. */
import type { RandomAccessStorage } from 'random-access-storage'

/** The whole file, empty when it does not exist yet. */
export function readAll (s: RandomAccessStorage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    s.stat((err, st) => {
      if (err || !st || st.size === 0) return resolve(new Uint8Array(0))
      s.read(0, st.size, (err2, buf) => err2 ? reject(err2) : resolve(buf!))
    })
  })
}

export function write (s: RandomAccessStorage, offset: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => s.write(offset, data, err => err ? reject(err) : resolve()))
}

export function closeFile (s: RandomAccessStorage): Promise<void> {
  return new Promise((resolve, reject) => s.close(err => err ? reject(err) : resolve()))
}
