/**
 * The circuit graph: which kept components relevance flows through, and along which kept weights. A pure
 * function of the prunable weights, their relevance scores and the circuit mask.
 *
 * Every linear weight connects units on an input side to units on an output side. The sides, bottom to top:
 *
 *   embed (layer −1: the residual stream entering block 0)
 *   block L:  attn (q, k, v outputs and z, the attention output that o reads)   ← q/k/v/qkv read the residual
 *             resid_mid (o's output, read by up/gate/fc1)
 *             mlp (up/gate/fc1 outputs = down/fc2 inputs: the neurons)
 *             resid (down/fc2 output: the residual stream leaving block L)
 *   logits (layer N: the LM head's outputs)
 *
 * Components by granularity: `weights` and `neurons` — each unit of each side (a neuron is a unit);
 * `heads` — the attention units grouped into heads (k/v heads shared by several query heads under
 * grouped-query attention give each of them an equal share), every other side one node.
 *
 * A component is kept when some kept weight element touches it. Its relevance is the sum of the kept
 * elements' relevance into it (LRP's R_j = Σ_i R_ij), or, where no kept element writes it (the embeddings,
 * a unit whose incoming weights are all pruned), the sum out of it (R_i = Σ_j R_ij). An edge is a kept
 * element (weights, neurons) or the sum of the kept elements between two components (heads); only the top-k
 * by |relevance| are returned, largest first. At `weights` granularity the nodes are the endpoints of those
 * edges; otherwise all kept components. A weight missing from the mask is kept whole (masks list pruned
 * weights); a weight without scores, or of kind `other`, has no place in the graph and is left out.
 */
import { LrpLensError } from '../errors';
import type { LinearKind, Mask, PrunableWeight, Scores } from '../weights/types';
import { inputUnits, outputUnits } from '../weights/types';

export type Granularity = 'weights' | 'neurons' | 'heads';
export type Site = 'embed' | 'attn' | 'resid_mid' | 'mlp' | 'resid' | 'logits';
export type NodeKind = 'embed' | 'q' | 'k' | 'v' | 'z' | 'head' | 'resid_mid' | 'mlp' | 'resid' | 'logits';

export interface CircuitNode {
  /** `${kind}.${layer}.${index}`, e.g. `mlp.3.17`, `head.1.5`, `embed.-1.12`. */
  id: string;
  layer: number;
  site: Site;
  kind: NodeKind;
  index: number;
  relevance: number;
  label: string;
}

export interface CircuitEdge {
  source: string;
  target: string;
  relevance: number;
  /** The initializers the relevance flows through. */
  weights: string[];
}

/** A side of the layout: one kind of component in one layer, `size` components wide. */
export interface CircuitSide {
  kind: NodeKind;
  layer: number;
  site: Site;
  size: number;
}

export interface CircuitGraph {
  granularity: Granularity;
  /** Transformer blocks spanned (logits sit at layer = blocks). */
  blocks: number;
  nodes: CircuitNode[];
  edges: CircuitEdge[];
  sides: CircuitSide[];
}

export interface CircuitGraphInput {
  weights: readonly PrunableWeight[];
  /** Relevance per element (signed or absolute), element-aligned with each initializer. */
  scores: Scores;
  mask: Mask;
  granularity: Granularity;
  topK: number;
  /** Units per attention head; required for granularity `heads`. */
  headSize?: number;
}

const SITE_ORDER: Site[] = ['attn', 'resid_mid', 'mlp', 'resid'];
const ATTN_KIND_ORDER: NodeKind[] = ['q', 'k', 'v', 'z', 'head'];

interface Endpoint {
  kind: NodeKind;
  layer: number;
  site: Site;
}

/** A side registered in the component index space: components [base, base + size). */
interface Slot extends CircuitSide {
  base: number;
}

