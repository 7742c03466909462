/**
 * Circuit view model → SVG strings (pure): the faithfulness curves and the circuit graph. The webview inserts
 * them, the SVG export writes them and the PNG export draws them onto a canvas. Every piece of record text is
 * escaped; colours are presentation attributes so a strict CSP still renders them.
 */
import { escapeMarkup } from '../escape';
import type { CircuitViewModel, CurvesView, GraphView } from './viewModel';
import { formatNumber, percent } from './viewModel';

export interface SvgOptions {
  /** 'inherit': text and axes use currentColor (the page's theme); 'light': dark on white (exports). */
  theme?: 'inherit' | 'light';
  width?: number;
  /** Node id drawn as pinned. */
  pinned?: string;
}

/** Okabe–Ito: distinguishable under the common colour-vision deficiencies. */
export const METHOD_COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00'];
const POSITIVE = '#b2182b';
const NEGATIVE = '#2166ac';
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11"';
const px = (v: number) => String(Math.round(v * 10) / 10);

function ink(o: SvgOptions): string {
  return o.theme === 'light' ? '#1f1f1f' : 'currentColor';
}

function wrap(width: number, height: number, body: string, o: SvgOptions, className: string): string {
  const background = o.theme === 'light' ? '<rect width="100%" height="100%" fill="#ffffff"/>' : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" class="${className}" width="${px(width)}" height="${px(height)}" viewBox="0 0 ${px(width)} ${px(height)}" ${FONT} fill="${ink(o)}">${background}${body}</svg>`;
}

/** Metric vs sparsity, one polyline per method, dense and threshold lines, each method's chosen point ringed. */
export function curvesSvg(c: CurvesView, o: SvgOptions = {}): string {
  const width = o.width ?? 560;
  const height = 260;
  const m = { left: 52, right: 120, top: 12, bottom: 36 };
  const span = c.yMax - c.yMin || 1;
  const X = (x: number) => m.left + x * (width - m.left - m.right);
  const Y = (y: number) => height - m.bottom - ((y - c.yMin) / span) * (height - m.top - m.bottom);
  const parts: string[] = [axes(c, X, Y, width, height, m, o)];
  parts.push(hline(Y(c.dense), X, 'dense', `dense ${formatNumber(c.dense)}`, o, '2 0'));
  parts.push(
    hline(Y(c.thresholdLevel), X, 'threshold', `threshold ${percent(c.threshold)} × dense = ${formatNumber(c.thresholdLevel)}`, o, '5 4'),
  );
  c.lines.forEach((line, i) =>
    parts.push(curveLine(line, METHOD_COLOURS[i % METHOD_COLOURS.length], X, Y, c.metric, width - m.right + 8, m.top + 14 * i + 8)),
  );
  return wrap(width, height, parts.join(''), o, 'curves');
}

function axes(
  c: CurvesView,
  X: (x: number) => number,
  Y: (y: number) => number,
  width: number,
  height: number,
  m: { left: number; right: number; top: number; bottom: number },
  o: SvgOptions,
): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map(
    (t) => `<text x="${px(X(t))}" y="${px(height - m.bottom + 14)}" text-anchor="middle">${t * 100}%</text>`,
  );
  const yTicks = [c.yMin, (c.yMin + c.yMax) / 2, c.yMax].map(
    (v) => `<text x="${px(m.left - 6)}" y="${px(Y(v) + 4)}" text-anchor="end">${escapeMarkup(formatNumber(v))}</text>`,
  );
  return (
    `<g class="axes" stroke="${ink(o)}" stroke-opacity="0.5"><line x1="${m.left}" y1="${px(height - m.bottom)}" x2="${px(width - m.right)}" y2="${px(height - m.bottom)}"/><line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${px(height - m.bottom)}"/></g>` +
    ticks.join('') +
    yTicks.join('') +
    `<text x="${px((m.left + width - m.right) / 2)}" y="${px(height - 4)}" text-anchor="middle">sparsity (fraction pruned)</text>` +
    `<text x="12" y="${px((m.top + height - m.bottom) / 2)}" text-anchor="middle" transform="rotate(-90 12 ${px((m.top + height - m.bottom) / 2)})">${escapeMarkup(c.metric)}</text>`
  );
}

function hline(y: number, X: (x: number) => number, className: string, title: string, o: SvgOptions, dash: string): string {
  return `<line class="${className}" x1="${px(X(0))}" y1="${px(y)}" x2="${px(X(1))}" y2="${px(y)}" stroke="${ink(o)}" stroke-opacity="0.7" stroke-dasharray="${dash}"><title>${escapeMarkup(title)}</title></line>`;
}

