/**
 * The second half of decoding: once the short ids of the difference are
 * known, so is every cell each of the remote's ids is coded into, and the
 * last 24 bytes of those ids are the unknowns of a linear system over
 * GF(2): cell r's remaining XOR is the XOR of the unknowns coded into it.
 *
 * Peeling (a cell with one unknown gives it away) needs ~1.4 cells per
 * unknown; with inactivation decoding (as Raptor codes do: when peeling
 * stalls, set a few unknowns aside as symbols, peel on, and solve for the
 * set-aside ones by Gaussian elimination at the end) a few more cells than
 * unknowns do.
 */

/** Words of one unknown (24 bytes). */
export const LONG_WORDS = 6
/** Most unknowns set aside before asking for more cells instead (the dense solve is cubic in them). */
const MAX_INACTIVE = 1024

/**
 * Solves for `u` unknowns from `rows` cells. `payload` holds each cell's
 * value (LONG_WORDS words each); unknown j is coded into the cells
 * `colRows[colStart[j] .. colStart[j + 1])`. Returns the values
 * (LONG_WORDS words each), 'under' when the cells do not determine them
 * all, 'bad' when the cells contradict each other.
 */
export function solveLong (rows: number, payload: Int32Array, u: number, colStart: Int32Array, colRows: Int32Array): Int32Array | 'under' | 'bad' {
  const W = LONG_WORDS
  // Rows' members (CSR).
  const rowStart = new Int32Array(rows + 1)
  for (let k = 0; k < colStart[u]!; k++) rowStart[colRows[k]! + 1]!++
  for (let r = 0; r < rows; r++) rowStart[r + 1]! += rowStart[r]!
  const rowMembers = new Int32Array(colStart[u]!)
  const fill = rowStart.slice(0, rows)
  for (let j = 0; j < u; j++) for (let k = colStart[j]!; k < colStart[j + 1]!; k++) rowMembers[fill[colRows[k]!]!++] = j

  const deg = new Int32Array(rows)
  for (let r = 0; r < rows; r++) deg[r] = rowStart[r + 1]! - rowStart[r]!
  const state = new Uint8Array(u) // 0 unknown, 1 resolved from a row, 2 set aside
  const defRow = new Int32Array(u).fill(-1)
  const inactiveIndex = new Int32Array(u).fill(-1)
  const used = new Uint8Array(rows)
  const order: number[] = []
  let K = 0
  let settled = 0
  const queue: number[] = []
  for (let r = 0; r < rows; r++) if (deg[r] === 1) queue.push(r)

  const drop = (j: number): void => {
    for (let k = colStart[j]!; k < colStart[j + 1]!; k++) {
      const r = colRows[k]!
      if (--deg[r]! === 1 && used[r] === 0) queue.push(r)
    }
  }

  while (settled < u) {
    while (queue.length > 0) {
      const r = queue.pop()!
      if (used[r] === 1 || deg[r] !== 1) continue
      let v = -1
      for (let k = rowStart[r]!; k < rowStart[r + 1]!; k++) {
        if (state[rowMembers[k]!] === 0) {
          v = rowMembers[k]!
          break
        }
      }
      used[r] = 1
      state[v] = 1
      defRow[v] = r
      order.push(v)
      settled++
      drop(v)
    }
    if (settled >= u) break
    // Stalled: set aside all but one unknown of the unused row with the fewest.
    let best = -1
    let bd = Infinity
    for (let r = 0; r < rows; r++) {
      if (used[r] === 0 && deg[r]! >= 2 && deg[r]! < bd) {
        bd = deg[r]!
        best = r
        if (bd === 2) break
      }
    }
    if (best < 0) {
      // Unknowns in no unused row: set them all aside, the dense solve will tell.
      for (let j = 0; j < u; j++) {
        if (state[j] !== 0) continue
        state[j] = 2
        inactiveIndex[j] = K++
        settled++
      }
      break
    }
    let left = deg[best]!
    for (let k = rowStart[best]!; k < rowStart[best + 1]! && left > 1; k++) {
      const j = rowMembers[k]!
      if (state[j] !== 0) continue
      state[j] = 2
      inactiveIndex[j] = K++
      settled++
      left--
      drop(j)
    }
    if (K > MAX_INACTIVE) return 'under'
  }

  // Each resolved unknown as its row's value plus a combination of the set-aside ones.
  const MW = Math.max(1, Math.ceil(K / 32))
  const value = new Int32Array(u * W)
  const mask = new Int32Array(u * MW)
  for (const v of order) {
    const r = defRow[v]!
    for (let w = 0; w < W; w++) value[v * W + w] = payload[r * W + w]!
    for (let k = rowStart[r]!; k < rowStart[r + 1]!; k++) {
      const m = rowMembers[k]!
      if (m === v) continue
      if (state[m] === 2) {
        const b = inactiveIndex[m]!
        mask[v * MW + (b >>> 5)] ^= 1 << (b & 31)
      } else {
        for (let w = 0; w < W; w++) value[v * W + w] ^= value[m * W + w]!
        for (let w = 0; w < MW; w++) mask[v * MW + w] ^= mask[m * MW + w]!
      }
    }
  }

  // The unused rows: equations in the set-aside unknowns.
  const eqs: Array<{ m: Int32Array, v: Int32Array }> = []
  for (let r = 0; r < rows; r++) {
    if (used[r] === 1) continue
    const m = new Int32Array(MW)
    const v = payload.slice(r * W, r * W + W)
    for (let k = rowStart[r]!; k < rowStart[r + 1]!; k++) {
      const j = rowMembers[k]!
      if (state[j] === 2) {
        const b = inactiveIndex[j]!
        m[b >>> 5] ^= 1 << (b & 31)
      } else {
        for (let w = 0; w < W; w++) v[w] ^= value[j * W + w]!
        for (let w = 0; w < MW; w++) m[w] ^= mask[j * MW + w]!
      }
    }
    eqs.push({ m, v })
  }
  const x = new Int32Array(K * W)
  let rank = 0
  for (let c = 0; c < K; c++) {
    const word = c >>> 5
    const bit = 1 << (c & 31)
    let p = -1
    for (let e = rank; e < eqs.length; e++) {
      if ((eqs[e]!.m[word]! & bit) !== 0) {
        p = e
        break
      }
    }
    if (p < 0) return 'under'
    const pivot = eqs[p]!
    eqs[p] = eqs[rank]!
    eqs[rank] = pivot
    for (let e = 0; e < eqs.length; e++) {
      if (e === rank) continue
      const q = eqs[e]!
      if ((q.m[word]! & bit) === 0) continue
      for (let w = word; w < MW; w++) q.m[w] ^= pivot.m[w]!
      for (let w = 0; w < W; w++) q.v[w] ^= pivot.v[w]!
    }
    rank++
  }
  // Rows beyond the rank reduce to 0 = value: anything else is a contradiction.
  for (let e = rank; e < eqs.length; e++) {
    const q = eqs[e]!
    for (let w = 0; w < W; w++) if (q.v[w] !== 0) return 'bad'
  }
  for (let c = 0; c < K; c++) for (let w = 0; w < W; w++) x[c * W + w] = eqs[c]!.v[w]!
  // Unknowns set aside take their solved values; the others add theirs in.
  for (let j = 0; j < u; j++) {
    if (state[j] === 2) {
      const b = inactiveIndex[j]!
      for (let w = 0; w < W; w++) value[j * W + w] = x[b * W + w]!
      continue
    }
    for (let b = 0; b < K; b++) {
      if ((mask[j * MW + (b >>> 5)]! & (1 << (b & 31))) === 0) continue
      for (let w = 0; w < W; w++) value[j * W + w] ^= x[b * W + w]!
    }
  }
  return value
}
