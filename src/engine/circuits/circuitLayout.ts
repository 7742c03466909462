/**
 * Layout and export of a circuit graph: positions in the unit square (x = component index across its row,
 * y = row, embeddings at 0 and logits at 1), JSON, and a standalone SVG (all text escaped).
 */
import { rowOf } from './circuitGraph';
import type { CircuitGraph, CircuitNode, CircuitSide, NodeKind } from './circuitGraph';

export interface NodePosition {
  x: number;
  y: number;
  row: number;
}

const KIND_ORDER: NodeKind[] = ['embed', 'q', 'k', 'v', 'z', 'head', 'resid_mid', 'mlp', 'resid', 'logits'];

/**
 * x spaces a row's components by their index over the row's full width (every side's size, q | k | v | z
 * in the attention row), so a node keeps its place when the top-k changes.
 */
export function layoutCircuitGraph(graph: CircuitGraph): Map<string, NodePosition> {
  const rows = 2 + 4 * graph.blocks;
  const offsets = sideOffsets(graph.sides);
  const out = new Map<string, NodePosition>();
  for (const n of graph.nodes) {
    const row = rowOf(n);
    const { offset, width } = offsets.get(sideKey(n)) ?? { offset: 0, width: n.index + 1 };
    out.set(n.id, { x: (offset + n.index + 0.5) / width, y: row / (rows - 1), row });
  }
  return out;
}

function sideKey(s: { kind: NodeKind; layer: number }): string {
  return `${s.kind}.${s.layer}`;
}

/** Where each side starts within its row, and the row's total width. */
function sideOffsets(sides: CircuitSide[]): Map<string, { offset: number; width: number }> {
  const byRow = new Map<number, CircuitSide[]>();
  for (const s of sides) byRow.set(rowOf(s), [...(byRow.get(rowOf(s)) ?? []), s]);
  const out = new Map<string, { offset: number; width: number }>();
  for (const row of byRow.values()) {
    row.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
    const width = row.reduce((a, s) => a + s.size, 0);
    let offset = 0;
    for (const s of row) {
      out.set(sideKey(s), { offset, width });
      offset += s.size;
    }
  }
  return out;
}

/** The graph with each node's position, as indented JSON (what circuit.json stores under "graph"). */
export function circuitGraphToJson(graph: CircuitGraph): string {
  const pos = layoutCircuitGraph(graph);
  return JSON.stringify({ ...graph, nodes: graph.nodes.map((n) => ({ ...n, ...pos.get(n.id) })) }, null, 2);
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface SvgOptions {
  width?: number;
  /** Pixels per layout row. */
  rowHeight?: number;
  title?: string;
}

// Diverging, colour-blind safe (ColorBrewer RdBu ends): positive relevance red, negative blue.
const POSITIVE = '#b2182b';
const NEGATIVE = '#2166ac';

/** A standalone SVG: rows labelled on the left, node radius and edge width by |relevance|, hover titles. */
export function circuitGraphToSvg(graph: CircuitGraph, opts: SvgOptions = {}): string {
  const width = opts.width ?? 900;
  const rows = 2 + 4 * graph.blocks;
  const height = Math.max(160, rows * (opts.rowHeight ?? 36) + 40);
  const left = 110;
  const pad = 20;
  const pos = layoutCircuitGraph(graph);
  const px = (id: string) => {
    const p = pos.get(id)!;
    return { x: left + p.x * (width - left - pad), y: height - pad - p.y * (height - 2 * pad) };
  };
  const maxNode = Math.max(1e-30, ...graph.nodes.map((n) => Math.abs(n.relevance)));
  const maxEdge = Math.max(1e-30, ...graph.edges.map((e) => Math.abs(e.relevance)));
  const colour = (r: number) => (r < 0 ? NEGATIVE : POSITIVE);
  const edges = graph.edges.map((e) => {
    const a = px(e.source);
    const b = px(e.target);
    const w = (0.5 + (3.5 * Math.abs(e.relevance)) / maxEdge).toFixed(2);
    const title = `${e.source} → ${e.target}: ${fmt(e.relevance)} via ${e.weights.join(', ')}`;
    return `<line x1="${a.x.toFixed(1)}" y1="${a.y.toFixed(1)}" x2="${b.x.toFixed(1)}" y2="${b.y.toFixed(1)}" stroke="${colour(e.relevance)}" stroke-opacity="0.6" stroke-width="${w}"><title>${escapeXml(title)}</title></line>`;
  });
  const nodes = graph.nodes.map((n) => nodeSvg(n, px(n.id), maxNode, colour(n.relevance)));
  const labels = rowLabels(graph).map(({ row, text }) => {
    const y = height - pad - (row / (rows - 1)) * (height - 2 * pad);
    return `<text x="8" y="${(y + 4).toFixed(1)}" font-size="11" fill="#555">${escapeXml(text)}</text>`;
  });
  const title = opts.title ? `<title>${escapeXml(opts.title)}</title>` : '';
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    title,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...labels,
    `<g class="edges">`,
    ...edges,
    `</g>`,
    `<g class="nodes">`,
    ...nodes,
    `</g>`,
    `</svg>`,
  ]
    .filter((l) => l !== '')
    .join('\n');
}

function nodeSvg(n: CircuitNode, p: { x: number; y: number }, maxNode: number, fill: string): string {
  const r = (2.5 + 8 * Math.sqrt(Math.abs(n.relevance) / maxNode)).toFixed(2);
  return `<circle cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="${r}" fill="${fill}" fill-opacity="0.85" stroke="#222" stroke-width="0.5"><title>${escapeXml(`${n.label}: ${fmt(n.relevance)}`)}</title></circle>`;
}

function rowLabels(graph: CircuitGraph): { row: number; text: string }[] {
  const out = [{ row: 0, text: 'embeddings' }];
  for (let l = 0; l < graph.blocks; l++) {
    out.push(
      { row: 1 + 4 * l, text: `L${l} attention` },
      { row: 2 + 4 * l, text: `L${l} resid (mid)` },
      { row: 3 + 4 * l, text: `L${l} mlp` },
      { row: 4 + 4 * l, text: `L${l} resid` },
    );
  }
  out.push({ row: 1 + 4 * graph.blocks, text: 'logits' });
  return out;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2);
}
