/**
 * The relevance compiler: canonical graph + probed shapes → one ONNX graph computing the forward pass and
 * the relevance pass (reverse-mode over the graph with the AttnLRP modifications of rules.ts).
 */
import { inputSpecs } from '../onnx/graph';
import type { Graph, InputSpec } from '../onnx/graph';
import { valueInfo } from '../onnx/builder';
import type { DType, FloatDType } from '../onnx/tensor';
import type { ShapeTable } from '../onnx/shapes';
import { LrpLensError } from '../errors';
import { analysePatterns } from './patterns';
import type { RelevanceMode } from './mode';
import { ABSORBED_KINDS, IO } from './ioNames';
import { Backward } from './backward';
import type { WeightAggregation } from './backward';
import { hoistShapes, pruneDeadNodes } from './compiledPasses';
import { lmHead } from './seed';
import { MIN_OPSET } from './rules';
import type { WeightOrigin } from './canonicalize';

export type { WeightAggregation } from './backward';

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
  /**
   * Block-wise execution: causal attention layers run in this many query chunks (relevance/attentionChunks.ts;
   * 1 keeps them whole). Default ATTENTION_CHUNKS.
   */
  attentionChunks?: number;
}

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
  /** Block-wise execution: the causal attention layers computed in query chunks, and how many chunks. */
  attentionChunks?: { layers: number; chunks: number };
}

export interface CompileResult {
  graph: Graph;
  info: CompiledInfo;
}

export function compileRelevance(
  graph: Graph,
  shapes: ShapeTable,
  origins: Map<string, WeightOrigin>,
  options: CompileOptions = {},
): CompileResult {
  const mode = options.mode ?? 'attnlrp';
  if (graph.opset < MIN_OPSET) {
    throw new LrpLensError(
      'unsupported-graph',
      `The model uses ONNX opset ${graph.opset}; relevance needs opset ${MIN_OPSET} or later. Re-export it with opset_version=${MIN_OPSET} or newer.`,
    );
  }
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
      // [batch, seq] over the seed's own inputs, which have no probed shape: reduce it here.
      ctx.absorbTotal('bias', b.ReduceSum(biasShare, [1], false));
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
  const tokenParts = patterns.embeddings.map((e) => ctx.relevanceAbove(e.outputs[0], [-1]));
  rename(tokenParts.length === 1 ? tokenParts[0] : b.op('Sum', tokenParts), IO.tokens, ['batch', 'sequence']);

  const stack = (parts: string[]) =>
    b.op(
      'Concat',
      parts.map((p) => b.op('Unsqueeze', [p, b.ints([0])])),
      { axis: 0 },
    );
  const layers = patterns.layers;
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
