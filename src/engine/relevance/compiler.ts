/**
 * The relevance compiler: canonical graph + probed shapes → one ONNX graph computing the forward pass and
 * the relevance pass (reverse-mode over the graph with the AttnLRP modifications of rules.ts).
 */
import type { onnx } from 'onnx-proto';
import { Graph, inputSpecs } from '../onnx/graph';
import type { InputSpec } from '../onnx/graph';
import type { OnnxNode } from '../onnx/graph';
import { GraphBuilder, valueInfo } from '../onnx/builder';
import type { DType, FloatDType } from '../onnx/tensor';
import { LrpLensError } from '../errors';
import type { ShapeTable, TensorShapeInfo } from '../runtime/probe';
import { analysePatterns } from './patterns';
import type { ModelPatterns, RelevanceMode } from './patterns';
import { identityRule, ruleFor } from './rules';
import type { AbsorbedKind, RuleContext } from './rules';
import type { WeightOrigin } from './canonicalize';

/** Names of the compiled graph's extra inputs and outputs (stable; documented in the README). */
export const IO = {
  targetIds: 'lrp_target_ids',
  targetWeights: 'lrp_target_weights',
  foilIds: 'lrp_foil_ids',
  foilWeights: 'lrp_foil_weights',
  seed: 'lrp_seed',
  tokens: 'lrp_tokens',
  layers: 'lrp_layers',
  heads: 'lrp_heads',
  neurons: 'lrp_neurons',
  absorbed: (k: AbsorbedKind) => `lrp_absorbed_${k}`,
  weight: (initializer: string) => `lrp_weight/${initializer}`,
  /** Block-wise execution: the gradient arriving at cut `i` (an output) and the one sent upstream from it (an input). */
  cutGrad: (i: number) => `lrp_cut_grad/${i}`,
  cutSeed: (i: number) => `lrp_cut_seed/${i}`,
} as const;

export const ABSORBED_KINDS: AbsorbedKind[] = ['bias', 'constant', 'softmax', 'stabiliser'];

export interface CompileOptions {
  mode?: RelevanceMode;
  /** Emit per-weight relevance (summed over batch and tokens) for these initializers, or all linear weights. */
  weightRelevance?: boolean | string[];
  /**
   * How per-token weight relevance is summed: `signed` Σ_t R_t (the paper's sum), or `absolute` Σ_t |R_t|,
   * which is |W| ⊙ |X|ᵀ|G| (one GEMM, like the signed sum).
   */
  weightAggregation?: WeightAggregation;
  /**
   * Block-wise execution (relevance/blocks.ts): residual-stream tensors at which the relevance pass is cut. The
   * gradient arriving at cut i leaves as output `lrp_cut_grad/i`, and the pass upstream of it reads input
   * `lrp_cut_seed/i` instead, so the pass splits into independent pieces, one per block.
   */
  cuts?: string[];
}

export type WeightAggregation = 'signed' | 'absolute';

export interface CompiledInfo {
  mode: RelevanceMode;
  dtype: FloatDType;
  layers: number;
  heads: number | null;
  neurons: number | null;
  vocabSize: number;
  outputs: string[];
  weightOutputs: Record<string, string>;
  /** The compiled graph's inputs (names, types, symbolic dims), so callers can feed it without reading it. */
  inputs: InputSpec[];
  /**
   * How batches must be padded. onnxruntime's GroupQueryAttention (and so its rewrite) masks padding only at the
   * end of a row (seqlens_k) and rotates from position 0, so genai exports are right-padded; others left-padded.
   */
  padding: 'left' | 'right';
  warnings: string[];
}

export interface CompileResult {
  graph: Graph;
  info: CompiledInfo;
}

class Backward implements RuleContext {
  readonly b: GraphBuilder;
  private grads = new Map<string, string[]>();
  private absorbedParts = new Map<AbsorbedKind, string[]>();
  private weightParts = new Map<string, string[]>();
  private shapeReads = new Map<string, string>();
  /** Shape nodes to be moved next to the producer of their input. */
  readonly hoisted = new Set<OnnxNode>();

  constructor(
    readonly graph: Graph,
    readonly shapes: ShapeTable,
    readonly patterns: ModelPatterns,
    readonly mode: RelevanceMode,
    readonly dtype: FloatDType,
    private readonly origins: Map<string, WeightOrigin>,
    private readonly wantWeights: (initializer: string) => boolean,
    private readonly weightAggregation: WeightAggregation = 'signed',
    private readonly cuts: string[] = [],
  ) {
    this.b = new GraphBuilder(graph, 'lrp');
  }

