/**
 * Quantised weights are dequantised at compile time into float32 initializers, so the rules see plain
 * MatMul/Gather by a float weight: the weight the quantised model computes with, exactly. Weight relevance
 * then refers to that float weight (`<B>.dequantized`, or the DequantizeLinear output), not to the packed bytes.
 *
 * | export | ops | handling |
 * |---|---|---|
 * | weight-only q4/q8 (matmul_nbits_quantizer, onnxruntime-genai) | com.microsoft.MatMulNBits: bits 2/4/8, any block_size, zero points packed uint8, float or absent, g_idx = k / block_size, bias | MatMul by `<B>.dequantized` [K, N] (+ Add bias) |
 * | | MatMulNBits with an act-order g_idx, other bits, or B/scales/zero points computed at run time | refused |
 * | QDQ weights | DequantizeLinear of a constant int8/uint8/int32 tensor: per tensor, per axis, blocked | folded into a float32 initializer named as its output |
 * | quantize_dynamic embeddings | Gather(int8/uint8 table) → DequantizeLinear per tensor | Gather of `<table>.dequantized` |
 * | q8 dynamic (quantize_dynamic, transformers.js model_quantized.onnx) | DynamicQuantizeLinear → MatMulInteger → Cast → Mul(x_scale · w_scale) | MatMul(x, `<W>.dequantized`), graph pass below |
 * | | com.microsoft.DynamicQuantizeMatMul (the same, fused by onnxruntime) | MatMul by `<B>.dequantized` (+ Add bias) |
 * | static QDQ / integer kernels | DequantizeLinear of activations or of int4/fp8/16-bit data, QuantizeLinear, MatMulInteger and DynamicQuantizeLinear outside that chain, QLinearMatMul, com.microsoft MatMulIntegerToFloat, MatMulBnb4, GatherBlockQuantized | refused: the message names the op and node and points to onnx/model.onnx (fp32) |
 *
 * Dynamic quantisation also rounds activations to 8 bits at run time. The float MatMul does not, so the
 * compiled forward pass is the model with dequantised weights rather than the quantised model: logits move by
 * that activation rounding (about 1% on the synthetic models), and relevance is that of the dequantised model.
 *
 * Dequantised weights are new float32 arrays embedded in the relevance graph (4× int8, 8× int4), capped below
 * protobuf's 2 GiB; larger models are refused in favour of the fp32 export with external data. Block-wise
 * execution defers them (../../onnx/deferred.ts): dequantised per block, from the sources, when a segment runs.
 */
import { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../../onnx/graph';
import { attr, attrInt } from '../../onnx/graph';
import { tensorDims } from '../../onnx/tensor';
import { derivedTensor, isDeferred } from '../../onnx/deferred';
import { isExternal, readExternalBytes } from '../../onnx/externalData';
import { LrpLensError } from '../../errors';
import type { GraphPass, Rewrite, RewriteTable } from './rewrite';
import { replaceWith } from './rewrite';

const D = onnx.TensorProto.DataType;

export function refusal(node: OnnxNode, why: string): LrpLensError {
  const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}.${node.opType}` : node.opType;
  return new LrpLensError(
    'unsupported-op',
    `Unsupported quantisation: ${why} (op ${op}, node '${node.name}'). Attribute the float export of the model instead: onnx/model.onnx (fp32).`,
  );
}

const refused =
  (why: string): Rewrite =>
  (node) => {
    throw refusal(node, why);
  };

/** A constant tensor's bytes, embedded or external, at an offset typed arrays can view. */
export function tensorBytes(t: onnx.ITensorProto, dir: string | undefined): Uint8Array {
  if (isExternal(t)) {
    if (!dir)
      throw new LrpLensError(
        'model-not-found',
        `Tensor ${t.name} is external data, but the model's folder is unknown: load the model from its file.`,
      );
    return readExternalBytes(t, dir);
  }
  const raw = t.rawData ?? new Uint8Array(0);
  return raw.byteOffset % 8 === 0 ? raw : raw.slice();
}

