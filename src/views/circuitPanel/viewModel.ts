/**
 * The circuit panel's view model: a pure function of circuit.json's record and the UI state (edges shown,
 * pinned node). The webview and the exports render it; nothing here computes relevance.
 */
import type { CircuitRecord, CircuitSample } from '../../engine/circuits/discover';
import type { CircuitEdge } from '../../engine/circuits/circuitGraph';

export interface CurveLine {
  method: string;
  /** x = achieved sparsity (0..1), y = task metric, in sweep order. */
  points: { x: number; y: number; retained: number }[];
  chosen?: { x: number; y: number; retained: number };
  /** The circuit shown (the record's own method). */
  primary: boolean;
}

export interface CurvesView {
  metric: string;
  lines: CurveLine[];
  dense: number;
  /** threshold × dense: the level a circuit must keep. */
  thresholdLevel: number;
  threshold: number;
  yMin: number;
  yMax: number;
}

export interface GraphNodeView {
  id: string;
  label: string;
  layer: number;
  relevance: number;
  x: number;
  y: number;
  /** 0..1: √(|relevance| / max) for the radius. */
  size: number;
}

export interface GraphEdgeView extends CircuitEdge {
  /** 0..1: |relevance| / max over the edges shown. */
  width: number;
}

export interface GraphView {
  granularity: string;
  blocks: number;
  nodes: GraphNodeView[];
  edges: GraphEdgeView[];
  /** Edges in the record (the slider's maximum). */
  totalEdges: number;
  topK: number;
  rowLabels: { y: number; text: string }[];
}

export interface PinnedView {
  node: GraphNodeView;
  incoming: GraphEdgeView[];
  outgoing: GraphEdgeView[];
  /** Held-out samples the circuit does best (largest circuit metric first). */
  samples: CircuitSample[];
}

export interface CircuitViewModel {
  title: string;
  subtitle: string;
  summary: { label: string; value: string }[];
  curves: CurvesView;
  graph: GraphView;
  pinned?: PinnedView;
}

export interface CircuitViewOptions {
  title?: string;
  topK?: number;
  pinned?: string;
  /** Samples listed for a pinned node. */
  samples?: number;
}

/** A node as circuit.json stores it: the view's fields but its size. */
type RecordNode = Omit<GraphNodeView, 'size'>;
type RecordEdge = CircuitEdge;

export const DEFAULT_TOP_K = 20;

export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return v.toFixed(Math.abs(v) >= 100 ? 1 : 3);
}

export const percent = (v: number) => `${(v * 100).toFixed(1)}%`;

export function buildCircuitViewModel(record: CircuitRecord, options: CircuitViewOptions = {}): CircuitViewModel {
  const graph = graphView(record, options.topK);
  const node = options.pinned ? graph.nodes.find((n) => n.id === options.pinned) : undefined;
  return {
    title: options.title ?? `Circuit: ${record.task.name}`,
    subtitle: `${record.method} · ${record.granularity} · ranking ${record.ranking} · ${record.model}`,
    summary: summaryRows(record),
    curves: curvesView(record),
    graph,
    pinned: node ? pinnedView(node, graph, record.samples ?? [], options.samples ?? 5) : undefined,
  };
}

function summaryRows(r: CircuitRecord): { label: string; value: string }[] {
  const rows = [
    { label: 'sparsity', value: `${percent(r.circuit.sparsity)} pruned (${r.granularity})` },
    {
      label: r.task.metric,
      value: `${formatNumber(r.circuit.metric)} vs dense ${formatNumber(r.dense.metric)} (${percent(r.circuit.retained)} kept; threshold ${percent(r.threshold)})`,
    },
    { label: 'samples', value: `${r.task.train} train, ${r.task.heldOut} held out` },
    ...faithfulnessRows(r),
  ];
  if (r.dense.perplexity !== null && r.circuit.perplexity !== null)
    rows.push({ label: 'control perplexity', value: `${formatNumber(r.dense.perplexity)} → ${formatNumber(r.circuit.perplexity)}` });
  return rows;
}