  /** (gradient, cut index) of each cut the pass went through. */
  readonly cutOutputs: [string, number][] = [];

  /** At a cut the gradient leaves the graph and the pass goes on from the cut's seed input. */
  private throughCut(t: string, g: string | undefined): string | undefined {
    const i = this.cuts.indexOf(t);
    if (g === undefined || i < 0) return g;
    this.cutOutputs.push([g, i]);
    return IO.cutSeed(i);
  }

  get opset(): number {
    return this.graph.opset;
  }
  relevant(t: string): boolean {
    return this.patterns.relevant.has(t);
  }
  isInitializer(t: string): boolean {
    return this.graph.initializers.has(t);
  }
  constantValues(t: string): number[] | undefined {
    return this.graph.constantValues(t);
  }

  info(t: string): TensorShapeInfo {
    const s = this.shapes.get(t);
    if (s) return s;
    const init = this.graph.initializers.get(t);
    if (init) return { dtype: this.dtype, dims: (init.dims ?? []).map(Number), batchAxis: -1 };
    throw new LrpLensError('unsupported-graph', `No shape is known for tensor '${t}'.`);
  }

  rank(t: string): number {
    return this.info(t).dims.length;
  }
  staticDims(t: string): (number | null)[] {
    return this.info(t).dims;
  }
  scalar(v: number): string {
    return this.b.scalar(this.dtype, v);
  }

  shapeOf(t: string): string {
    const hit = this.shapeReads.get(t);
    if (hit) return hit;
    const out = this.b.Shape(t);
    this.hoisted.add(this.graph.nodes[this.graph.nodes.length - 1]);
    this.shapeReads.set(t, out);
    return out;
  }

  addGrad(t: string, g: string): void {
    if (!this.relevant(t)) return;
    const list = this.grads.get(t) ?? [];
    list.push(g);
    this.grads.set(t, list);
  }

