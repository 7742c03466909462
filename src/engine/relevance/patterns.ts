/**
 * Structure the rules need to see: which tensors carry relevance, the normalisation statistics, the
 * element-wise activation subgraphs (erf-/tanh-GELU, SiLU), attention probabilities and values, the residual
 * stream and the MLP neurons.
 */
import type { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../onnx/graph';
import { LrpLensError } from '../errors';
import type { ShapeTable } from '../onnx/shapes';
import type { RelevanceMode } from './mode';
import { carriesRelevance, regionRole } from './rules';
import { CHUNK_PREFIX, chunkGroup } from './attentionChunks';

export interface ActivationRegion {
  /** Tensor entering the activation. */
  input: string;
  /** Tensor leaving it. */
  output: string;
  /** Node producing `output`: in the AttnLRP modes it carries the anchor's rule for the whole region. */
  outputNode: OnnxNode;
  /** The non-linearity the region grew from (its row in the rule table is the region's rule). */
  anchor: OnnxNode;
  /** Every node of the subgraph (including outputNode). */
  nodes: Set<OnnxNode>;
}

export interface ModelPatterns {
  embeddings: OnnxNode[];
  logits: string;
  relevant: Set<string>;
  normStatistics: Set<string>;
  activations: ActivationRegion[];
  regionOf: Map<OnnxNode, ActivationRegion>;
  softmaxes: OnnxNode[];
  /** Attention layers: softmaxes, counting a chunked layer's chunks (./attentionChunks.ts) once. */
  layers: number;
  /** Per layer, the node computing the attention output p·v (the chunks' Concat in a chunked layer). */
  attentionValues: OnnxNode[];
  /** Residual stream entering each block, or undefined where the structure was not recognised. */
  blockInputs?: string[];
  /** Input of each block's MLP down projection (the neurons), or undefined. */
  mlpNeurons?: string[];
}

export function findEmbeddings(g: Graph): OnnxNode[] {
  const idsTensors = new Set(['input_ids']);
  for (const n of g.nodes) {
    if ((n.opType === 'Cast' || n.opType === 'Identity') && idsTensors.has(n.inputs[0])) idsTensors.add(n.outputs[0]);
  }
  const found = g.nodes.filter((n) => n.opType === 'Gather' && idsTensors.has(n.inputs[1]) && g.initializers.has(n.inputs[0]));
  if (found.length === 0) {
    throw new LrpLensError(
      'not-causal-lm',
      'No token-embedding lookup (Gather of a weight by input_ids) was found: this ONNX graph is not a causal language model export.',
    );
  }
  return found;
}

function isSquare(g: Graph, n: OnnxNode | undefined): string | undefined {
  if (!n) return undefined;
  if (n.opType === 'Pow' && (g.constantValues(n.inputs[1]) ?? [])[0] === 2) return n.inputs[0];
  if (n.opType === 'Mul' && n.inputs[0] === n.inputs[1]) return n.inputs[0];
  return undefined;
}

/** ReduceMean(x²): the variance / mean square of LayerNorm and RMSNorm. */
export function findNormStatistics(g: Graph): Map<string, string> {
  const stats = new Map<string, string>();
  for (const n of g.nodes) {
    if (n.opType !== 'ReduceMean') continue;
    const x = isSquare(g, g.producer(n.inputs[0]));
    if (x !== undefined) stats.set(n.outputs[0], x);
  }
  return stats;
}

/**
 * Tensors a node reads: its inputs and, for control flow (If, Loop, Scan), every name its subgraphs read,
 * since a subgraph reads outer tensors by name (the rule table then refuses the node with its reason).
 */
export function reads(n: OnnxNode): string[] {
  const subgraphs = n.attributes.flatMap((a) => [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]);
  if (subgraphs.length === 0) return n.inputs;
  const names = [...n.inputs];
  const visit = (g: onnx.IGraphProto): void => {
    for (const m of g.node ?? []) {
      names.push(...(m.input ?? []));
      for (const a of m.attribute ?? []) [...(a.g ? [a.g] : []), ...(a.graphs ?? [])].forEach(visit);
    }
  };
  subgraphs.forEach(visit);
  return names;
}

export function relevantTensors(g: Graph, sources: string[], cuts: Set<string>, shapes: ShapeTable): Set<string> {
  const relevant = new Set(sources);
  for (const n of g.nodes) {
    if (!carriesRelevance(n)) continue;
    if (!reads(n).some((i) => relevant.has(i))) continue;
    for (const o of n.outputs) {
      const dtype = shapes.get(o)?.dtype;
      if (o && !cuts.has(o) && (dtype === 'float32' || dtype === 'float64' || dtype === 'float16')) relevant.add(o);
    }
  }
  return relevant;
}

export function analysePatterns(g: Graph, shapes: ShapeTable, mode: RelevanceMode): ModelPatterns {
  const embeddings = findEmbeddings(g);
  const logits = g.outputs.find((o) => o.name === 'logits')?.name ?? g.outputs[0]?.name ?? '';
  if (!logits || !shapes.has(logits)) throw new LrpLensError('not-causal-lm', 'The model has no logits output.');
  const stats = findNormStatistics(g);
  const softmaxes = g.nodes.filter((n) => n.opType === 'Softmax');
  const cuts = new Set<string>();
  if (mode !== 'gradxinput') for (const s of stats.keys()) cuts.add(s);
  if (mode === 'cp-lrp') for (const s of softmaxes) cuts.add(s.outputs[0]);
  const relevant = relevantTensors(
    g,
    embeddings.map((e) => e.outputs[0]),
    cuts,
    shapes,
  );
  if (!relevant.has(logits)) throw new LrpLensError('not-causal-lm', 'The logits do not depend on the token embeddings.');
  const order = new Map(g.nodes.map((n, i) => [n, i]));
  const activations = findActivations(g, relevant, order);
  const regionOf = new Map<OnnxNode, ActivationRegion>();
  for (const r of activations) for (const n of r.nodes) regionOf.set(n, r);
  const groups = attentionLayers(softmaxes);
  const attentionValues = groups.map((group) => attentionOutput(g, group)).filter((n): n is OnnxNode => !!n);
  const layers = groups.length;
  return {
    embeddings,
    logits,
    relevant,
    normStatistics: new Set(stats.keys()),
    activations,
    regionOf,
    softmaxes,
    layers,
    attentionValues,
    blockInputs: findBlockInputs(g, stats, relevant, layers),
    mlpNeurons: findMlpNeurons(g, activations, regionOf, relevant, layers),
  };
}

function elementwiseProducer(g: Graph, t: string): OnnxNode | undefined {
  const p = g.producer(t);
  return p && regionRole(p) ? p : undefined;
}

/** Tensors reachable backwards from `start` through element-wise ops on relevant tensors. */
function elementwiseAncestors(g: Graph, start: string, relevant: Set<string>): Set<string> {
  const seen = new Set<string>([start]);
  const stack = [start];
  while (stack.length) {
    const p = elementwiseProducer(g, stack.pop()!);
    if (!p) continue;
    for (const i of p.inputs)
      if (relevant.has(i) && !seen.has(i)) {
        seen.add(i);
        stack.push(i);
      }
  }
  return seen;
}

/** Nodes on relevant paths from `input` to `output`; undefined when some path escapes the element-wise cone. */
function nodesBetween(g: Graph, input: string, output: string, relevant: Set<string>): Set<OnnxNode> | undefined {
  const nodes = new Set<OnnxNode>();
  const stack = [output];
  const seen = new Set<string>();
  while (stack.length) {
    const t = stack.pop()!;
    if (t === input || seen.has(t)) continue;
    seen.add(t);
    const p = elementwiseProducer(g, t);
    if (!p) return undefined;
    nodes.add(p);
    for (const i of p.inputs) if (relevant.has(i)) stack.push(i);
  }
  return nodes;
}

function findActivations(g: Graph, relevant: Set<string>, order: Map<OnnxNode, number>): ActivationRegion[] {
  const regions: ActivationRegion[] = [];
  const claimed = new Set<OnnxNode>();
  for (const anchor of g.nodes) {
    if (regionRole(anchor) !== 'anchor' || claimed.has(anchor) || !relevant.has(anchor.outputs[0])) continue;
    const region = growRegion(g, anchor, relevant, order);
    for (const n of region.nodes) claimed.add(n);
    regions.push(region);
  }
  return regions;
}

/**
 * Walks forward from the non-linearity to the first node that joins it with the activation's own input
 * (x · σ(x), x · (1 + erf(x/√2)) / 2, ...), then takes trailing scalings; without such a join the
 * activation is the single op.
 */
function growRegion(g: Graph, anchor: OnnxNode, relevant: Set<string>, order: Map<OnnxNode, number>): ActivationRegion {
  const single: ActivationRegion = {
    input: anchor.inputs[0],
    output: anchor.outputs[0],
    outputNode: anchor,
    anchor,
    nodes: new Set([anchor]),
  };
  const anchorAncestors = elementwiseAncestors(g, anchor.inputs[0], relevant);
  let current = anchor.outputs[0];
  for (let step = 0; step < 6; step++) {
    const consumers = g.consumers(current);
    if (consumers.length !== 1 || !regionRole(consumers[0])) return single;
    const c = consumers[0];
    const others = c.inputs.filter((i) => i !== current && relevant.has(i));
    if (others.length === 0) {
      current = c.outputs[0];
      continue;
    }
    if (others.length !== 1 || c.opType !== 'Mul') return single;
    const common = [...elementwiseAncestors(g, others[0], relevant)].filter((t) => anchorAncestors.has(t));
    if (common.length === 0) return single;
    const input = common.reduce((best, t) => (producerIndex(g, t, order) > producerIndex(g, best, order) ? t : best));
    let output = c.outputs[0];
    let outputNode = c;
    for (;;) {
      const next = g.consumers(output);
      if (next.length !== 1 || (next[0].opType !== 'Mul' && next[0].opType !== 'Div')) break;
      // A constant scaling on either side (torch writes Mul(0.5, ·) for tanh-GELU); a divisor only below.
      if (next[0].inputs.some((i) => i !== output && relevant.has(i))) break;
      if (next[0].opType === 'Div' && next[0].inputs[0] !== output) break;
      output = next[0].outputs[0];
      outputNode = next[0];
    }
    const nodes = nodesBetween(g, input, output, relevant);
    if (!nodes || !isClosed(g, nodes, outputNode)) return single;
    return { input, output, outputNode, anchor, nodes };
  }
  return single;
}

/** Inner tensors of a region must not be read outside it, or their relevance would be lost. */
function isClosed(g: Graph, nodes: Set<OnnxNode>, outputNode: OnnxNode): boolean {
  for (const n of nodes) {
    if (n === outputNode) continue;
    for (const o of n.outputs) if (g.isGraphOutput(o) || g.consumers(o).some((c) => !nodes.has(c))) return false;
  }
  return true;
}

function producerIndex(g: Graph, t: string, order: Map<OnnxNode, number>): number {
  const p = g.producer(t);
  return p ? (order.get(p) ?? -1) : -1;
}

const ROUTING = new Set(['Cast', 'Dropout', 'Identity']);

/** Softmaxes per attention layer, in graph order; the chunks of a chunked layer are one layer. */
function attentionLayers(softmaxes: OnnxNode[]): OnnxNode[][] {
  const byKey = new Map<string, OnnxNode[]>();
  for (const s of softmaxes) {
    const key = chunkGroup(s) ?? `node:${s.name}`;
    byKey.set(key, [...(byKey.get(key) ?? []), s]);
  }
  return [...byKey.values()];
}

function attentionOutput(g: Graph, layer: OnnxNode[]): OnnxNode | undefined {
  const group = chunkGroup(layer[0]);
  if (group === undefined) return findAttentionValues(g, layer[0]);
  return g.nodes.find((n) => n.name === `${CHUNK_PREFIX}${group}/concat`);
}

function findAttentionValues(g: Graph, softmax: OnnxNode): OnnxNode | undefined {
  let t = softmax.outputs[0];
  for (let i = 0; i < 4; i++) {
    const consumers = g.consumers(t);
    const mm = consumers.find((c) => c.opType === 'MatMul' && c.inputs[0] === t);
    if (mm) return mm;
    const route = consumers.find((c) => ROUTING.has(c.opType));
    if (!route) return undefined;
    t = route.outputs[0];
  }
  return undefined;
}

/**
 * The residual stream: from the final norm's input, follow the chain of residual additions backwards
 * (the stream operand is the one read by other nodes too, the branch output is read only by the Add).
 */
function findBlockInputs(g: Graph, stats: Map<string, string>, relevant: Set<string>, layers: number): string[] | undefined {
  const statInputs = [...stats.values()];
  if (statInputs.length === 0 || layers === 0) return undefined;
  let t = normInput(g, statInputs[statInputs.length - 1]);
  const chain = [t];
  for (;;) {
    const p = g.producer(t);
    if (!p || p.opType !== 'Add' || !p.inputs.every((i) => relevant.has(i))) break;
    const [a, b] = p.inputs;
    const ca = g.consumers(a).length;
    const cb = g.consumers(b).length;
    if (ca === cb) break;
    t = ca > cb ? a : b;
    chain.push(t);
  }
  chain.reverse();
  if (chain.length === 2 * layers + 1) return chain.filter((_, i) => i % 2 === 0).slice(0, layers);
  if (chain.length === layers + 1) return chain.slice(0, layers);
  return undefined;
}

/** The tensor a normalisation reads: for LayerNorm the input of the centring Sub, for RMSNorm x itself. */
function normInput(g: Graph, squared: string): string {
  const p = g.producer(squared);
  if (p?.opType === 'Sub') return p.inputs[0];
  return squared;
}

function findMlpNeurons(
  g: Graph,
  activations: ActivationRegion[],
  regionOf: Map<OnnxNode, ActivationRegion>,
  relevant: Set<string>,
  layers: number,
): string[] | undefined {
  const outputs = new Set(activations.map((r) => r.output));
  const found: string[] = [];
  for (const n of g.nodes) {
    if (n.opType !== 'MatMul' || relevant.has(n.inputs[1])) continue;
    let x = n.inputs[0];
    let p = g.producer(x);
    // GPT-2's Conv1D reads the neurons through x.view(-1, n) (Reshape → Gemm).
    if (p && (p.opType === 'Reshape' || p.opType === 'Flatten')) {
      x = p.inputs[0];
      p = g.producer(x);
    }
    if (!p) continue;
    const isActivation = outputs.has(x);
    const isGate = p.opType === 'Mul' && !regionOf.has(p) && p.inputs.every((i) => relevant.has(i)) && p.inputs.some((i) => outputs.has(i));
    if (isActivation || isGate) found.push(x);
  }
  return found.length === layers && layers > 0 ? found : undefined;
}
