/**
 * Rewrites of onnxruntime's fused normalisation and GELU-family ops (com.microsoft) into the decomposed forms
 * patterns.ts recognises: RMSNorm x·(1/√(mean(x²) + ε))·γ, LayerNorm (x − mean)/σ·γ + β, erf- and tanh-GELU,
 * x·σ(αx). Numerics follow onnxruntime's CPU kernels.
 */
import { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../../onnx/graph';
import { attrFloat, attrInt } from '../../onnx/graph';
import type { GraphBuilder } from '../../onnx/builder';
import type { FloatDType } from '../../onnx/tensor';
import type { Rewrite, RewriteTable } from './rewrite';
import { floatTypeOf, reduceMean, replaceWith } from './rewrite';

/** Float type of the emitted constants: a weight input's, else the model's (that of its logits). */
export function dtypeFor(g: Graph, node: OnnxNode): FloatDType {
  const w = node.inputs.find((i) => g.initializers.has(i));
  if (w) return floatTypeOf(g, w);
  const out = g.outputs.find((o) => o.name === 'logits') ?? g.outputs[0];
  return out?.type?.tensorType?.elemType === onnx.TensorProto.DataType.DOUBLE ? 'float64' : 'float32';
}

/** Whether a node's output is read (ask before emitting: emitInto hides the graph's nodes). */
const used = (g: Graph, t: string | undefined) => !!t && (g.consumers(t).length > 0 || g.isGraphOutput(t));

/** RMSNorm over `axes`: [x·inv·γ, inv] with inv = 1/√(mean(x²) + ε). */
function rmsNorm(b: GraphBuilder, g: Graph, x: string, gamma: string, axes: number[], eps: number, dtype: FloatDType): [string, string] {
  const meanSquare = reduceMean(b, g, b.op('Pow', [x, b.scalar(dtype, 2)]), axes);
  const inv = b.Div(b.scalar(dtype, 1), b.op('Sqrt', [b.Add(meanSquare, b.scalar(dtype, eps))]));
  return [b.Mul(b.Mul(x, inv), gamma), inv];
}

/** 0.5·x·(1 + erf(x/√2)), as torch exports it. */
export function geluErf(b: GraphBuilder, x: string, dtype: FloatDType): string {
  const c = (v: number) => b.scalar(dtype, v);
  return b.Mul(b.Mul(x, b.Add(b.op('Erf', [b.Div(x, c(Math.SQRT2))]), c(1))), c(0.5));
}

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), as torch exports it. */
export function geluTanh(b: GraphBuilder, x: string, dtype: FloatDType): string {
  const c = (v: number) => b.scalar(dtype, v);
  const inner = b.Mul(b.Add(x, b.Mul(b.op('Pow', [x, c(3)]), c(0.044715))), c(Math.sqrt(2 / Math.PI)));
  return b.Mul(b.Mul(x, c(0.5)), b.Add(b.op('Tanh', [inner]), c(1)));
}

/**
 * input + skip (+ bias). The bias joins `input` first, so that the residual Add has two relevant operands and
 * patterns.ts can follow the residual stream through it.
 */
function skipSum(b: GraphBuilder, input: string, skip: string, bias: string | undefined): string {
  return b.Add(bias ? b.Add(input, bias) : input, skip);
}

/**
 * Outputs Y, inv_std_var (of type stash_type: float unless 11); normalises over axes [axis, rank).
 * onnxruntime registers this op in the default ONNX domain (standard.ts maps it there too).
 */
export const SimplifiedLayerNormalization: Rewrite = (node, g) => {
  const [x, scale] = node.inputs;
  const axis = attrInt(node, 'axis', -1);
  if (axis >= 0) return undefined; // needs the rank; left for the rule table to refuse
  const dtype = dtypeFor(g, node);
  const stash = attrInt(node, 'stash_type', 1) === onnx.TensorProto.DataType.DOUBLE ? 'float64' : 'float32';
  const axes = Array.from({ length: -axis }, (_, i) => axis + i);
  const castInv = used(g, node.outputs[1]) && stash !== dtype;
  return replaceWith(node, g, (b) => {
    const [y, inv] = rmsNorm(b, g, x, scale, axes, attrFloat(node, 'epsilon', 1e-5), dtype);
    return [y, castInv ? b.Cast(inv, stash) : inv];
  });
};

/** Inputs input, skip, gamma, (bias); outputs output, (mean: refused), (inv_std_var), (input_skip_bias_sum). */
const SkipSimplifiedLayerNormalization: Rewrite = (node, g) => {
  const [input, skip, gamma, bias] = node.inputs;
  if (used(g, node.outputs[1])) return undefined; // `mean` is all zeros for RMSNorm; nothing reads it in practice
  const dtype = dtypeFor(g, node);
  return replaceWith(node, g, (b) => {
    const sum = skipSum(b, input, skip, bias);
    const [y, inv] = rmsNorm(b, g, sum, gamma, [-1], attrFloat(node, 'epsilon', 1e-12), dtype);
    return [y, '', inv, sum];
  });
};

/** Inputs input, skip, gamma, (beta), (bias); outputs output, (mean), (inv_std_var), (input_skip_bias_sum). */
const SkipLayerNormalization: Rewrite = (node, g) => {
  const [input, skip, gamma, beta, bias] = node.inputs;
  const dtype = dtypeFor(g, node);
  const eps = attrFloat(node, 'epsilon', 1e-12);
  const wantInv = used(g, node.outputs[2]);
  return replaceWith(node, g, (b) => {
    const sum = skipSum(b, input, skip, bias);
    const mean = reduceMean(b, g, sum, [-1]);
    const centred = b.Sub(sum, mean);
    const variance = reduceMean(b, g, b.op('Pow', [centred, b.scalar(dtype, 2)]), [-1]);
    const std = b.op('Sqrt', [b.Add(variance, b.scalar(dtype, eps))]);
    const y = b.Mul(b.Div(centred, std), gamma);
    const inv = wantInv ? b.Div(b.scalar(dtype, 1), std) : '';
    return [beta ? b.Add(y, beta) : y, mean, inv, sum];
  });
};

const Gelu: Rewrite = (node, g) => replaceWith(node, g, (b) => [geluErf(b, node.inputs[0], dtypeFor(g, node))]);

/** GELU of x + bias. */
const BiasGelu: Rewrite = (node, g) => replaceWith(node, g, (b) => [geluErf(b, b.Add(node.inputs[0], node.inputs[1]), dtypeFor(g, node))]);

/** tanh-GELU of x (+ optional bias). */
const FastGelu: Rewrite = (node, g) => {
  const [x, bias] = node.inputs;
  return replaceWith(node, g, (b) => [geluTanh(b, bias ? b.Add(x, bias) : x, dtypeFor(g, node))]);
};

/** x·σ(α·x), α = 1.702 by default. */
const QuickGelu: Rewrite = (node, g) => {
  const x = node.inputs[0];
  const alpha = attrFloat(node, 'alpha', 1.702);
  const dtype = dtypeFor(g, node);
  return replaceWith(node, g, (b) => [b.Mul(x, b.op('Sigmoid', [b.Mul(x, b.scalar(dtype, alpha))]))]);
};

export const NORM_REWRITES: RewriteTable = {
  SimplifiedLayerNormalization,
  SkipSimplifiedLayerNormalization,
  SkipLayerNormalization,
  Gelu,
  BiasGelu,
  FastGelu,
  QuickGelu,
};
