/**
 * The backward context: the gradient bookkeeping of the relevance sweep (contributions per tensor, absorbed
 * relevance per kind, weight relevance) that the rules of rules.ts write into, and the reverse sweep itself.
 */
import type { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../onnx/graph';
import { GraphBuilder } from '../onnx/builder';
import type { FloatDType } from '../onnx/tensor';
import type { ShapeTable, TensorShapeInfo } from '../onnx/shapes';
import { LrpLensError } from '../errors';
import { reads } from './patterns';
import type { ActivationRegion, ModelPatterns } from './patterns';
import type { RelevanceMode } from './mode';
import { conserves, ruleFor } from './rules';
import type { RuleContext } from './rules';
import { IO } from './ioNames';
import type { AbsorbedKind } from './ioNames';
import type { WeightOrigin } from './canonicalize';

/**
 * How per-token weight relevance is summed: `signed` Σ_t R_t (the paper's sum), or `absolute` Σ_t |R_t|,
 * which is |W| ⊙ |X|ᵀ|G| (one GEMM, like the signed sum).
 */
export type WeightAggregation = 'signed' | 'absolute';

/** A sum ±Σ x ⊙ g_x still to be recorded as absorbed (`kind`) when x's producer passes g_x on. */
interface Trace {
  kind: AbsorbedKind;
  negate: boolean;
  /** Estimated size of the traced tensor: the trace descends while the inputs are as large. */
  size: number;
}

export class Backward implements RuleContext {
  readonly b: GraphBuilder;
  private grads = new Map<string, string[]>();
  private absorbedParts = new Map<AbsorbedKind, string[]>();
  private weightParts = new Map<string, string[]>();
  private shapeReads = new Map<string, string>();
  private traces = new Map<string, Trace[]>();
  /** What the running rule passes on while a trace waits on its node: gradient pieces and absorbed totals. */
  private capture?: { grads: [string, string][]; totals: string[] };
  private uses = new Map<string, number>();
  private producers = new Map<string, OnnxNode>();
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

  /** At a cut (block-wise execution) the gradient leaves the graph and the pass goes on from the cut's seed input. */
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
    this.capture?.grads.push([t, g]);
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
    const total = this.perBatch(product, like);
    this.absorbTotal(kind, negate ? this.b.Neg(total) : total);
  }

  /** Records an already reduced [batch] total as absorbed relevance. */
  absorbTotal(kind: AbsorbedKind, perBatch: string): void {
    this.capture?.totals.push(perBatch);
    const list = this.absorbedParts.get(kind) ?? [];
    list.push(perBatch);
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

  traceRelevance(kind: AbsorbedKind, x: string, negate: boolean): boolean {
    if (!this.traceable(x)) return false;
    this.waitAt(x, { kind, negate, size: this.estimatedSize(x) });
    return true;
  }

  /** The trace goes on when x's producer runs its rule. */
  private waitAt(x: string, t: Trace): void {
    this.traces.set(x, [...(this.traces.get(x) ?? []), t]);
  }

  /** x's gradient is its one reader's, and its producer's rule conserves relevance (one relevant output). */
  private traceable(x: string): boolean {
    const p = this.producers.get(x);
    return (
      this.mode !== 'gradxinput' &&
      !!p &&
      this.relevant(x) &&
      this.uses.get(x) === 1 &&
      !this.graph.isGraphOutput(x) &&
      !this.cuts.includes(x) &&
      !this.patterns.regionOf.has(p) &&
      reads(p).some((t) => this.relevant(t)) &&
      p.outputs.filter((o) => o && this.relevant(o)).length === 1 &&
      conserves(p, (t) => this.relevant(t))
    );
  }

  /** Reverse topological sweep over the forward nodes. */
  run(forward: OnnxNode[]): void {
    for (const n of forward) {
      for (const i of n.inputs) if (i) this.uses.set(i, (this.uses.get(i) ?? 0) + 1);
      for (const o of n.outputs) if (o) this.producers.set(o, n);
    }
    const attn = this.mode !== 'gradxinput';
    for (let i = forward.length - 1; i >= 0; i--) {
      const node = forward[i];
      const gOut = node.outputs.map((o) => (this.relevant(o) ? this.gradOf(o) : undefined));
      if (gOut.every((g) => g === undefined) || !reads(node).some((x) => this.relevant(x))) continue;
      if (this.cuts.length) node.outputs.forEach((o, k) => (gOut[k] = this.throughCut(o, gOut[k])));
      const region = attn ? this.patterns.regionOf.get(node) : undefined;
      if (region) {
        if (region.outputNode === node) ruleFor(region.anchor)(this, asOneOp(region), gOut);
        continue;
      }
      const traces = node.outputs.flatMap((o) => this.traces.get(o) ?? []);
      if (traces.length) this.capture = { grads: [], totals: [] };
      ruleFor(node)(this, node, gOut);
      if (traces.length) this.passTraces(traces);
    }
  }

  /**
   * Σ y ⊙ g_y = Σ x ⊙ g_x over what the rule passed on + what it absorbed: each trace takes the rule's absorbed
   * totals and goes on into inputs as large as the traced tensor, or sums x ⊙ g_x at the smaller ones.
   */
  private passTraces(traces: Trace[]): void {
    const { grads, totals } = this.capture!;
    this.capture = undefined;
    for (const t of traces) {
      for (const total of totals) this.absorbTotal(t.kind, t.negate ? this.b.Neg(total) : total);
      for (const [x, g] of grads) {
        if (this.estimatedSize(x) >= t.size && this.traceable(x)) this.waitAt(x, t);
        else this.absorb(t.kind, this.b.Mul(x, g), x, t.negate);
      }
    }
  }

  /**
   * relevanceOf on the producer's side of a cut: x ⊙ (the cut's seed), so that block-wise execution computes it
   * with x's producer (the token relevance in the embedding's graph, not in the first block's, which then has
   * the same graph as every other block).
   */
  relevanceAbove(x: string, axes: number[]): string {
    const i = this.cuts.indexOf(x);
    const g = this.gradOf(x);
    if (i < 0 || !g) return this.relevanceOf(x, axes);
    if (!this.cutOutputs.some(([, k]) => k === i)) this.cutOutputs.push([g, i]);
    return this.b.ReduceSum(this.b.Mul(x, IO.cutSeed(i)), axes, false);
  }

  /** x ⊙ g summed over the given axes (zeros where no gradient reached x). */
  relevanceOf(x: string, axes: number[]): string {
    const g = this.gradOf(x);
    const r = g ? this.b.Mul(x, g) : this.b.Mul(x, this.scalar(0));
    return this.b.ReduceSum(r, axes, false);
  }
}

/** An activation region seen as one element-wise op from its input to its output (its anchor's op type). */
function asOneOp(region: ActivationRegion): OnnxNode {
  return { ...region.anchor, inputs: [region.input], outputs: [region.output] };
}