export function buildCircuitGraph(input: CircuitGraphInput): CircuitGraph {
  checkInput(input);
  const weights = input.weights.filter((w) => input.scores.has(w.name) && w.kind !== 'other');
  const blocks = Math.max(0, ...weights.map((w) => (w.layer ?? -1) + 1));
  const ends = weights.map((w) => weightEnds(w, blocks));
  const space = new ComponentSpace(
    input.granularity,
    input.headSize ?? 1,
    ends.flatMap((e) => [e.from, ...e.to]),
  );
  const acc = new Accumulator(space.total, input.topK, input.granularity === 'heads');
  weights.forEach((w, i) => accumulateWeight(w, space.plan(ends[i]), input, acc));
  return assemble(input.granularity, blocks, space, acc);
}

function checkInput(input: CircuitGraphInput): void {
  if (!Number.isInteger(input.topK) || input.topK < 0) throw bad(`topK must be a non-negative integer (got ${input.topK}).`);
  if (input.granularity === 'heads' && !(Number.isInteger(input.headSize) && input.headSize! > 0)) {
    throw bad(
      'The heads granularity needs the head size (units per attention head); pass headSize from the model config (hidden size ÷ heads).',
    );
  }
  for (const w of input.weights) {
    const size = w.dims[0] * w.dims[1];
    const s = input.scores.get(w.name);
    if (s && s.length !== size)
      throw bad(`Scores of ${w.name} hold ${s.length} values, but the weight has ${size} (${w.dims.join('×')}); score every element.`);
    const m = input.mask.get(w.name);
    if (m && m.keep.length !== size)
      throw bad(
        `The mask of ${w.name} holds ${m.keep.length} values, but the weight has ${size} (${w.dims.join('×')}); the mask belongs to another model.`,
      );
  }
}

/** One side of a weight: where its units sit and how many there are. */
interface End extends Endpoint {
  units: number;
}

/** The input side and the output sides (three for a fused qkv) of a weight. */
function weightEnds(w: PrunableWeight, blocks: number): { from: End; to: End[] } {
  const L = w.layer ?? blocks;
  const nIn = inputUnits(w);
  const nOut = outputUnits(w);
  const residAfter = (l: number): End =>
    l < 0 ? { kind: 'embed', layer: -1, site: 'embed', units: nIn } : { kind: 'resid', layer: l, site: 'resid', units: nIn };
  const at = (kind: NodeKind, site: Site, units: number, layer = L): End => ({ kind, layer, site, units });
  switch (w.kind as Exclude<LinearKind, 'other'>) {
    case 'q':
    case 'k':
    case 'v':
      return { from: residAfter(L - 1), to: [at(w.kind as NodeKind, 'attn', nOut)] };
    case 'qkv': // GPT-2's c_attn: outputs [q | k | v], a third each
      return { from: residAfter(L - 1), to: (['q', 'k', 'v'] as const).map((k) => at(k, 'attn', nOut / 3)) };
    case 'o':
      return { from: at('z', 'attn', nIn), to: [at('resid_mid', 'resid_mid', nOut)] };
    case 'up':
    case 'gate':
    case 'fc1':
      return { from: at('resid_mid', 'resid_mid', nIn), to: [at('mlp', 'mlp', nOut)] };
    case 'down':
    case 'fc2':
      return { from: at('mlp', 'mlp', nIn), to: [{ ...residAfter(L), units: nOut }] };
    case 'lm_head':
    case 'embed':
      return { from: residAfter(blocks - 1), to: [at('logits', 'logits', nOut, blocks)] };
  }
}

/** How one weight's units map to component indices. */
interface WeightPlan {
  inComponent: (unit: number) => number;
  /** The first output component of a unit, and how many consecutive components share its relevance. */
  outComponent: (unit: number) => number;
  outSpread: number;
}

/** All sides of the graph, each a range [base, base + size) of one index space of components. */
class ComponentSpace {
  readonly slots = new Map<string, Slot>();
  readonly total: number;

  constructor(
    readonly granularity: Granularity,
    readonly headSize: number,
    ends: End[],
  ) {
    const sizes = new Map<string, { end: Endpoint; size: number }>();
    for (const e of ends) {
      const key = this.key(e);
      sizes.set(key, { end: e, size: Math.max(sizes.get(key)?.size ?? 0, this.size(e)) });
    }
    let base = 0;
    for (const [key, { end, size }] of sizes) {
      this.slots.set(key, { kind: this.kindOf(end), layer: end.layer, site: end.site, size, base });
      base += size;
    }
    this.total = base;
  }

