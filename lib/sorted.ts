/** Sorted arrays of numbers. */

/** The first position in ascending `list` whose value is not below `value` (list.length if none). */
export function lowerBound (list: readonly number[], value: number): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]! < value) lo = mid + 1
    else hi = mid
  }
  return lo
}