interface Constant {
  dataType: number;
  dims: number[];
  size: number;
  /** An element type read here (int8, uint8, int32, float, double); int4, fp8, ... are not. */
  typed: boolean;
  /** Read on first use (checks need the type and shape only); undefined for element types read nowhere here. */
  values?: ArrayLike<number>;
}

type TypedArrayOf = new (buffer: ArrayBuffer, offset: number, length: number) => ArrayLike<number>;
const TYPED: Record<number, [TypedArrayOf, number]> = {
  [D.FLOAT]: [Float32Array, 4],
  [D.DOUBLE]: [Float64Array, 8],
  [D.INT8]: [Int8Array, 1],
  [D.UINT8]: [Uint8Array, 1],
  [D.INT32]: [Int32Array, 4],
};

/** An initializer or Constant node's values as a typed view (weights are not copied into number arrays). */
function constantOf(g: Graph, name: string | undefined): Constant | undefined {
  const t = tensorOf(g, name);
  return t && constantFrom(t, g.source?.dir);
}

function tensorOf(g: Graph, name: string | undefined): onnx.ITensorProto | undefined {
  if (!name) return undefined;
  const p = g.producer(name);
  return g.initializers.get(name) ?? (p?.opType === 'Constant' ? (attr(p, 'value')?.t ?? undefined) : undefined);
}

/**
 * A derived weight's values, read again from its sources when made: a deferred weight
 * (../../onnx/deferred.ts) holds its sources' tensors (references into external data), not their values.
 */
function later(g: Graph, names: (string | undefined)[], make: (...c: (Constant | undefined)[]) => Float32Array): () => Float32Array {
  const dir = g.source?.dir;
  const tensors = names.map((n) => tensorOf(g, n));
  return () => make(...tensors.map((t) => t && constantFrom(t, dir)));
}

function constantFrom(t: onnx.ITensorProto, dir: string | undefined): Constant {
  const dataType = t.dataType ?? 0;
  const typed = TYPED[dataType];
  const read = (): ArrayLike<number> | undefined => {
    if (!typed) return undefined;
    const raw = t.rawData?.length || isExternal(t) ? tensorBytes(t, dir) : undefined;
    const field = dataType === D.FLOAT ? t.floatData : dataType === D.DOUBLE ? t.doubleData : t.int32Data;
    return raw ? new typed[0](raw.buffer as ArrayBuffer, raw.byteOffset, raw.byteLength / typed[1]) : (field ?? []);
  };
  let values: ArrayLike<number> | undefined;
  const dims = tensorDims(t);
  return {
    dataType,
    dims,
    size: dims.reduce((a, b) => a * b, 1),
    typed: !!typed,
    get values() {
      return (values ??= read());
    },
  };
}

/** Element type names, including those newer than onnx-proto's enum. */
function typeName(dataType: number): string {
  const newer: Record<number, string> = {
    17: 'float8e4m3fn',
    18: 'float8e4m3fnuz',
    19: 'float8e5m2',
    20: 'float8e5m2fnuz',
    21: 'uint4',
    22: 'int4',
  };
  return (D as unknown as Record<number, string | undefined>)[dataType]?.toLowerCase() ?? newer[dataType] ?? `ONNX data type ${dataType}`;
}

const embedded = new WeakMap<Graph, number>();

/** Bytes made at compile time stay inside the relevance graph, whose protobuf cannot pass 2 GiB. */
export function countEmbedded(g: Graph, bytes: number): void {
  const total = (embedded.get(g) ?? 0) + bytes;
  embedded.set(g, total);
  if (total > 1.75 * 2 ** 30) {
    throw new LrpLensError(
      'unsupported-graph',
      `Weights converted to float32 at compile time take ${(total / 2 ** 30).toFixed(1)} GiB, more than one ONNX file holds without external data. Use the fp32 export (onnx/model.onnx with model.onnx_data).`,
    );
  }
}