  plan(ends: { from: End; to: End[] }): WeightPlan {
    const from = this.unitMap(ends.from);
    if (ends.to.length === 3) {
      const third = ends.to[0].units;
      const parts = ends.to.map((e) => this.unitMap(e));
      return { inComponent: from, outComponent: (u) => parts[Math.floor(u / third)](u % third), outSpread: 1 };
    }
    const to = ends.to[0];
    const spread = to.kind === 'k' || to.kind === 'v' ? this.kvSpread(to) : 1;
    const slot = this.slots.get(this.key(to))!;
    const map = this.unitMap(to);
    return { inComponent: from, outComponent: spread === 1 ? map : (u) => slot.base + (map(u) - slot.base) * spread, outSpread: spread };
  }

  /**
   * Under grouped-query attention a k/v head serves (query heads ÷ kv heads) query heads; at `heads`
   * granularity they share its relevance equally.
   */
  private kvSpread(e: End): number {
    if (this.granularity !== 'heads') return 1;
    const heads = this.slots.get(this.key(e))!.size;
    const kvHeads = Math.ceil(e.units / this.headSize);
    return heads > kvHeads && heads % kvHeads === 0 ? heads / kvHeads : 1;
  }

  private unitMap(e: End): (unit: number) => number {
    const slot = this.slots.get(this.key(e))!;
    if (slot.kind === 'head') return (u) => slot.base + Math.floor(u / this.headSize);
    if (this.granularity === 'heads') return () => slot.base;
    return (u) => slot.base + u;
  }

  private kindOf(e: Endpoint): NodeKind {
    return this.granularity === 'heads' && e.site === 'attn' ? 'head' : e.kind;
  }

  private key(e: Endpoint): string {
    return `${this.kindOf(e)}.${e.layer}`;
  }

  private size(e: End): number {
    if (this.kindOf(e) === 'head') return Math.ceil(e.units / this.headSize);
    return this.granularity === 'heads' ? 1 : e.units;
  }

  describe(component: number): Slot & { index: number } {
    for (const s of this.slots.values()) if (component >= s.base && component < s.base + s.size) return { ...s, index: component - s.base };
    throw new Error(`component ${component} lies outside every side`);
  }
}

interface EdgeCandidate {
  source: number;
  target: number;
  relevance: number;
  weights: string[];
}

/** Sums node relevance over kept elements and collects the strongest edges. */
class Accumulator {
  readonly inSum: Float64Array;
  readonly outSum: Float64Array;
  readonly hasIn: Uint8Array;
  readonly touched: Uint8Array;
  private candidates: EdgeCandidate[] = [];
  private readonly aggregated = new Map<number, EdgeCandidate>();

  constructor(
    readonly total: number,
    readonly topK: number,
    /** Sum elements between the same two components into one edge (heads) instead of one edge per element. */
    readonly aggregate: boolean,
  ) {
    this.inSum = new Float64Array(total);
    this.outSum = new Float64Array(total);
    this.hasIn = new Uint8Array(total);
    this.touched = new Uint8Array(total);
  }

  add(source: number, target: number, relevance: number, weight: string): void {
    this.outSum[source] += relevance;
    this.inSum[target] += relevance;
    this.hasIn[target] = 1;
    this.touched[source] = 1;
    this.touched[target] = 1;
    if (this.aggregate) this.addAggregated(source, target, relevance, weight);
    else this.addCandidate({ source, target, relevance, weights: [weight] });
  }

  private addAggregated(source: number, target: number, relevance: number, weight: string): void {
    const key = source * this.total + target;
    const e = this.aggregated.get(key);
    if (!e) this.aggregated.set(key, { source, target, relevance, weights: [weight] });
    else {
      e.relevance += relevance;
      if (!e.weights.includes(weight)) e.weights.push(weight);
    }
  }

