/**
 * The relevance rule table (OPS, at the end) is the one place that defines an op: one row per ONNX op type
 * with its equation, its rule, its exact derivative (element-wise ops), whether it carries relevance and its
 * role in activation regions. Each rule receives the modified gradient g of the seed w.r.t. the node's
 * outputs and emits, with ONNX nodes, the gradient w.r.t. each relevant input.
 * Relevance of a tensor x is x ⊙ g_x (AttnLRP "efficient" form, Achtibat et al. 2024, ε → 0):
 *
 * - linear ops (MatMul/Gemm with a weight, Add, Sub, routing ops): plain gradient, which is the ε-rule
 *   R_x = x ⊙ (R/z)·Wᵀ of Eq. (LRP-ε); the bias share b ⊙ g is absorbed.
 * - products of two relevant tensors (SwiGLU gate, Q·Kᵀ, A·V): uniform rule, gradient halved (AttnLRP Eq. 9/10).
 * - element-wise non-linearities: identity rule, g_x = g_y · y / x (AttnLRP Prop. 3.1 for GELU/SiLU).
 * - Softmax: plain gradient, R_x = x ⊙ (R − s·ΣR) (AttnLRP Eq. 8); the difference ΣR_out − ΣR_in is absorbed.
 * - normalisation statistics: treated as constants (cut in patterns.ts), so LayerNorm is the ε-rule through
 *   (x − mean)·γ/σ and RMSNorm the identity.
 *
 * In `gradxinput` mode every rule is the exact derivative (tested against finite differences).
 */
import type { OnnxNode } from '../onnx/graph';
import { attrFloat, attrInt, attrInts } from '../onnx/graph';
import { unsupported } from '../errors';
import type { GraphBuilder } from '../onnx/builder';
import type { FloatDType } from '../onnx/tensor';
import type { RelevanceMode } from './mode';
import type { AbsorbedKind } from './ioNames';

export interface RuleContext {
  b: GraphBuilder;
  mode: RelevanceMode;
  dtype: FloatDType;
  relevant(t: string): boolean;
  rank(t: string): number;
  staticDims(t: string): (number | null)[];
  isInitializer(t: string): boolean;
  constantValues(t: string): number[] | undefined;
  opset: number;
  /** Adds a gradient contribution to a relevant tensor (ignored for non-relevant ones). */
  addGrad(t: string, g: string): void;
  /** Sums g over the axes along which `input` was broadcast to `output`. */
  unbroadcast(g: string, input: string, output: string): string;
  /** Records Σ(t) per batch item (−Σ(t) when `negate`) as relevance absorbed at this node. */
  absorb(kind: AbsorbedKind, product: string, like: string, negate?: boolean): void;
  /**
   * Records ±Σ x ⊙ g_x (the relevance that reaches x) as absorbed without forming x ⊙ g_x: it is summed where
   * x's own producers pass it on to smaller tensors (conservation, OpRow.conserves). False where x cannot be
   * traced (x must be read once, by the calling rule, and made by a conserving op); the rule then sums it itself.
   */
  traceRelevance(kind: AbsorbedKind, x: string, negate: boolean): boolean;
  /** Sums g over the static axes along which `input` was broadcast (dynamic axes such as batch stay). */
  reduceStaticBroadcast(g: string, input: string, output: string): string;
  /** Estimated element count of a tensor (dynamic axes counted as 512). */
  estimatedSize(t: string): number;
  scalar(v: number): string;
  /** Shape(t), computed right after t is produced so that t is not kept alive just for its shape. */
  shapeOf(t: string): string;
  /** The weight-relevance hook for a MatMul with a constant weight. */
  weightRelevance(node: OnnxNode, g: string): void;
}

export type Rule = (ctx: RuleContext, node: OnnxNode, gOut: (string | undefined)[]) => void;

const uniform = (ctx: RuleContext) => ctx.mode !== 'gradxinput';

/** 0.5·g for each factor of a product of two relevant tensors (uniform rule); plain g otherwise. */
function shareOf(ctx: RuleContext, g: string, both: boolean): string {
  return both && uniform(ctx) ? ctx.b.Mul(g, ctx.scalar(0.5)) : g;
}

/**
 * A non-relevant operand made safe to multiply by a gradient: ±inf (masks) clipped to the largest finite
 * value, so −inf·0 gives 0 rather than NaN. Constants known to be finite are used as they are.
 */