/** A float32 initializer made from quantised sources: now, or deferred for block-wise execution. */
function setFloat(g: Graph, name: string, dims: number[], make: () => Float32Array): string {
  const t = derivedTensor(g, name, dims, make);
  if (!isDeferred(t))
    countEmbedded(
      g,
      dims.reduce((a, b) => a * b, 4),
    );
  g.initializers.set(name, t);
  return name;
}

/**
 * DequantizeLinear: y = (x − zero_point) · scale, with one scale for the tensor, one per index along `axis`,
 * or (block_size > 0) one per block of block_size indices along `axis`.
 */
function dequantizeLinear(
  x: ArrayLike<number>,
  dims: number[],
  scale: ArrayLike<number>,
  zp: ArrayLike<number> | undefined,
  axis: number,
  blockSize: number,
): Float32Array {
  const out = new Float32Array(x.length);
  const ax = axis < 0 ? axis + dims.length : axis;
  const d = dims[ax] ?? 1;
  const inner = dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  const blocks = blockSize > 0 ? Math.ceil(d / blockSize) : d;
  const perTensor = scale.length === 1 && (!zp || zp.length === 1);
  for (let i = 0; i < x.length; i++) {
    let j = 0;
    if (!perTensor) {
      const c = Math.floor(i / inner) % d;
      j = blockSize > 0 ? (Math.floor(i / (inner * d)) * blocks + Math.floor(c / blockSize)) * inner + (i % inner) : c;
    }
    out[i] = (x[i] - (zp ? zp[zp.length > 1 ? j : 0] : 0)) * scale[scale.length > 1 ? j : 0];
  }
  return out;
}

const INTEGER = new Set<number>([D.INT8, D.UINT8, D.INT32]);

/** `<w>.dequantized`: an integer weight [K, N] with per-tensor or per-column (axis 1) scale and zero point. */
function dequantizedWeight(g: Graph, node: OnnxNode, w: string, scale: string, zeroPoint: string | undefined): string {
  const name = `${w}.dequantized`;
  if (g.initializers.has(name)) return name;
  const q = constantOf(g, w);
  const s = constantOf(g, scale);
  const zp = constantOf(g, zeroPoint);
  if (!q?.typed || !s?.typed || (zeroPoint && !zp?.typed)) throw refusal(node, 'quantised weights computed at run time');
  if (!INTEGER.has(q.dataType)) throw refusal(node, `${typeName(q.dataType)} weights`);
  return setFloat(
    g,
    name,
    q.dims,
    later(g, [w, scale, zeroPoint], (q, s, zp) => dequantizeLinear(q!.values!, q!.dims, s!.values!, zp?.values, 1, 0)),
  );
}

const DequantizeLinear: Rewrite = (node, g) => {
  const [x, scale, zeroPoint] = node.inputs;
  const out = node.outputs[0];
  const s = constantOf(g, scale);
  const zp = constantOf(g, zeroPoint);
  const q = constantOf(g, x);
  if (!s?.typed || (zeroPoint && !zp?.typed)) throw refusal(node, 'scale or zero point computed at run time');
  if (!q) {
    // quantize_dynamic's embeddings: Gather on the int8 table, then DequantizeLinear of the rows.
    const gather = g.producer(x);
    const table = gather?.opType === 'Gather' && !gather.domain ? constantOf(g, gather.inputs[0]) : undefined;
    if (!gather || !table?.typed || !INTEGER.has(table.dataType) || s.size !== 1 || g.consumers(x).length !== 1) {
      throw refusal(node, 'DequantizeLinear of activations (static QDQ quantisation)');
    }
    const name = `${gather.inputs[0]}.dequantized`;
    if (!g.initializers.has(name))
      setFloat(
        g,
        name,
        table.dims,
        later(g, [gather.inputs[0], scale, zeroPoint], (t, s, zp) => dequantizeLinear(t!.values!, t!.dims, s!.values!, zp?.values, 0, 0)),
      );
    gather.inputs = [name, gather.inputs[1]];
    gather.outputs = [out];
    g.invalidate();
    return [];
  }
  if (!q.typed || !INTEGER.has(q.dataType)) throw refusal(node, `DequantizeLinear of ${typeName(q.dataType)} data`);
  const [axis, blockSize] = [attrInt(node, 'axis', 1), attrInt(node, 'block_size', 0)];
  setFloat(
    g,
    out,
    q.dims,
    later(g, [x, scale, zeroPoint], (q, s, zp) => dequantizeLinear(q!.values!, q!.dims, s!.values!, zp?.values, axis, blockSize)),
  );
  return [];
};