/** In-template and out-of-template faithfulness side by side (records from before the split have neither). */
function faithfulnessRows(r: CircuitRecord): { label: string; value: string }[] {
  const f = r.faithfulness;
  if (!f) return [];
  const cell = (x: { retained: number; samples: number } | null) => (x ? `${percent(x.retained)} kept (${x.samples} prompts)` : '–');
  const rows = [
    { label: 'in-template', value: cell(f.inTemplate) },
    { label: 'out-of-template', value: cell(f.outOfTemplate) },
  ];
  if (f.heldOutTask) rows.push({ label: 'other prompts', value: `${cell(f.heldOutTask)} — ${f.heldOutTask.path}` });
  if (r.stability?.resamples)
    rows.push({
      label: 'stability',
      value: `${percent(r.stability.consistent)} of kept ${r.granularity} chosen in ≥ 90% of ${r.stability.resamples} resamples`,
    });
  return rows;
}

export function curvesView(r: CircuitRecord): CurvesView {
  const lines: CurveLine[] = r.curves.map((c) => ({
    method: c.method,
    points: c.points.map((p) => ({ x: p.achieved, y: p.metric, retained: p.retained })),
    chosen: c.chosen ? { x: c.chosen.achieved, y: c.chosen.metric, retained: c.chosen.retained } : undefined,
    primary: c.method === r.method,
  }));
  const thresholdLevel = r.threshold * r.dense.metric;
  const ys = [0, r.dense.metric, thresholdLevel, ...lines.flatMap((l) => l.points.map((p) => p.y))].filter(Number.isFinite);
  return {
    metric: r.task.metric,
    lines,
    dense: r.dense.metric,
    threshold: r.threshold,
    thresholdLevel,
    yMin: Math.min(...ys),
    yMax: Math.max(...ys),
  };
}

/** The record's edges are sorted by |relevance|, largest first; the first k are shown. */
export function graphView(r: CircuitRecord, topK = DEFAULT_TOP_K): GraphView {
  const g = r.graph as { granularity?: string; blocks?: number; nodes?: RecordNode[]; edges?: RecordEdge[] };
  const allEdges = [...(g.edges ?? [])].sort((a, b) => Math.abs(b.relevance) - Math.abs(a.relevance));
  const k = Math.max(0, Math.min(Math.floor(topK), allEdges.length));
  const shown = allEdges.slice(0, k);
  const maxEdge = Math.max(1e-30, ...shown.map((e) => Math.abs(e.relevance)));
  const nodes = g.nodes ?? [];
  const maxNode = Math.max(1e-30, ...nodes.map((n) => Math.abs(n.relevance)));
  const blocks = g.blocks ?? 0;
  return {
    granularity: g.granularity ?? r.granularity,
    blocks,
    nodes: nodes.map((n) => ({
      id: n.id,
      label: n.label,
      layer: n.layer,
      relevance: n.relevance,
      x: n.x,
      y: n.y,
      size: Math.sqrt(Math.abs(n.relevance) / maxNode),
    })),
    edges: shown.map((e) => ({ ...e, width: Math.abs(e.relevance) / maxEdge })),
    totalEdges: allEdges.length,
    topK: k,
    rowLabels: rowLabels(blocks),
  };
}

function rowLabels(blocks: number): { y: number; text: string }[] {
  const rows = 2 + 4 * blocks;
  const at = (row: number) => row / Math.max(1, rows - 1);
  const out = [{ y: at(0), text: 'embeddings' }];
  for (let l = 0; l < blocks; l++) out.push({ y: at(1 + 4 * l), text: `L${l} attention` }, { y: at(3 + 4 * l), text: `L${l} mlp` });
  out.push({ y: at(rows - 1), text: 'logits' });
  return out;
}

function pinnedView(node: GraphNodeView, graph: GraphView, samples: CircuitSample[], count: number): PinnedView {
  return {
    node,
    incoming: graph.edges.filter((e) => e.target === node.id),
    outgoing: graph.edges.filter((e) => e.source === node.id),
    samples: [...samples].sort((a, b) => b.circuit - a.circuit).slice(0, count),
  };
}