function finite(ctx: RuleContext, c: string): string {
  const values = ctx.isInitializer(c) && ctx.estimatedSize(c) <= 1 << 16 ? ctx.constantValues(c) : undefined;
  if (values && values.every(Number.isFinite)) return c;
  const big = ctx.dtype === 'float64' ? Number.MAX_VALUE : 3.4028234663852886e38;
  return ctx.b.op('Clip', [c, ctx.scalar(-big), ctx.scalar(big)]);
}

/** Absorbed share c ⊙ g of a non-relevant operand, reduced over its static broadcast axes first (cheap). */
function absorbOperand(ctx: RuleContext, kind: AbsorbedKind, c: string, g: string, out: string, negate = false): void {
  const share = ctx.b.Mul(finite(ctx, c), ctx.reduceStaticBroadcast(g, c, out));
  ctx.absorb(kind, share, out, negate);
}

const add: Rule = (ctx, n, [g]) => {
  const [a, b] = n.inputs;
  for (const [x, sign] of [
    [a, 1],
    [b, n.opType === 'Sub' ? -1 : 1],
  ] as const) {
    if (ctx.relevant(x)) {
      const gx = sign < 0 ? ctx.b.Neg(g!) : g!;
      ctx.addGrad(x, ctx.unbroadcast(gx, x, n.outputs[0]));
    } else if (uniform(ctx)) {
      absorbOperand(ctx, ctx.isInitializer(x) ? 'bias' : 'constant', x, g!, n.outputs[0], sign < 0);
    }
  }
};

const mul: Rule = (ctx, n, [g]) => {
  const [a, b] = n.inputs;
  const both = ctx.relevant(a) && ctx.relevant(b);
  const gs = shareOf(ctx, g!, both);
  if (ctx.relevant(a)) ctx.addGrad(a, ctx.unbroadcast(ctx.b.Mul(gs, b), a, n.outputs[0]));
  if (ctx.relevant(b)) ctx.addGrad(b, ctx.unbroadcast(ctx.b.Mul(gs, a), b, n.outputs[0]));
};

/** A relevant denominator is a normaliser in AttnLRP (constant); its exact derivative in gradxinput. */
const div: Rule = (ctx, n, [g]) => {
  const [a, b] = n.inputs;
  if (ctx.relevant(a)) ctx.addGrad(a, ctx.unbroadcast(ctx.b.Div(g!, b), a, n.outputs[0]));
  if (ctx.relevant(b) && ctx.mode === 'gradxinput') {
    const gb = ctx.b.Neg(ctx.b.Div(ctx.b.Mul(g!, n.outputs[0]), b));
    ctx.addGrad(b, ctx.unbroadcast(gb, b, n.outputs[0]));
  }
};

const same: Rule = (ctx, n, [g]) => ctx.addGrad(n.inputs[0], g!);
const neg: Rule = (ctx, n, [g]) => ctx.addGrad(n.inputs[0], ctx.b.Neg(g!));

const cast: Rule = (ctx, n, [g]) => ctx.addGrad(n.inputs[0], ctx.b.Cast(g!, ctx.dtype));

/**
 * Identity rule for an element-wise non-linearity y = f(x): R_x = R_y, i.e. g_x = g_y·y/x, with x
 * stabilised away from zero (x ± ε); the relevance the stabiliser drops is reported as absorbed.
 */
function identityRule(ctx: RuleContext, x: string, y: string, g: string): void {
  const stab = ctx.b.Add(x, ctx.b.op('Where', [ctx.b.op('Less', [x, ctx.scalar(0)]), ctx.scalar(-1e-6), ctx.scalar(1e-6)]));
  const gx = ctx.b.Div(ctx.b.Mul(g, y), stab);
  ctx.addGrad(x, gx);
  // y·g − x·g_x = g_x·(stab − x): the same loss without two products of the size of y that nearly cancel.
  ctx.absorb('stabiliser', ctx.b.Mul(gx, ctx.b.Sub(stab, x)), y);
}

/** f′(x) of an element-wise op y = f(x), built from x and y (and the node's attributes). */
export type Derivative = (ctx: RuleContext, x: string, y: string, n: OnnxNode) => string;

/** Identity rule (AttnLRP) or the exact derivative (gradxinput) of an element-wise op of one relevant input. */
const elementwise: Rule = (ctx, n, [g]) => {
  const x = n.inputs[0];
  const y = n.outputs[0];
  if (ctx.mode !== 'gradxinput') return identityRule(ctx, x, y, g!);
  const d = rowOf(n.opType)?.derivative;
  if (!d) throw unsupported(n, `${n.opType} has no exact derivative in gradxinput mode`);
  ctx.addGrad(x, ctx.b.Mul(g!, d(ctx, x, y, n)));
};