  /** Keeps at most 2k candidates between prunings, so millions of elements need little memory. */
  private addCandidate(e: EdgeCandidate): void {
    if (this.topK === 0) return;
    this.candidates.push(e);
    if (this.candidates.length >= 2 * this.topK + 1024) this.candidates = strongest(this.candidates, this.topK);
  }

  edges(): EdgeCandidate[] {
    return strongest(this.aggregate ? [...this.aggregated.values()] : this.candidates, this.topK);
  }
}

/** The k largest by |relevance|, largest first; ties keep the order of arrival (weights, then elements). */
function strongest(edges: EdgeCandidate[], k: number): EdgeCandidate[] {
  return edges
    .map((e, i) => ({ e, i }))
    .sort((a, b) => Math.abs(b.e.relevance) - Math.abs(a.e.relevance) || a.i - b.i)
    .slice(0, k)
    .map(({ e }) => e);
}

function accumulateWeight(w: PrunableWeight, plan: WeightPlan, input: CircuitGraphInput, acc: Accumulator): void {
  const scores = input.scores.get(w.name)!;
  const keep = input.mask.get(w.name)?.keep;
  const cols = w.dims[1];
  for (let e = 0; e < scores.length; e++) {
    if (keep && !keep[e]) continue;
    const row = Math.floor(e / cols);
    const col = e - row * cols;
    const [out, inp] = w.outAxis === 1 ? [col, row] : [row, col];
    const source = plan.inComponent(inp);
    const first = plan.outComponent(out);
    const share = scores[e] / plan.outSpread;
    for (let k = 0; k < plan.outSpread; k++) acc.add(source, first + k, share, w.name);
  }
}

function assemble(granularity: Granularity, blocks: number, space: ComponentSpace, acc: Accumulator): CircuitGraph {
  const chosen = acc.edges();
  const components =
    granularity === 'weights'
      ? new Set(chosen.flatMap((e) => [e.source, e.target]))
      : new Set([...acc.touched.keys()].filter((c) => acc.touched[c]));
  const nodeOf = new Map([...components].map((c) => [c, componentNode(c, granularity, space, acc)]));
  const edges = chosen.map((e) => ({
    source: nodeOf.get(e.source)!.id,
    target: nodeOf.get(e.target)!.id,
    relevance: e.relevance,
    weights: e.weights,
  }));
  const sides = [...space.slots.values()].map(({ kind, layer, site, size }) => ({ kind, layer, site, size }));
  const nodes = [...nodeOf.values()].sort((a, b) => rowOf(a) - rowOf(b) || kindRank(a.kind) - kindRank(b.kind) || a.index - b.index);
  return { granularity, blocks, nodes, edges, sides };
}

function componentNode(c: number, granularity: Granularity, space: ComponentSpace, acc: Accumulator): CircuitNode {
  const s = space.describe(c);
  const relevance = acc.hasIn[c] ? acc.inSum[c] : acc.outSum[c];
  return {
    id: `${s.kind}.${s.layer}.${s.index}`,
    layer: s.layer,
    site: s.site,
    kind: s.kind,
    index: s.index,
    relevance,
    label: nodeLabel(s.kind, s.layer, s.index, granularity),
  };
}

function kindRank(kind: NodeKind): number {
  const i = ATTN_KIND_ORDER.indexOf(kind);
  return i < 0 ? 0 : i;
}

function nodeLabel(kind: NodeKind, layer: number, index: number, granularity: Granularity): string {
  const whole = granularity === 'heads' && kind !== 'head';
  if (kind === 'embed') return whole ? 'embeddings' : `embed ${index}`;
  if (kind === 'logits') return whole ? 'logits' : `logit ${index}`;
  return whole ? `L${layer} ${kind}` : `L${layer} ${kind} ${index}`;
}

/** Row of a node in the layout: 0 = embeddings, then four rows per block (attn, resid_mid, mlp, resid), logits on top. */
export function rowOf(n: { layer: number; site: Site }): number {
  if (n.site === 'embed') return 0;
  if (n.site === 'logits') return 1 + 4 * n.layer;
  return 1 + 4 * n.layer + SITE_ORDER.indexOf(n.site);
}

function bad(message: string): LrpLensError {
  return new LrpLensError('bad-argument', message);
}
