/**
 * Rewrites of standard ONNX ops the rules do not cover directly: Gemm, LayerNormalization, Gelu (decomposed so
 * gradxinput has exact derivatives), onnxruntime's SimplifiedLayerNormalization (default domain), and the
 * standard-domain quantisation ops (DequantizeLinear of weights; refusals, see ./quantized.ts).
 */
import { attrFloat, attrInt, attrString } from '../../onnx/graph';
import type { Rewrite, RewriteTable } from './rewrite';
import { floatTypeOf, reduceMean, replaceWith } from './rewrite';
import { SimplifiedLayerNormalization, dtypeFor, geluErf, geluTanh } from './norms';
import { QUANTIZED_STANDARD_REWRITES } from './quantized';

/** Y = α·op(A)·op(B) + β·C → MatMul (+ Mul α) (+ Add β·C). */
const Gemm: Rewrite = (node, g) => {
  const [a, bIn, c] = node.inputs;
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  const dtype = floatTypeOf(g, bIn);
  return replaceWith(node, g, (b) => {
    const lhs = attrInt(node, 'transA', 0) ? b.Transpose(a, [1, 0]) : a;
    const rhs = attrInt(node, 'transB', 0) ? b.Transpose(bIn, [1, 0]) : bIn;
    let out = b.MatMul(lhs, rhs);
    if (alpha !== 1) out = b.Mul(out, b.scalar(dtype, alpha));
    if (c) out = b.Add(out, beta !== 1 ? b.Mul(c, b.scalar(dtype, beta)) : c);
    return [out];
  });
};

/** LayerNormalization (opset 17) → ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add, as opset-14 exports. */
const LayerNormalization: Rewrite = (node, g) => {
  const [x, scale, bias] = node.inputs;
  const axis = attrInt(node, 'axis', -1);
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const dtype = floatTypeOf(g, scale);
  if (axis >= 0) return undefined; // needs the rank; the rule table refuses it with a clear message
  const axes = Array.from({ length: -axis }, (_, i) => axis + i);
  return replaceWith(node, g, (b) => {
    const mean = reduceMean(b, g, x, axes);
    const centred = b.Sub(x, mean);
    const variance = reduceMean(b, g, b.op('Pow', [centred, b.scalar(dtype, 2)]), axes);
    const std = b.op('Sqrt', [b.Add(variance, b.scalar(dtype, eps))]);
    let out = b.Mul(b.Div(centred, std), scale);
    if (bias) out = b.Add(out, bias);
    // The optional Mean and InvStdDev outputs, for graphs that read them.
    return node.outputs.slice(1).some((o) => o) ? [out, mean, b.op('Reciprocal', [std])] : [out];
  });
};

/** Gelu (opset 20): approximate 'none' → erf form, 'tanh' → tanh form, the subgraphs patterns.ts recognises. */
const Gelu: Rewrite = (node, g) => {
  const gelu = attrString(node, 'approximate', 'none') === 'tanh' ? geluTanh : geluErf;
  return replaceWith(node, g, (b) => [gelu(b, node.inputs[0], dtypeFor(g, node))]);
};

export const STANDARD_REWRITES: RewriteTable = {
  Gemm,
  LayerNormalization,
  Gelu,
  SimplifiedLayerNormalization,
  ...QUANTIZED_STANDARD_REWRITES,
};
