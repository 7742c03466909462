/**
 * Small SVG charts for the pruning and correction panels: line charts (sparsity → perplexity, count → metric)
 * and horizontal bars (sparsity per layer). Pure strings; colours are classes (series-0 … series-5) that the
 * panel's CSS maps to theme colours, and exports map to fixed ones, so no style attribute is needed under the
 * strict CSP.
 */
import { escapeMarkup } from '../escape';

export interface Series {
  label: string;
  points: { x: number; y: number }[];
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Logarithmic y axis (perplexity spans orders of magnitude). */
  logY?: boolean;
  /** A horizontal reference line, e.g. the dense model's perplexity. */
  reference?: { y: number; label: string };
}

export interface Bar {
  label: string;
  /** In [0, 1]. */
  value: number;
}

const W = 420;
const H = 220;
const M = { left: 52, right: 110, top: 22, bottom: 36 };
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11"';
export const SERIES_CLASSES = 6;

const px = (v: number) => String(Math.round(v * 100) / 100);

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(a >= 1 ? 2 : 3);
}

function extent(values: number[]): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? [lo - (Math.abs(lo) || 1) * 0.1, hi + (Math.abs(hi) || 1) * 0.1] : [lo, hi];
}

interface Scale {
  at(v: number): number;
  ticks: number[];
}

function linearScale(lo: number, hi: number, from: number, to: number): Scale {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * (hi - lo));
  return { at: (v) => from + ((v - lo) / (hi - lo)) * (to - from), ticks };
}

function logScale(lo: number, hi: number, from: number, to: number): Scale {
  const [a, b] = [Math.log(Math.max(lo, 1e-9)), Math.log(Math.max(hi, 1e-9))];
  const s = linearScale(a, b === a ? a + 1 : b, from, to);
  return { at: (v) => s.at(Math.log(Math.max(v, 1e-9))), ticks: s.ticks.map(Math.exp) };
}

/** A line chart with one polyline and dots per series, axes with five ticks, and a legend on the right. */
export function lineChartSvg(chart: LineChart): string {
  const pts = chart.series.flatMap((s) => s.points);
  if (pts.length === 0) return `<p class="note">${escapeMarkup(chart.title)}: no points.</p>`;
  const ys = pts.map((p) => p.y).concat(chart.reference ? [chart.reference.y] : []);
  const [x0, x1] = extent(pts.map((p) => p.x));
  const [y0, y1] = extent(ys);
  const sx = linearScale(x0, x1, M.left, W - M.right);
  const sy = (chart.logY && y0 > 0 ? logScale : linearScale)(y0, y1, H - M.bottom, M.top);
  const body = [axes(chart, sx, sy), referenceLine(chart, sx, sy, x0, x1), ...chart.series.map((s, i) => seriesMarkup(s, i, sx, sy))].join(
    '',
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="${escapeMarkup(chart.title)}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} fill="currentColor">${body}</svg>`;
}

function axes(chart: LineChart, sx: Scale, sy: Scale): string {
  const bottom = H - M.bottom;
  const xt = sx.ticks.map((v) => `<text x="${px(sx.at(v))}" y="${bottom + 14}" text-anchor="middle">${formatNumber(v)}</text>`).join('');
  const yt = sy.ticks
    .map(
      (v) =>
        `<text x="${M.left - 4}" y="${px(sy.at(v) + 4)}" text-anchor="end">${formatNumber(v)}</text><line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${px(sy.at(v))}" y2="${px(sy.at(v))}"/>`,
    )
    .join('');
  return (
    `<text x="${M.left}" y="12" font-weight="600">${escapeMarkup(chart.title)}</text>` +
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${bottom}" y2="${bottom}"/><line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${bottom}"/>` +
    `${xt}${yt}<text x="${px((M.left + W - M.right) / 2)}" y="${H - 4}" text-anchor="middle">${escapeMarkup(chart.xLabel)}</text>` +
    `<text transform="translate(12 ${px((M.top + bottom) / 2)}) rotate(-90)" text-anchor="middle">${escapeMarkup(chart.yLabel)}${chart.logY ? ' (log)' : ''}</text>`
  );
}

function referenceLine(chart: LineChart, sx: Scale, sy: Scale, x0: number, x1: number): string {
  if (!chart.reference) return '';
  const y = px(sy.at(chart.reference.y));
  return (
    `<line class="reference" x1="${px(sx.at(x0))}" x2="${px(sx.at(x1))}" y1="${y}" y2="${y}" stroke-dasharray="4 3"/>` +
    `<text x="${W - M.right + 4}" y="${y}" class="reference-label">${escapeMarkup(chart.reference.label)}</text>`
  );
}

function seriesMarkup(s: Series, i: number, sx: Scale, sy: Scale): string {
  const cls = `series-${i % SERIES_CLASSES}`;
  const sorted = [...s.points].sort((a, b) => a.x - b.x);
  const line = sorted.map((p) => `${px(sx.at(p.x))},${px(sy.at(p.y))}`).join(' ');
  const dots = sorted
    .map(
      (p) =>
        `<circle class="${cls}" cx="${px(sx.at(p.x))}" cy="${px(sy.at(p.y))}" r="3"><title>${escapeMarkup(s.label)}: ${formatNumber(p.x)} → ${formatNumber(p.y)}</title></circle>`,
    )
    .join('');
  const legendY = M.top + 14 * i + 8;
  return (
    `<polyline class="${cls}" fill="none" stroke-width="2" points="${line}"/>${dots}` +
    `<rect class="${cls}" x="${W - M.right + 8}" y="${legendY - 8}" width="10" height="10"/><text x="${W - M.right + 22}" y="${legendY + 1}">${escapeMarkup(s.label)}</text>`
  );
}

/** Horizontal bars, one row per label, values in [0, 1] shown as percentages. */
export function barsSvg(bars: Bar[], title: string): string {
  if (bars.length === 0) return `<p class="note">${escapeMarkup(title)}: nothing to show.</p>`;
  const row = 16;
  const labelW = 170;
  const barW = 200;
  const height = 22 + bars.length * row;
  const rows = bars
    .map((b, i) => {
      const y = 20 + i * row;
      const w = Math.max(0, Math.min(1, b.value)) * barW;
      return (
        `<text x="${labelW - 6}" y="${y + 11}" text-anchor="end">${escapeMarkup(truncate(b.label, 28))}</text>` +
        `<rect class="bar-track" x="${labelW}" y="${y + 2}" width="${barW}" height="${row - 4}"/><rect class="bar" x="${labelW}" y="${y + 2}" width="${px(w)}" height="${row - 4}"><title>${escapeMarkup(b.label)}: ${(b.value * 100).toFixed(1)}%</title></rect>` +
        `<text x="${labelW + barW + 6}" y="${y + 11}">${(b.value * 100).toFixed(1)}%</text>`
      );
    })
    .join('');
  const width = labelW + barW + 60;
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" role="img" aria-label="${escapeMarkup(title)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} fill="currentColor"><text x="0" y="12" font-weight="600">${escapeMarkup(title)}</text>${rows}</svg>`;
}

function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length > max ? '…' + chars.slice(chars.length - max + 1).join('') : text;
}