  /** Total gradient of a tensor (contributions summed once, then cached). */
  gradOf(t: string): string | undefined {
    const list = this.grads.get(t);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const total = this.b.op('Sum', list);
      this.grads.set(t, [total]);
      return total;
    }
    return list[0];
  }

  unbroadcast(g: string, input: string, output: string): string {
    const xs = this.staticDims(input);
    const os = this.staticDims(output);
    const lead = os.length - xs.length;
    const axes: number[] = [];
    for (let i = 0; i < lead; i++) axes.push(i);
    xs.forEach((d, i) => {
      if (d === 1 && os[i + lead] !== 1) axes.push(i + lead);
    });
    if (axes.length === 0) return g;
    const reduced = this.b.ReduceSum(g, axes, true);
    return lead > 0 ? this.b.Reshape(reduced, this.shapeOf(input)) : reduced;
  }

  reduceStaticBroadcast(g: string, input: string, output: string): string {
    const xs = this.staticDims(input);
    const os = this.staticDims(output);
    const lead = os.length - xs.length;
    const axes: number[] = [];
    os.forEach((d, i) => {
      const x = i >= lead ? xs[i - lead] : 1;
      if (d !== null && d !== 1 && x === 1) axes.push(i);
    });
    return axes.length ? this.b.ReduceSum(g, axes, true) : g;
  }

  estimatedSize(t: string): number {
    return this.staticDims(t).reduce<number>((a, d) => a * (d ?? 512), 1);
  }

  /** Σ over all axes but the batch axis of `like`'s layout → [batch]. */
  perBatch(t: string, like: string): string {
    const info = this.info(like);
    const axes = info.dims.map((_, i) => i).filter((i) => i !== info.batchAxis);
    if (info.batchAxis < 0 && info.dims.length > 0 && info.dims[0] === null) {
      // Rows flattened to [batch·sequence, n] (GPT-2's Conv1D as Gemm): batch-major, so [batch, -1] regroups them.
      const rows = this.b.Reshape(t, this.b.op('Concat', [this.batchShape(), this.b.ints([-1])], { axis: 0 }));
      return this.b.ReduceSum(rows, [1], false);
    }
    if (info.batchAxis < 0) {
      const total = this.b.ReduceSum(t, axes, false);
      return this.b.op('Expand', [total, this.batchShape()]);
    }
    return axes.length ? this.b.ReduceSum(t, axes, false) : t;
  }

  batchShape(): string {
    return this.b.op('Gather', [this.b.Shape('input_ids'), this.b.ints([0])]);
  }

  absorb(kind: AbsorbedKind, product: string, like: string, negate = false): void {
    const list = this.absorbedParts.get(kind) ?? [];
    const total = this.perBatch(product, like);
    list.push(negate ? this.b.Neg(total) : total);
    this.absorbedParts.set(kind, list);
  }

  absorbed(kind: AbsorbedKind): string {
    const list = this.absorbedParts.get(kind) ?? [];
    if (list.length === 0) return this.b.op('ConstantOfShape', [this.batchShape()], { value: this.zero() });
    return list.length === 1 ? this.b.op('Identity', list) : this.b.op('Sum', list);
  }

  zero(): onnx.ITensorProto {
    return this.graph.initializers.get(this.b.constant(this.dtype, [1], [0], 'zero'))!;
  }

  weightRelevance(node: OnnxNode, g: string): void {
    const w = node.inputs[1];
    const origin = this.origins.get(w);
    if (!origin || !this.wantWeights(origin.initializer)) return;
    const [k, n] = this.staticDims(w);
    const x2 = this.b.Reshape(node.inputs[0], this.b.ints([-1, k ?? 0]));
    const g2 = this.b.Reshape(g, this.b.ints([-1, n ?? 0]));
    const abs = this.weightAggregation === 'absolute';
    const magnitude = (t: string) => (abs ? this.b.op('Abs', [t]) : t);
    let r = this.b.Mul(this.b.op('Gemm', [magnitude(x2), magnitude(g2)], { transA: 1 }), magnitude(w));
    if (origin.transposed) r = this.b.Transpose(r, [1, 0]);
    const list = this.weightParts.get(origin.initializer) ?? [];
    list.push(r);
    this.weightParts.set(origin.initializer, list);
  }

  weightOutputs(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [init, parts] of this.weightParts) out.set(init, parts.length === 1 ? parts[0] : this.b.op('Sum', parts));
    return out;
  }

  /** Reverse topological sweep over the forward nodes. */
  run(forward: OnnxNode[]): void {
    const attn = this.mode !== 'gradxinput';
    for (let i = forward.length - 1; i >= 0; i--) {
      const node = forward[i];
      const gOut = node.outputs.map((o) => (this.relevant(o) ? this.gradOf(o) : undefined));
      if (gOut.every((g) => g === undefined) || !node.inputs.some((x) => this.relevant(x))) continue;
      if (this.cuts.length) node.outputs.forEach((o, k) => (gOut[k] = this.throughCut(o, gOut[k])));
      const region = attn ? this.patterns.regionOf.get(node) : undefined;
      if (region) {
        if (region.outputNode === node) identityRule(this, region.input, region.output, gOut[0]!);
        continue;
      }
      ruleFor(node)(this, node, gOut);
    }
  }

  /** x ⊙ g summed over the given axes (zeros where no gradient reached x). */
  relevanceOf(x: string, axes: number[]): string {
    const g = this.gradOf(x);
    const r = g ? this.b.Mul(x, g) : this.b.Mul(x, this.scalar(0));
    return this.b.ReduceSum(r, axes, false);
  }
}

