/**
 * Rewrites of standard ONNX ops the rules do not cover directly: Gemm, LayerNormalization, and the
 * standard-domain quantisation ops (DequantizeLinear of weights; refusals, see ./quantized.ts).
 */
import { attrFloat, attrInt } from '../../onnx/graph';
import type { Rewrite, RewriteTable } from './rewrite';
import { floatTypeOf, reduceMean, replaceWith } from './rewrite';
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
    return [out];
  });
};

export const STANDARD_REWRITES: RewriteTable = { Gemm, LayerNormalization, ...QUANTIZED_STANDARD_REWRITES };