function swapLast(ctx: RuleContext, t: string): string {
  const r = ctx.rank(t);
  const perm = Array.from({ length: r }, (_, i) => i);
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return ctx.b.Transpose(t, perm);
}

/** z = a·b. Weight input: ε-rule (plain gradient) via Gemm(transB), no weight copy. Two relevant: uniform. */
const matmul: Rule = (ctx, n, [g]) => {
  const [a, w] = n.inputs;
  const z = n.outputs[0];
  if (ctx.rank(a) < 2 || ctx.rank(w) < 2) throw unsupported(n, 'MatMul with a 1-D operand');
  const both = ctx.relevant(a) && ctx.relevant(w);
  if (ctx.relevant(a) && !ctx.relevant(w) && ctx.rank(w) === 2) {
    const n2 = ctx.staticDims(w)[1];
    const g2 = ctx.b.Reshape(g!, ctx.b.ints([-1, n2 ?? 0]));
    const ga = ctx.b.op('Gemm', [g2, w], { transB: 1 });
    ctx.addGrad(a, ctx.b.Reshape(ga, ctx.shapeOf(a)));
    ctx.weightRelevance(n, g!);
    return;
  }
  // Halve g once when it is the smaller tensor (A·V), else halve the two results (Q·Kᵀ, where g is [s, s]).
  const halveFirst = ctx.estimatedSize(z) <= ctx.estimatedSize(a) + ctx.estimatedSize(w);
  const gs = halveFirst ? shareOf(ctx, g!, both) : g!;
  const after = (t: string) => (halveFirst ? t : shareOf(ctx, t, both));
  if (ctx.relevant(a)) ctx.addGrad(a, ctx.unbroadcast(after(ctx.b.MatMul(gs, swapLast(ctx, w))), a, z));
  if (ctx.relevant(w)) ctx.addGrad(w, ctx.unbroadcast(after(ctx.b.MatMul(swapLast(ctx, a), gs)), w, z));
};

/** R_x = x ⊙ (R − s·ΣR): the gradient s ⊙ (g − Σ s g); what does not reach x is the softmax's absorption. */
const softmax: Rule = (ctx, n, [g]) => {
  const x = n.inputs[0];
  const s = n.outputs[0];
  let axis = attrInt(n, 'axis', -1);
  if (axis < 0) axis += ctx.rank(x);
  const rowSums = ctx.b.ReduceSum(ctx.b.Mul(s, g!), [axis], true);
  const gx = ctx.b.Mul(s, ctx.b.Sub(g!, rowSums));
  ctx.addGrad(x, gx);
  if (!uniform(ctx)) return;
  ctx.absorb('softmax', rowSums, s);
  // −Σx⊙g_x: traced down to Q and K (no [heads, T, T] product), else Σ log(s)⊙g_x, equal because
  // x = log s + c per row and Σ g_x = 0 per row, so the scores x need not be kept alive for the budget.
  if (ctx.traceRelevance('softmax', x, true)) return;
  const logS = ctx.b.op('Log', [ctx.b.op('Max', [s, ctx.scalar(ctx.dtype === 'float64' ? 1e-300 : 1e-38)])]);
  ctx.absorb('softmax', ctx.b.Mul(logS, gx), s, true);
};

const reshapeBack: Rule = (ctx, n, [g]) => ctx.addGrad(n.inputs[0], ctx.b.Reshape(g!, ctx.shapeOf(n.inputs[0])));

