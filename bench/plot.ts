/**
 * Hand-written SVG line/point charts with log-log axes, for the plots next to
 * bench/RESULTS.md. No dependencies: `svgCharts(charts)` returns one SVG
 * document with the charts side by side, each with its title, axis labels,
 * tick labels at powers of ten (and 2, 5 between when the range is short),
 * and a legend.
 */

export interface Series {
  name: string
  /** [x, y] pairs; points with x or y ≤ 0 or not finite are left out. */
  points: Array<readonly [number, number]>
  color: string
  /** Dashed line, no markers: a reference line (floor, naive, ...). */
  dashed?: boolean
}

export interface Chart {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  /** Tick label format for each axis (default: 1, 10, 1k, 1M, ...). */
  xFormat?: (v: number) => string
  yFormat?: (v: number) => string
}

const W = 520
const H = 380
const M = { left: 72, right: 16, top: 36, bottom: 52 }
const LEGEND_ROW = 16

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** 1, 10, 100, 1k, 10k, 1M, 1G; 2 and 5 multiples likewise. */
export function fmtSI (v: number): string {
  const units: Array<[number, string]> = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']]
  for (const [u, s] of units) if (v >= u) return `${+(v / u).toPrecision(3)}${s}`
  return String(+v.toPrecision(3))
}

/** Bytes: B, kB, MB, GB (powers of ten, so the ticks stay round). */
export function fmtBytesSI (v: number): string {
  const units: Array<[number, string]> = [[1e9, ' GB'], [1e6, ' MB'], [1e3, ' kB']]
  for (const [u, s] of units) if (v >= u) return `${+(v / u).toPrecision(3)}${s}`
  return `${+v.toPrecision(3)} B`
}

/** Milliseconds, with µs and s. */
export function fmtMs (v: number): string {
  if (v >= 1000) return `${+(v / 1000).toPrecision(3)} s`
  if (v < 1) return `${+(v * 1000).toPrecision(3)} µs`
  return `${+v.toPrecision(3)} ms`
}

interface Axis {
  lo: number
  hi: number
  ticks: number[]
}

/** A log axis covering [min, max], widened to powers of ten. */
function logAxis (min: number, max: number, headroom = 0): Axis {
  if (!(min > 0) || !(max > 0)) { min = 1; max = 10 }
  const lo = Math.floor(Math.log10(min) + 1e-9)
  let hi = Math.ceil(Math.log10(max) - 1e-9)
  if (hi <= lo) hi = lo + 1
  // Room above the data (for the legend): the top `headroom` fraction of the axis left empty.
  if (headroom > 0 && headroom < 1) hi = Math.max(hi, Math.ceil((Math.log10(max) - headroom * lo) / (1 - headroom) - 1e-9))
  const ticks: number[] = []
  const decades = hi - lo
  for (let e = lo; e <= hi; e++) {
    const p = 10 ** e
    ticks.push(p)
    if (decades <= 2 && e < hi) ticks.push(2 * p, 5 * p)
  }
  return { lo: 10 ** lo, hi: 10 ** hi, ticks }
}

function chartGroup (chart: Chart, dx: number): string {
  const fx = chart.xFormat ?? fmtSI
  const fy = chart.yFormat ?? fmtSI
  const series = chart.series.map(s => ({
    ...s,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && x > 0 && y > 0).slice().sort((a, b) => a[0] - b[0])
  })).filter(s => s.points.length > 0)
  const xs = series.flatMap(s => s.points.map(p => p[0]))
  const ys = series.flatMap(s => s.points.map(p => p[1]))
  const ax = logAxis(Math.min(...xs), Math.max(...xs))
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const ay = logAxis(Math.min(...ys), Math.max(...ys), (series.length * LEGEND_ROW + 8 + 14) / ph)
  // 3% padding inside the frame, so points at a power of ten do not sit on it.
  const pos = (v: number, a: Axis): number => 0.03 + 0.94 * (Math.log10(v) - Math.log10(a.lo)) / (Math.log10(a.hi) - Math.log10(a.lo))
  const px = (x: number): number => M.left + pw * pos(x, ax)
  const py = (y: number): number => M.top + ph * (1 - pos(y, ay))
  const f = (v: number): string => v.toFixed(1)
  const out: string[] = []
  out.push(`<g transform="translate(${dx},0)">`)
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(chart.title)}</text>`)
  // Grid and ticks.
  for (const t of ax.ticks) {
    const major = Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9
    out.push(`<line x1="${f(px(t))}" y1="${M.top}" x2="${f(px(t))}" y2="${M.top + ph}" stroke="${major ? '#ddd' : '#f0f0f0'}"/>`)
    out.push(`<text x="${f(px(t))}" y="${M.top + ph + 16}" text-anchor="middle" font-size="11">${esc(fx(t))}</text>`)
  }
  for (const t of ay.ticks) {
    const major = Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9
    out.push(`<line x1="${M.left}" y1="${f(py(t))}" x2="${M.left + pw}" y2="${f(py(t))}" stroke="${major ? '#ddd' : '#f0f0f0'}"/>`)
    out.push(`<text x="${M.left - 6}" y="${f(py(t) + 4)}" text-anchor="end" font-size="11">${esc(fy(t))}</text>`)
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${M.left + pw / 2}" y="${H - 12}" text-anchor="middle" font-size="12">${esc(chart.xLabel)}</text>`)
  out.push(`<text transform="translate(16,${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(chart.yLabel)}</text>`)
  // Series.
  for (const s of series) {
    const d = s.points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${f(px(x))},${f(py(y))}`).join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.dashed ? 1.5 : 2}"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`)
    if (s.dashed !== true) for (const [x, y] of s.points) out.push(`<circle cx="${f(px(x))}" cy="${f(py(y))}" r="3.5" fill="${s.color}"/>`)
  }
  // Legend, top left inside the plot.
  const lw = 14 + Math.max(...series.map(s => s.name.length)) * 6.5 + 30
  out.push(`<rect x="${M.left + 8}" y="${M.top + 8}" width="${f(lw)}" height="${series.length * LEGEND_ROW + 8}" fill="white" fill-opacity="0.85" stroke="#999"/>`)
  series.forEach((s, k) => {
    const y = M.top + 8 + 12 + k * LEGEND_ROW
    const x = M.left + 14
    out.push(`<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`)
    if (s.dashed !== true) out.push(`<circle cx="${x + 11}" cy="${y}" r="3" fill="${s.color}"/>`)
    out.push(`<text x="${x + 28}" y="${y + 4}" font-size="11">${esc(s.name)}</text>`)
  })
  out.push('</g>')
  return out.join('\n')
}

/** One SVG document with `charts` side by side (null: nothing to plot). */
export function svgCharts (charts: readonly Chart[]): string | null {
  const drawn = charts.filter(c => c.series.some(s => s.points.some(([x, y]) => x > 0 && y > 0 && Number.isFinite(x) && Number.isFinite(y))))
  if (drawn.length === 0) return null
  const width = W * drawn.length
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H}" viewBox="0 0 ${width} ${H}" font-family="sans-serif">
<rect width="${width}" height="${H}" fill="white"/>
${drawn.map((c, k) => chartGroup(c, k * W)).join('\n')}
</svg>
`
}