export function compileRelevance(
  graph: Graph,
  shapes: ShapeTable,
  origins: Map<string, WeightOrigin>,
  options: CompileOptions = {},
): CompileResult {
  const mode = options.mode ?? 'attnlrp';
  const patterns = analysePatterns(graph, shapes, mode);
  const logitsInfo = shapes.get(patterns.logits)!;
  const dtype = logitsInfo.dtype;
  if (dtype !== 'float32' && dtype !== 'float64') {
    throw new LrpLensError('unsupported-graph', `Logits of type ${dtype} are not supported yet; use the fp32 export of the model.`);
  }
  const vocab = logitsInfo.dims[logitsInfo.dims.length - 1];
  if (vocab === null || logitsInfo.dims.length !== 3)
    throw new LrpLensError('not-causal-lm', 'Logits must have shape [batch, sequence, vocabulary].');
  const forward = [...graph.nodes];
  const want = options.weightRelevance;
  const wantWeights = (init: string) => (Array.isArray(want) ? want.includes(init) : !!want);
  const ctx = new Backward(graph, shapes, patterns, mode, dtype, origins, wantWeights, options.weightAggregation, options.cuts);
  const b = ctx.b;
  const warnings: string[] = [];

  // Seed: ∂(Σ_s w_s·logit[s, t_s] − w'_s·logit[s, f_s]) / ∂logits. A negative target id means "the model's
  // top-1 prediction at that position".
  const top1 = b.op('ArgMax', [patterns.logits], { axis: -1, keepdims: 0 });
  const targets = b.op('Where', [b.op('Less', [IO.targetIds, b.constant('int64', [], [0])]), top1, IO.targetIds]);
  const weightsOf = (w: string) => b.op('Unsqueeze', [w, b.ints([-1])]);
  const pick = (ids: string) => b.op('Squeeze', [b.op('GatherElements', [patterns.logits, weightsOf(ids)], { axis: 2 }), b.ints([-1])]);
  const seed = b.ReduceSum(b.Sub(b.Mul(IO.targetWeights, pick(targets)), b.Mul(IO.foilWeights, pick(IO.foilIds))), [1], false);
  const head = lmHead(graph, patterns.logits, origins);
  if (head && !wantWeights(head.initializer) && ctx.rank(head.hidden) === 3) {
    // The seed gradient at the LM head input is a weighted pick of the head's rows: no [batch, seq, vocab]
    // one-hot and no vocabulary-sized backward GEMM.
    ctx.addGrad(
      head.hidden,
      b.Sub(b.Mul(weightsOf(IO.targetWeights), head.rows(b, targets)), b.Mul(weightsOf(IO.foilWeights), head.rows(b, IO.foilIds))),
    );
    if (head.bias && mode !== 'gradxinput') {
      const biasShare = b.Sub(
        b.Mul(IO.targetWeights, b.op('Gather', [head.bias, targets])),
        b.Mul(IO.foilWeights, b.op('Gather', [head.bias, IO.foilIds])),
      );
      ctx.absorb('bias', biasShare, IO.targetWeights);
    }
  } else {
    const vocabRange = b.constant(
      'int64',
      [vocab],
      Array.from({ length: vocab }, (_, i) => i),
      'vocab_range',
    );
    const oneHot = (ids: string, weights: string) => b.Mul(b.Cast(b.op('Equal', [weightsOf(ids), vocabRange]), dtype), weightsOf(weights));
    ctx.addGrad(patterns.logits, b.Sub(oneHot(targets, IO.targetWeights), oneHot(IO.foilIds, IO.foilWeights)));
  }
  ctx.run(forward);

  const outputs: [string, string, DType, (number | string)[]][] = [];
  const rename = (from: string, to: string, shape: (number | string)[]) => {
    b.graph.nodes.push({ name: `${to}/identity`, opType: 'Identity', domain: '', inputs: [from], outputs: [to], attributes: [] });
    outputs.push([to, to, dtype, shape]);
  };
  rename(seed, IO.seed, ['batch']);
  const tokenParts = patterns.embeddings.map((e) => ctx.relevanceOf(e.outputs[0], [-1]));
  rename(tokenParts.length === 1 ? tokenParts[0] : b.op('Sum', tokenParts), IO.tokens, ['batch', 'sequence']);

  const stack = (parts: string[]) =>
    b.op(
      'Concat',
      parts.map((p) => b.op('Unsqueeze', [p, b.ints([0])])),
      { axis: 0 },
    );
  const layers = patterns.softmaxes.length;
  if (patterns.blockInputs)
    rename(stack(patterns.blockInputs.map((h) => ctx.relevanceOf(h, [-1]))), IO.layers, [layers, 'batch', 'sequence']);
  else warnings.push('Residual-stream structure not recognised: per-layer relevance is not available for this model.');

  let heads: number | null = null;
  const av = patterns.attentionValues;
  if (av.length === layers && layers > 0 && av.every((n) => ctx.rank(n.outputs[0]) === 4)) {
    heads = ctx.staticDims(av[0].outputs[0])[1];
    rename(stack(av.map((n) => ctx.relevanceOf(n.outputs[0], [-1]))), IO.heads, [layers, 'batch', heads ?? 'heads', 'sequence']);
  } else warnings.push('Attention heads not recognised: per-head relevance is not available for this model.');

  let neurons: number | null = null;
  if (patterns.mlpNeurons && patterns.mlpNeurons.every((t) => ctx.rank(t) === 3)) {
    neurons = ctx.staticDims(patterns.mlpNeurons[0])[2];
    rename(stack(patterns.mlpNeurons.map((t) => ctx.relevanceOf(t, [1]))), IO.neurons, [layers, 'batch', neurons ?? 'neurons']);
  } else warnings.push('MLP layers not recognised: per-neuron relevance is not available for this model.');

  if (mode !== 'gradxinput') for (const k of ABSORBED_KINDS) rename(ctx.absorbed(k), IO.absorbed(k), ['batch']);

  const weightOutputs: Record<string, string> = {};
  for (const [init, t] of ctx.weightOutputs()) {
    const dims = (graph.initializers.get(init)?.dims ?? []).map(Number);
    rename(t, IO.weight(init), dims);
    weightOutputs[init] = IO.weight(init);
  }

  const cutShape = (t: string) => ctx.staticDims(t).map((d, i) => d ?? `cut_d${i}`);
  for (const [g, i] of ctx.cutOutputs) rename(g, IO.cutGrad(i), cutShape(options.cuts![i]));

  const logitsVi = graph.outputs.find((o) => o.name === patterns.logits)!;
  graph.outputs = [logitsVi, ...outputs.map(([, name, dt, shape]) => valueInfo(name, dt, shape))];
  graph.inputs.push(
    valueInfo(IO.targetIds, 'int64', ['batch', 'sequence']),
    valueInfo(IO.targetWeights, dtype, ['batch', 'sequence']),
    valueInfo(IO.foilIds, 'int64', ['batch', 'sequence']),
    valueInfo(IO.foilWeights, dtype, ['batch', 'sequence']),
    ...(options.cuts ?? []).map((t, i) => valueInfo(IO.cutSeed(i), dtype, cutShape(t))),
  );
  hoistShapes(graph, ctx.hoisted);
  graph.invalidate();
  pruneDeadNodes(graph);
  return {
    graph,
    info: {
      mode,
      dtype,
      layers,
      heads,
      neurons,
      vocabSize: vocab,
      outputs: graph.outputs.map((o) => o.name ?? ''),
      weightOutputs,
      inputs: inputSpecs(graph.inputs),
      padding: 'left',
      warnings,
    },
  };
}