/**
 * MatMulNBits: B [N, ⌈K/block_size⌉, block_size·bits/8] holds q[n, k], low bits first; scales and zero
 * points have one entry per (n, block), zero points packed like B along each row (default 2^(bits−1)):
 * W[k, n] = (q[n, k] − zp[n, k / block_size]) · scale[n, k / block_size].
 */
function dequantizeNBits(
  q: ArrayLike<number>,
  scales: ArrayLike<number>,
  zp: Constant | undefined,
  K: number,
  N: number,
  bits: number,
  blockSize: number,
): Float32Array {
  const blocks = Math.ceil(K / blockSize);
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const zpRow = Math.ceil(blocks / perByte);
  const unpack = (bytes: ArrayLike<number>, i: number) => (bytes[Math.floor(i / perByte)] >> ((i % perByte) * bits)) & mask;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const s = scales[n * blocks + b];
      const z = !zp?.values
        ? 2 ** (bits - 1)
        : zp.dataType === D.UINT8
          ? unpack(zp.values, n * zpRow * perByte + b)
          : zp.values[n * blocks + b];
      const base = (n * blocks + b) * blockSize;
      for (let j = 0; j < blockSize && b * blockSize + j < K; j++) out[(b * blockSize + j) * N + n] = (unpack(q, base + j) - z) * s;
    }
  }
  return out;
}

const MatMulNBits: Rewrite = (node, g) => {
  const [a, b, scales, zeroPoints, gIdx, bias] = node.inputs;
  const K = attrInt(node, 'K', 0);
  const N = attrInt(node, 'N', 0);
  const bits = attrInt(node, 'bits', 4);
  const blockSize = attrInt(node, 'block_size', 0);
  if (![2, 4, 8].includes(bits)) throw refusal(node, `${bits}-bit weights (2, 4 and 8 bits are supported)`);
  const w = `${b}.dequantized`;
  if (!g.initializers.has(w)) {
    const q = constantOf(g, b);
    const s = constantOf(g, scales);
    const zp = constantOf(g, zeroPoints);
    if (!q?.typed || !s?.typed || (zeroPoints && !zp?.typed)) throw refusal(node, 'quantised weights computed at run time');
    const blocks = Math.ceil(K / blockSize);
    if (q.size !== (N * blocks * blockSize * bits) / 8 || s.size !== N * blocks) {
      throw new LrpLensError(
        'model-corrupt',
        `MatMulNBits node '${node.name}': B or scales do not match K=${K}, N=${N}, block_size=${blockSize}.`,
      );
    }
    const order = constantOf(g, gIdx)?.values;
    if (gIdx && (!order || Array.from(order).some((block, k) => block !== Math.floor(k / blockSize)))) {
      throw refusal(node, 'act-order g_idx (weights quantised in a permuted row order; re-quantise without desc_act)');
    }
    setFloat(
      g,
      w,
      [K, N],
      later(g, [b, scales, zeroPoints], (q, s, zp) => dequantizeNBits(q!.values!, s!.values!, zp, K, N, bits, blockSize)),
    );
  }
  return replaceWith(node, g, (bd) => {
    const y = bd.MatMul(a, w);
    return [bias ? bd.Add(y, bias) : y];
  });
};

/** com.microsoft.DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias): A · dequantised B (+ bias). */
const DynamicQuantizeMatMul: Rewrite = (node, g) => {
  const [a, b, scale, zeroPoint, bias] = node.inputs;
  const w = dequantizedWeight(g, node, b, scale, zeroPoint);
  return replaceWith(node, g, (bd) => {
    const y = bd.MatMul(a, w);
    return [bias ? bd.Add(y, bias) : y];
  });
};