const transpose: Rule = (ctx, n, [g]) => {
  const r = ctx.rank(n.inputs[0]);
  const perm = attrInts(n, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
  const inverse = new Array<number>(r);
  perm.forEach((p, i) => (inverse[p] = i));
  ctx.addGrad(n.inputs[0], ctx.b.Transpose(g!, inverse));
};

const expand: Rule = (ctx, n, [g]) => ctx.addGrad(n.inputs[0], ctx.unbroadcast(g!, n.inputs[0], n.outputs[0]));

function normAxis(ctx: RuleContext, axis: number, t: string): number {
  return axis < 0 ? axis + ctx.rank(t) : axis;
}

/** Size of `t` along `axis` as a 1-element int64 tensor (a constant when static). */
function sizeAlong(ctx: RuleContext, t: string, axis: number): string {
  const d = ctx.staticDims(t)[axis];
  return d !== null && d !== undefined ? ctx.b.ints([d]) : ctx.b.op('Gather', [ctx.shapeOf(t), ctx.b.ints([axis])]);
}

const concat: Rule = (ctx, n, [g]) => {
  const axis = normAxis(ctx, attrInt(n, 'axis', 0), n.outputs[0]);
  let start = ctx.b.ints([0]);
  for (const x of n.inputs) {
    const end = ctx.b.Add(start, sizeAlong(ctx, x, axis));
    const piece = ctx.b.op('Slice', [g!, start, end, ctx.b.ints([axis])]);
    if (ctx.relevant(x)) ctx.addGrad(x, piece);
    else if (uniform(ctx) && ctx.staticDims(x).every((d) => d !== 0))
      ctx.absorb('constant', ctx.b.Mul(finite(ctx, x), piece), n.outputs[0]);
    start = end;
  }
};

const split: Rule = (ctx, n, gOut) => {
  const x = n.inputs[0];
  const axis = normAxis(ctx, attrInt(n, 'axis', 0), x);
  const parts = n.outputs.map((o, i) => gOut[i] ?? ctx.b.op('ConstantOfShape', [ctx.shapeOf(o)], { value: zeroTensor(ctx) }));
  ctx.addGrad(x, ctx.b.op('Concat', parts, { axis }));
};

function zeroTensor(ctx: RuleContext) {
  const name = ctx.b.constant(ctx.dtype, [1], [0], 'zero');
  return ctx.b.graph.initializers.get(name)!;
}

/**
 * Slice adjoint: the gradient goes back to the positions it was read from, zeros elsewhere. Axes with step 1
 * pad it back; a strided axis (x[s:e:k], k ≠ 1, e.g. x[..., ::2] of interleaved rotary) scatters it to the
 * indices Range(s, e, k).
 */
const slice: Rule = (ctx, n, [g]) => {
  const x = n.inputs[0];
  const r = ctx.rank(x);
  const [, starts, ends, axesIn, stepsIn] = n.inputs;
  const axes = axesIn ? ctx.constantValues(axesIn) : undefined;
  if (axesIn && !axes) throw unsupported(n, 'Slice with computed axes on a relevant tensor');
  const axisList = (axes ?? Array.from({ length: r }, (_, i) => i)).map((a) => (a < 0 ? a + r : a));
  const steps = stepsIn ? ctx.constantValues(stepsIn) : axisList.map(() => 1);
  if (!steps) throw unsupported(n, 'Slice with computed steps on a relevant tensor');
  const zero = ctx.b.ints([0]);
  const begins: string[] = Array(r).fill(zero);
  const endsPad: string[] = Array(r).fill(zero);
  let gx = g!;
  axisList.forEach((axis, k) => {
    const dim = sizeAlong(ctx, x, axis);
    if (steps[k] !== 1) {
      gx = scatterAlong(ctx, gx, r, axis, dim, stridedIndices(ctx, starts, ends, k, steps[k], dim));
      return;
    }
    const s = clampIndex(ctx, ctx.b.op('Gather', [starts, ctx.b.ints([k])]), dim);
    const e = clampIndex(ctx, ctx.b.op('Gather', [ends, ctx.b.ints([k])]), dim);
    begins[axis] = s;
    endsPad[axis] = ctx.b.Sub(dim, ctx.b.op('Max', [e, s]));
  });
  if (steps.every((s) => s !== 1)) return ctx.addGrad(x, gx);
  ctx.addGrad(x, ctx.b.op('Pad', [gx, ctx.b.op('Concat', [...begins, ...endsPad], { axis: 0 })]));
};

/**
 * The indices x[s:e:k] reads along axis number k of the Slice, clamped as Slice clamps them: into [0, dim] for
 * k > 0; for k < 0 the start into [0, dim − 1] and the end into [−1, dim − 1].
 */
function stridedIndices(ctx: RuleContext, starts: string, ends: string, k: number, step: number, dim: string): string {
  const { b } = ctx;
  const scalar = (t: string) => b.op('Squeeze', [t]);
  const start = b.op('Gather', [starts, b.ints([k])]);
  const end = b.op('Gather', [ends, b.ints([k])]);
  if (step > 0) return b.op('Range', [scalar(clampIndex(ctx, start, dim)), scalar(clampIndex(ctx, end, dim)), scalar(b.ints([step]))]);
  const last = b.Sub(dim, b.ints([1]));
  const wrap = (i: string) => b.op('Where', [b.op('Less', [i, b.ints([0])]), b.Add(i, dim), i]);
  const s = b.op('Min', [b.op('Max', [wrap(start), b.ints([0])]), last]);
  const e = b.op('Min', [b.op('Max', [wrap(end), b.ints([-1])]), last]);
  return b.op('Range', [scalar(s), scalar(e), scalar(b.ints([step]))]);
}

/** g (rank r) scattered along `axis` into zeros of size `dim` there: g's slot j goes to index idx[j]. */
function scatterAlong(ctx: RuleContext, g: string, r: number, axis: number, dim: string, idx: string): string {
  const { b } = ctx;
  const shape = b.Shape(g);
  const before = b.op('Slice', [shape, b.ints([0]), b.ints([axis])]);
  const after = b.op('Slice', [shape, b.ints([axis + 1]), b.ints([r])]);
  const zeros = b.op('ConstantOfShape', [b.op('Concat', [before, dim, after], { axis: 0 })], { value: zeroTensor(ctx) });
  const column = b.Reshape(idx, b.ints(Array.from({ length: r }, (_, i) => (i === axis ? -1 : 1))));
  return b.op('ScatterElements', [zeros, b.op('Expand', [column, shape]), g], { axis });
}

/** Python-style index normalisation used by Slice: negative from the end, clamped to [0, dim]. */
function clampIndex(ctx: RuleContext, i: string, dim: string): string {
  const wrapped = ctx.b.op('Where', [ctx.b.op('Less', [i, ctx.b.ints([0])]), ctx.b.Add(i, dim), i]);
  return ctx.b.op('Min', [ctx.b.op('Max', [wrapped, ctx.b.ints([0])]), dim]);
}

/** Gather with a scalar constant index on a relevant tensor: the adjoint pads the slot back. */
const gather: Rule = (ctx, n, [g]) => {
  const [x, idx] = n.inputs;
  const values = ctx.constantValues(idx);
  if (!values || values.length !== 1 || ctx.rank(idx) !== 0)
    throw unsupported(n, 'Gather with non-scalar or computed indices on a relevant tensor');
  const axis = normAxis(ctx, attrInt(n, 'axis', 0), x);
  const r = ctx.rank(x);
  const dim = sizeAlong(ctx, x, axis);
  const i = clampIndex(ctx, ctx.b.ints([values[0]]), dim);
  const zero = ctx.b.ints([0]);
  const begins: string[] = Array(r).fill(zero);
  const endsPad: string[] = Array(r).fill(zero);
  begins[axis] = i;
  endsPad[axis] = ctx.b.Sub(ctx.b.Sub(dim, i), ctx.b.ints([1]));
  const unsq = ctx.b.op('Unsqueeze', [g!, ctx.b.ints([axis])]);
  ctx.addGrad(x, ctx.b.op('Pad', [unsq, ctx.b.op('Concat', [...begins, ...endsPad], { axis: 0 })]));
};

const where: Rule = (ctx, n, [g]) => {
  const [cond, a, b] = n.inputs;
  const zero = ctx.scalar(0);
  const branches: [string, string][] = [
    [a, ctx.b.op('Where', [cond, g!, zero])],
    [b, ctx.b.op('Where', [cond, zero, g!])],
  ];
  for (const [x, gx] of branches) {
    if (ctx.relevant(x)) ctx.addGrad(x, ctx.unbroadcast(gx, x, n.outputs[0]));
    else if (uniform(ctx)) absorbOperand(ctx, 'constant', x, gx, n.outputs[0]);
  }
};

/** ReduceSum/ReduceMean of a relevant tensor (not a normalisation statistic): spread g back. */
const reduce: Rule = (ctx, n, [g]) => {
  const x = n.inputs[0];
  const r = ctx.rank(x);
  const axesIn = n.opType === 'ReduceSum' || ctx.opset >= 18 ? n.inputs[1] : undefined;
  let axes = axesIn ? ctx.constantValues(axesIn) : attrInts(n, 'axes');
  if (axesIn && !axes) throw unsupported(n, `${n.opType} with computed axes on a relevant tensor`);
  if (!axes || axes.length === 0) axes = Array.from({ length: r }, (_, i) => i);
  const keep = attrInt(n, 'keepdims', 1);
  let gx = keep ? g! : ctx.b.op('Unsqueeze', [g!, ctx.b.ints(axes.map((a) => (a < 0 ? a + r : a)))]);
  gx = ctx.b.op('Expand', [gx, ctx.shapeOf(x)]);
  if (n.opType === 'ReduceMean') {
    const ratio = ctx.b.Div(ctx.b.Cast(ctx.b.op('Size', [n.outputs[0]]), ctx.dtype), ctx.b.Cast(ctx.b.op('Size', [x]), ctx.dtype));
    gx = ctx.b.Mul(gx, ratio);
  }
  ctx.addGrad(x, gx);
};

const refuse =
  (why: string): Rule =>
  (_ctx, n) => {
    throw unsupported(n, why);
  };

/** 1 where `cond` holds, 0 elsewhere, in the graph's float type. */
const indicator = (c: RuleContext, cond: string) => c.b.Cast(cond, c.dtype);
const alpha = (n: OnnxNode, fallback: number) => attrFloat(n, 'alpha', fallback);

/**
 * One row per ONNX op type (default domain; other domains are rewritten by canonicalize.ts or refused).
 * Canonicalisation runs first, so ops it always rewrites (Gemm, Gelu, LayerNormalization over negative axes,
 * the com.microsoft fusions) have no row.
 */
export interface OpRow {
  /** The forward equation the rule differentiates. */
  eq: string;
  /** How the gradient flows back; 'none' where the outputs never carry relevance (integer, boolean, shape). */
  rule: Rule | 'none';
  /** Exact f′(x) of an element-wise op y = f(x), which `elementwise` uses in gradxinput. */
  derivative?: Derivative;
  /**
   * Role in an activation region (patterns.ts): an 'anchor' (a non-linearity) starts one, 'inner' ops may join
   * it (x·σ(x), x·(1 + erf(x/√2))/2). In the AttnLRP modes a region is one op from its input to its output,
   * with its anchor's rule; in gradxinput each of its nodes takes its own row.
   */
  region?: 'anchor' | 'inner';
  /**
   * In the AttnLRP modes Σ y ⊙ g_y equals Σ x ⊙ g_x over the relevant inputs plus what the rule absorbs, so
   * relevance entering y can be summed at the inputs (Backward.traceRelevance). Div: with a relevant numerator.
   */
  conserves?: true;
  /** Opsets (13 or later, see MIN_OPSET) at which the op's definition changes in a way the rule reads; tested at each. */
  opsets?: number[];
}

/** An element-wise activation: identity rule in AttnLRP, f′ in gradxinput; anchors an activation region. */
const activation = (eq: string, derivative: Derivative): OpRow => ({ eq, rule: elementwise, derivative, region: 'anchor' });
/** Another element-wise function of one relevant input: identity rule / f′; may sit inside a region. */
const pointwise = (eq: string, derivative: Derivative): OpRow => ({ eq, rule: elementwise, derivative, region: 'inner' });
const noRelevance = (eq: string): OpRow => ({ eq, rule: 'none' });

/** The oldest default-domain opset the compiler accepts: its emitted graph uses opset-13 Squeeze/Unsqueeze/ReduceSum. */
export const MIN_OPSET = 13;

const SELU_ALPHA = 1.67326319217681884765625;
const SELU_GAMMA = 1.05070102214813232421875;

export const OPS: Readonly<Record<string, OpRow>> = {
  // Linear in the relevant inputs: plain gradient (ε-rule); non-relevant operands are absorbed.
  Add: { eq: 'y = a + b', rule: add, region: 'inner', conserves: true },
  Sub: { eq: 'y = a − b', rule: add, region: 'inner', conserves: true },
  Neg: { eq: 'y = −x', rule: neg, region: 'inner', conserves: true },
  MatMul: { eq: 'y = a·b (weight b: ε-rule; both relevant: uniform, ½ each)', rule: matmul, conserves: true },
  ReduceSum: { eq: 'y = Σ_axes x', rule: reduce, conserves: true },
  ReduceMean: { eq: 'y = Σ_axes x / n (axes an input from opset 18)', rule: reduce, opsets: [13, 18], conserves: true },
  // Products.
  Mul: { eq: 'y = a ⊙ b (both relevant: uniform rule, ½ each)', rule: mul, region: 'inner', conserves: true },
  Div: { eq: 'y = a / b (a relevant b is a normaliser: constant in AttnLRP)', rule: div, region: 'inner', conserves: true },
  Softmax: { eq: 'y = exp(x) / Σ exp(x) along an axis', rule: softmax },
  // Routing: the adjoint moves the gradient back unchanged.
  Identity: { eq: 'y = x', rule: same, region: 'inner', conserves: true },
  Dropout: { eq: 'y = x (inference)', rule: same, conserves: true },
  Cast: { eq: 'y = x in another type', rule: cast, region: 'inner', conserves: true },
  Reshape: { eq: 'y = x reshaped', rule: reshapeBack, conserves: true },
  Flatten: { eq: 'y = x as 2-D', rule: reshapeBack, conserves: true },
  Squeeze: { eq: 'y = x without unit axes', rule: reshapeBack, conserves: true },
  Unsqueeze: { eq: 'y = x with unit axes', rule: reshapeBack, conserves: true },
  Transpose: { eq: 'y = x permuted', rule: transpose, conserves: true },
  Expand: { eq: 'y = x broadcast', rule: expand, conserves: true },
  Concat: { eq: 'y = [a, b, …] along an axis', rule: concat, conserves: true },
  Split: { eq: '[y₁, y₂, …] = x split along an axis', rule: split },
  Slice: { eq: 'y = x[starts:ends:steps] (constant steps and axes)', rule: slice, conserves: true },
  Gather: { eq: 'y = x[i] along an axis (scalar constant i on a relevant x)', rule: gather, conserves: true },
  Where: { eq: 'y = cond ? a : b', rule: where, conserves: true },
  // Activations: identity rule R_x = R_y (AttnLRP Prop. 3.1); exact f′ in gradxinput.
  Relu: activation('y = max(0, x)', (c, x) => indicator(c, c.b.op('Greater', [x, c.scalar(0)]))),
  Tanh: activation('y = tanh x', (c, _x, y) => c.b.Sub(c.scalar(1), c.b.Mul(y, y))),
  Sigmoid: activation('y = 1 / (1 + e^−x)', (c, _x, y) => c.b.Mul(y, c.b.Sub(c.scalar(1), y))),
  Erf: activation('y = erf x', (c, x) => c.b.Mul(c.scalar(2 / Math.sqrt(Math.PI)), c.b.op('Exp', [c.b.Neg(c.b.Mul(x, x))]))),
  Elu: activation('y = x > 0 ? x : α(e^x − 1)', (c, x, y, n) =>
    c.b.op('Where', [c.b.op('Greater', [x, c.scalar(0)]), c.scalar(1), c.b.Add(y, c.scalar(alpha(n, 1)))]),
  ),
  Celu: activation('y = max(0, x) + min(0, α(e^(x/α) − 1))', (c, x, _y, n) =>
    c.b.op('Where', [c.b.op('Greater', [x, c.scalar(0)]), c.scalar(1), c.b.op('Exp', [c.b.Div(x, c.scalar(alpha(n, 1)))])]),
  ),
  Selu: activation('y = γ·(x > 0 ? x : α(e^x − 1))', (c, x, _y, n) => {
    const a = alpha(n, SELU_ALPHA);
    const gamma = attrFloat(n, 'gamma', SELU_GAMMA);
    return c.b.op('Where', [c.b.op('Greater', [x, c.scalar(0)]), c.scalar(gamma), c.b.Mul(c.scalar(gamma * a), c.b.op('Exp', [x]))]);
  }),
  LeakyRelu: activation('y = x ≥ 0 ? x : αx', (c, x, _y, n) =>
    c.b.op('Where', [c.b.op('Less', [x, c.scalar(0)]), c.scalar(alpha(n, 0.01)), c.scalar(1)]),
  ),
  ThresholdedRelu: activation('y = x > α ? x : 0', (c, x, _y, n) => indicator(c, c.b.op('Greater', [x, c.scalar(alpha(n, 1))]))),
  HardSigmoid: activation('y = max(0, min(1, αx + β))', (c, x, _y, n) => {
    const a = alpha(n, 0.2);
    const v = c.b.Add(c.b.Mul(x, c.scalar(a)), c.scalar(attrFloat(n, 'beta', 0.5)));
    return c.b.Mul(indicator(c, c.b.op('And', [c.b.op('Greater', [v, c.scalar(0)]), c.b.op('Less', [v, c.scalar(1)])])), c.scalar(a));
  }),
  HardSwish: activation('y = x·max(0, min(1, x/6 + ½))', (c, x) => {
    const v = c.b.Add(c.b.Mul(x, c.scalar(1 / 6)), c.scalar(0.5));
    const inside = indicator(c, c.b.op('And', [c.b.op('Greater', [v, c.scalar(0)]), c.b.op('Less', [v, c.scalar(1)])]));
    return c.b.Add(c.b.op('Clip', [v, c.scalar(0), c.scalar(1)]), c.b.Mul(c.b.Mul(x, inside), c.scalar(1 / 6)));
  }),
  Softplus: activation('y = ln(1 + e^x)', (c, x) => c.b.op('Sigmoid', [x])),
  Mish: activation('y = x·tanh(softplus x)', (c, x) => {
    const t = c.b.op('Tanh', [c.b.op('Softplus', [x])]);
    return c.b.Add(t, c.b.Mul(c.b.Mul(x, c.b.op('Sigmoid', [x])), c.b.Sub(c.scalar(1), c.b.Mul(t, t))));
  }),
  // Other element-wise functions of one relevant input (inside GELU's and the norms' subgraphs).
  Exp: pointwise('y = e^x', (_c, _x, y) => y),
  Log: pointwise('y = ln x', (c, x) => c.b.op('Reciprocal', [x])),
  Sqrt: pointwise('y = √x', (c, _x, y) => c.b.Div(c.scalar(0.5), y)),
  Reciprocal: pointwise('y = 1/x', (c, _x, y) => c.b.Neg(c.b.Mul(y, y))),
  Abs: pointwise('y = |x|', (c, x) => c.b.op('Sign', [x])),
  Pow: pointwise('y = x^p (constant p)', (c, x, _y, n) => {
    const e = c.constantValues(n.inputs[1]);
    if (!e || e.length !== 1) throw unsupported(n, 'Pow with a non-constant exponent on a relevant tensor');
    return c.b.Mul(c.scalar(e[0]), c.b.op('Pow', [x, c.scalar(e[0] - 1)]));
  }),
  // Left after canonicalisation only where no rewrite applies: refused with the reason.
  If: { eq: 'control flow', rule: refuse('control flow (If) other than a merged decoder on use_cache_branch') },
  Loop: { eq: 'control flow', rule: refuse('control flow (Loop)') },
  Scan: { eq: 'control flow', rule: refuse('control flow (Scan)') },
  LayerNormalization: { eq: '(x − mean)/σ·γ + β over axes ≥ axis', rule: refuse('LayerNormalization over a positive axis') },
  // Integer, boolean and shape results: never relevant (their consumers treat them as constants).
  Shape: noRelevance('y = shape of x'),
  Size: noRelevance('y = element count of x'),
  Equal: noRelevance('y = a = b'),
  Greater: noRelevance('y = a > b'),
  Less: noRelevance('y = a < b'),
  GreaterOrEqual: noRelevance('y = a ≥ b'),
  LessOrEqual: noRelevance('y = a ≤ b'),
  Not: noRelevance('y = ¬a'),
  And: noRelevance('y = a ∧ b'),
  Or: noRelevance('y = a ∨ b'),
  Xor: noRelevance('y = a ⊕ b'),
  ArgMax: noRelevance('y = argmax x'),
  ArgMin: noRelevance('y = argmin x'),
  NonZero: noRelevance('y = indices of x ≠ 0'),
  IsNaN: noRelevance('y = x is NaN'),
  IsInf: noRelevance('y = x is ±∞'),
  ConstantOfShape: noRelevance('y = a constant of a given shape'),
  Range: noRelevance('y = start, start + delta, …'),
  EyeLike: noRelevance('y = identity matrix shaped like x'),
  Constant: noRelevance('y = a constant'),
};

function isDefaultDomain(n: OnnxNode): boolean {
  return !n.domain || n.domain === 'ai.onnx';
}

/** The table's row for an op type (own keys only), or undefined. */
export function rowOf(opType: string): OpRow | undefined {
  return Object.hasOwn(OPS, opType) ? OPS[opType] : undefined;
}

/** Whether a node's rule conserves relevance (OpRow.conserves); a Div only with a relevant numerator. */
export function conserves(n: OnnxNode, relevant: (t: string) => boolean): boolean {
  if (!isDefaultDomain(n) || !rowOf(n.opType)?.conserves) return false;
  return n.opType !== 'Div' || relevant(n.inputs[0]);
}

/** Whether an op's outputs may carry relevance (every op not listed as integer/boolean/shape in the table). */
export function carriesRelevance(n: OnnxNode): boolean {
  return rowOf(n.opType)?.rule !== 'none';
}

/** The node's role in an activation region, if it may take part in one (default domain only). */
export function regionRole(n: OnnxNode): OpRow['region'] {
  return isDefaultDomain(n) ? rowOf(n.opType)?.region : undefined;
}

/** The relevance rule for a node on a relevant path; an op without one is an error naming it. */
export function ruleFor(n: OnnxNode): Rule {
  const rule = isDefaultDomain(n) ? rowOf(n.opType)?.rule : undefined;
  if (!rule || rule === 'none') throw unsupported(n, 'no relevance rule for this op');
  return rule;
}