function curveLine(
  line: CurvesView['lines'][number],
  colour: string,
  X: (x: number) => number,
  Y: (y: number) => number,
  metric: string,
  legendX: number,
  legendY: number,
): string {
  const pts = line.points.map((p) => `${px(X(p.x))},${px(Y(p.y))}`).join(' ');
  const dots = line.points
    .map(
      (p) =>
        `<circle cx="${px(X(p.x))}" cy="${px(Y(p.y))}" r="2.5" fill="${colour}"><title>${escapeMarkup(`${line.method}: ${percent(p.x)} pruned, ${metric} ${formatNumber(p.y)} (${percent(p.retained)})`)}</title></circle>`,
    )
    .join('');
  const chosen = line.chosen
    ? `<circle class="chosen" cx="${px(X(line.chosen.x))}" cy="${px(Y(line.chosen.y))}" r="6" fill="none" stroke="${colour}" stroke-width="2"><title>${escapeMarkup(`${line.method} circuit: ${percent(line.chosen.x)} pruned, ${percent(line.chosen.retained)} kept`)}</title></circle>`
    : '';
  const label = `${line.method}${line.chosen ? ` ${percent(line.chosen.x)}` : ' (none)'}`;
  const legend = `<line x1="${px(legendX)}" y1="${px(legendY - 4)}" x2="${px(legendX + 14)}" y2="${px(legendY - 4)}" stroke="${colour}" stroke-width="${line.primary ? 3 : 1.5}"/><text x="${px(legendX + 18)}" y="${px(legendY)}">${escapeMarkup(label)}</text>`;
  return `<g class="curve" data-method="${escapeMarkup(line.method)}"><polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="${line.primary ? 2.5 : 1.5}"/>${dots}${chosen}${legend}</g>`;
}

/** Nodes by layer (embeddings at the bottom, logits at the top), radius by relevance, the top-k edges. */
export function graphSvg(g: GraphView, o: SvgOptions = {}): string {
  const width = o.width ?? 760;
  const height = Math.max(200, (2 + 4 * g.blocks) * 30 + 40);
  const left = 96;
  const pad = 18;
  const pos = new Map(g.nodes.map((n) => [n.id, { x: left + n.x * (width - left - pad), y: height - pad - n.y * (height - 2 * pad) }]));
  const colour = (r: number) => (r < 0 ? NEGATIVE : POSITIVE);
  const labels = g.rowLabels.map(
    (l) => `<text x="6" y="${px(height - pad - l.y * (height - 2 * pad) + 4)}" fill-opacity="0.75">${escapeMarkup(l.text)}</text>`,
  );
  const edges = g.edges.flatMap((e) => {
    const a = pos.get(e.source);
    const b = pos.get(e.target);
    if (!a || !b) return [];
    const title = `${e.source} → ${e.target}: ${formatNumber(e.relevance)} via ${e.weights.join(', ')}`;
    return [
      `<line class="edge" data-source="${escapeMarkup(e.source)}" data-target="${escapeMarkup(e.target)}" x1="${px(a.x)}" y1="${px(a.y)}" x2="${px(b.x)}" y2="${px(b.y)}" stroke="${colour(e.relevance)}" stroke-opacity="0.55" stroke-width="${px(0.5 + 3.5 * e.width)}"><title>${escapeMarkup(title)}</title></line>`,
    ];
  });
  const nodes = g.nodes.map((n) => {
    const p = pos.get(n.id)!;
    const pinned = n.id === o.pinned;
    return `<circle class="node${pinned ? ' pinned' : ''}" data-node="${escapeMarkup(n.id)}" tabindex="0" cx="${px(p.x)}" cy="${px(p.y)}" r="${px(2.5 + 8 * n.size)}" fill="${colour(n.relevance)}" fill-opacity="0.85" stroke="${ink(o)}" stroke-width="${pinned ? 2.5 : 0.5}"><title>${escapeMarkup(`${n.label}: relevance ${formatNumber(n.relevance)}`)}</title></circle>`;
  });
  return wrap(width, height, `${labels.join('')}<g class="edges">${edges.join('')}</g><g class="nodes">${nodes.join('')}</g>`, o, 'graph');
}

/** Title, summary, curves and graph in one standalone SVG (the SVG and PNG exports). */
export function reportSvg(vm: CircuitViewModel, o: SvgOptions = {}): string {
  const width = o.width ?? 760;
  const curves = curvesSvg(vm.curves, { ...o, width });
  const graph = graphSvg(vm.graph, { ...o, width });
  const head = 24 + 16 * (vm.summary.length + 1);
  const heightOf = (svg: string) => Number(/height="([\d.]+)"/.exec(svg)![1]);
  const total = head + heightOf(curves) + heightOf(graph) + 16;
  const text = [
    `<text x="8" y="18" font-size="14" font-weight="600">${escapeMarkup(vm.title)}</text>`,
    `<text x="8" y="36">${escapeMarkup(vm.subtitle)}</text>`,
    ...vm.summary.map((s, i) => `<text x="8" y="${52 + 16 * i}">${escapeMarkup(`${s.label}: ${s.value}`)}</text>`),
  ];
  const nest = (svg: string, y: number) => svg.replace('<svg ', `<svg x="0" y="${px(y)}" `);
  return wrap(width, total, text.join('') + nest(curves, head) + nest(graph, head + heightOf(curves) + 8), { ...o }, 'circuit-report');
}