/** Drops nodes no output depends on (the KV-cache outputs, unused shape arithmetic). */
function pruneDeadNodes(graph: Graph): void {
  const needed = new Set(graph.outputs.map((o) => o.name ?? ''));
  const keep: OnnxNode[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep.push(n);
    for (const inp of n.inputs) needed.add(inp);
  }
  graph.nodes = keep.reverse();
  graph.sortTopologically();
  for (const name of [...graph.initializers.keys()]) if (!needed.has(name)) graph.initializers.delete(name);
  graph.inputs = graph.inputs.filter((i) => needed.has(i.name ?? '') || (i.name ?? '').startsWith('lrp_') || i.name === 'input_ids');
}

interface LmHead {
  hidden: string;
  initializer: string;
  bias?: string;
  /** Rows of the head for token ids [batch, seq] → [batch, seq, hidden]. */
  rows(b: GraphBuilder, ids: string): string;
}

/** logits = h·W (+ b) with a constant W: the usual LM head (W may be the transposed, tied embedding). */
function lmHead(graph: Graph, logits: string, origins: Map<string, WeightOrigin>): LmHead | undefined {
  let p = graph.producer(logits);
  let bias: string | undefined;
  if (p?.opType === 'Add') {
    bias = p.inputs.find((i) => graph.initializers.has(i) && (graph.initializers.get(i)!.dims ?? []).length === 1);
    const mm = p.inputs.find((i) => i !== bias);
    p = bias && mm ? graph.producer(mm) : undefined;
  }
  if (p?.opType !== 'MatMul') return undefined;
  const origin = origins.get(p.inputs[1]);
  if (!origin) return undefined;
  const w = origin.initializer;
  const rows = origin.transposed
    ? (b: GraphBuilder, ids: string) => b.op('Gather', [w, ids], { axis: 0 })
    : (b: GraphBuilder, ids: string) => b.Transpose(b.op('Gather', [w, ids], { axis: 1 }), [1, 2, 0]);
  return { hidden: p.inputs[0], initializer: w, bias, rows };
}

/**
 * onnxruntime runs nodes in graph order and frees a tensor after its last reader: a Shape read placed among
 * the relevance nodes would keep a large forward activation alive to the end. Place each right after the
 * node producing its input.
 */
function hoistShapes(graph: Graph, hoisted: Set<OnnxNode>): void {
  const byInput = new Map<string, OnnxNode[]>();
  for (const n of hoisted) byInput.set(n.inputs[0], [...(byInput.get(n.inputs[0]) ?? []), n]);
  const early = [...hoisted].filter((n) => !graph.producer(n.inputs[0]));
  const order: OnnxNode[] = [...early];
  for (const n of graph.nodes) {
    if (hoisted.has(n)) continue;
    order.push(n);
    for (const o of n.outputs) order.push(...(byInput.get(o) ?? []));
  }
  graph.nodes = order;
  graph.invalidate();
}