/**
 * onnxruntime's quantize_dynamic: DynamicQuantizeLinear(x) → (x_q, x_scale, x_zp);
 * MatMulInteger(x_q, W_q, x_zp, W_zp) → Cast(FLOAT) → Mul(·, Mul(x_scale, W_scale)) = (x_q − x_zp)·x_scale ·
 * (W_q − W_zp)·W_scale ≈ x · W with W = (W_q − W_zp)·W_scale. Each chain becomes MatMul(x, W); the quantisers
 * and scale products left unread are dropped. A whole-graph pass, as the chain spans four nodes.
 */
export const dequantizeDynamicMatMuls: GraphPass = (g) => {
  const replaced = new Map<OnnxNode, OnnxNode[]>();
  const scaleMuls = new Set<OnnxNode>();
  const quantizers = new Set<OnnxNode>();
  for (const mm of g.nodes) {
    if (mm.opType !== 'MatMulInteger' || mm.domain) continue;
    const quantize = g.producer(mm.inputs[0]);
    if (quantize?.opType !== 'DynamicQuantizeLinear' || (mm.inputs[2] && mm.inputs[2] !== quantize.outputs[2])) continue;
    const [cast, ...more] = g.consumers(mm.outputs[0]);
    if (more.length || cast?.opType !== 'Cast' || attrInt(cast, 'to', 0) !== D.FLOAT) continue;
    const [mul, ...others] = g.consumers(cast.outputs[0]);
    if (others.length || mul?.opType !== 'Mul') continue;
    const scaleMul = g.producer(mul.inputs.find((i) => i !== cast.outputs[0]) ?? '');
    const xScale = quantize.outputs[1];
    if (scaleMul?.opType !== 'Mul' || !scaleMul.inputs.includes(xScale)) continue;
    const w = dequantizedWeight(g, mm, mm.inputs[1], scaleMul.inputs.find((i) => i !== xScale) ?? xScale, mm.inputs[3]);
    replaced.set(mm, []);
    replaced.set(cast, []);
    replaced.set(mul, [
      {
        name: `${mm.name}/float`,
        opType: 'MatMul',
        domain: '',
        inputs: [quantize.inputs[0], w],
        outputs: [mul.outputs[0]],
        attributes: [],
      },
    ]);
    scaleMuls.add(scaleMul);
    quantizers.add(quantize);
  }
  if (!replaced.size) return undefined;
  g.nodes = g.nodes.flatMap((n) => replaced.get(n) ?? [n]);
  g.invalidate();
  for (const group of [scaleMuls, quantizers]) {
    const unread = new Set([...group].filter((n) => n.outputs.every((o) => !o || (g.consumers(o).length === 0 && !g.isGraphOutput(o)))));
    g.nodes = g.nodes.filter((n) => !unread.has(n));
    g.invalidate();
  }
  return 'DynamicQuantizeLinear+MatMulInteger→MatMul';
};

/** Standard-domain rows (spread into STANDARD_REWRITES). */
export const QUANTIZED_STANDARD_REWRITES: RewriteTable = {
  DequantizeLinear,
  DynamicQuantizeLinear: refused('DynamicQuantizeLinear outside the quantize_dynamic MatMulInteger pattern'),
  MatMulInteger: refused('MatMulInteger outside the quantize_dynamic pattern (DynamicQuantizeLinear → MatMulInteger → Cast → Mul)'),
  QuantizeLinear: refused('QuantizeLinear (static activation quantisation)'),
  QLinearMatMul: refused('QLinearMatMul (static activation quantisation)'),
};

/** com.microsoft rows. */
export const QUANTIZED_REWRITES: RewriteTable = {
  MatMulNBits,
  DynamicQuantizeMatMul,
  MatMulIntegerToFloat: refused('MatMulIntegerToFloat (fused dynamic quantisation)'),
  MatMulBnb4: refused('MatMulBnb4 (bitsandbytes 4-bit weights)'),
  GatherBlockQuantized: refused('GatherBlockQuantized (block-quantised embeddings)'),
};
