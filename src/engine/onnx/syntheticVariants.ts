/**
 * The precision variants real exports come in, made from a synthetic float32 model (./synthetic.ts), so the
 * canonicalisation passes can be checked against onnxruntime without downloading models:
 *
 * - `toHalf`: an fp16 (or bf16) export: every float weight and constant in the half type, Cast(to=FLOAT16)
 *   where integer inputs enter float arithmetic, past_key_values inputs and logits/present outputs in the
 *   half type. `roundedToHalf` is its float32 twin: same graph, weights rounded to the half type.
 * - `quantizeMatMulNBits`: weight-only block quantisation as onnxruntime's MatMulNBits quantiser writes it
 *   (MatMul by a weight → com.microsoft.MatMulNBits).
 * - `quantizeDynamic`: onnxruntime's quantize_dynamic (DynamicQuantizeLinear + MatMulInteger + Cast + Mul).
 * - `quantizeDequantizeLinear`: int8 weights read through DequantizeLinear (QDQ weight-only exports).
 * - `mergedDecoder`: Optimum's merged decoder, an If on use_cache_branch over two decoder graphs.
 *
 * The quantisers also return the float32 model built from the dequantised weights they wrote, computed
 * from the integer codes before packing, so tests compare against it without the code under test.
 */
import { onnx } from 'onnx-proto';
import { Graph } from './graph';
import type { OnnxNode } from './graph';
import { emptyGraph, makeAttribute, valueInfo } from './builder';
import { dtypeCode, makeRawTensor, makeTensor, tensorDims, tensorFloats } from './tensor';

const D = onnx.TensorProto.DataType;

export type HalfType = 'float16' | 'bfloat16';

/** Largest finite value: torch's finfo(dtype).max, what exporters write for ±∞ masks. */
const HALF_MAX: Record<HalfType, number> = { float16: 65504, bfloat16: 3.3895313892515355e38 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of x (float32 first), round to nearest even, subnormals kept, overflow → ∞. */
export function float32ToFloat16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  // Normal: keep 10 of 23 mantissa bits. Subnormal (e ≤ 0): value = (1.mant) · 2^(e−15) = m · 2^−24.
  const full = e > 0 ? mant : mant | 0x800000;
  const shift = e > 0 ? 13 : 14 - e;
  if (shift > 24) return sign;
  let half = (e > 0 ? e << 10 : 0) | (full >>> shift);
  const rem = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rem > halfway || (rem === halfway && half & 1)) half++; // a carry rounds up into the exponent, as it should
  return sign | half;
}

/** bfloat16 bits of x: the top half of float32, round to nearest even. */
export function float32ToBfloat16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** x rounded to the half type and back (what a half-precision weight holds), saturated at its finite range. */
export function roundToHalf(x: number, dtype: HalfType): number {
  const clamped = Math.max(-HALF_MAX[dtype], Math.min(HALF_MAX[dtype], x));
  if (dtype === 'bfloat16') {
    u32[0] = float32ToBfloat16(clamped) << 16;
    return f32[0];
  }
  const h = float32ToFloat16(clamped);
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

function halfTensor(t: onnx.ITensorProto, dtype: HalfType, name = t.name ?? ''): onnx.TensorProto {
  const encode = dtype === 'float16' ? float32ToFloat16 : float32ToBfloat16;
  const values = tensorFloats(t);
  const bits = Uint16Array.from(values, (v) => encode(Math.max(-HALF_MAX[dtype], Math.min(HALF_MAX[dtype], v))));
  return onnx.TensorProto.create({ name, dataType: dtypeCode(dtype), dims: tensorDims(t), rawData: new Uint8Array(bits.buffer) });
}

function retypeValueInfo(vi: onnx.IValueInfoProto, dtype: HalfType): onnx.IValueInfoProto {
  if (vi.type?.tensorType?.elemType !== D.FLOAT) return vi;
  const dims = (vi.type.tensorType.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
  return valueInfo(vi.name ?? '', dtype, dims);
}

/** The fp16 (or bf16) export of a float32 model: weights, constants, Casts, past inputs and outputs retyped. */
export function toHalf(g: Graph, dtype: HalfType = 'float16'): Graph {
  const out = new Graph(g.toModel());
  out.source = g.source;
  for (const [name, t] of out.initializers) if (t.dataType === D.FLOAT) out.initializers.set(name, halfTensor(t, dtype));
  out.nodes = out.nodes.map((n) => ({
    ...n,
    attributes: n.attributes.map((a) => {
      if (n.opType === 'Cast' && a.name === 'to' && Number(a.i) === D.FLOAT) return makeAttribute('to', dtypeCode(dtype));
      if (a.t && a.t.dataType === D.FLOAT) return makeAttribute(a.name ?? '', halfTensor(a.t, dtype));
      return a;
    }),
  }));
  out.inputs = out.inputs.map((vi) => retypeValueInfo(vi, dtype));
  out.outputs = out.outputs.map((vi) => retypeValueInfo(vi, dtype));
  return out;
}

/** The float32 model an fp16 export is attributed as: same graph, every float constant rounded to the half type. */
export function roundedToHalf(g: Graph, dtype: HalfType = 'float16'): Graph {
  const out = new Graph(g.toModel());
  const round = (t: onnx.ITensorProto, name = t.name ?? '') =>
    makeTensor(
      name,
      'float32',
      tensorDims(t),
      Array.from(tensorFloats(t), (v) => roundToHalf(v, dtype)),
    );
  for (const [name, t] of out.initializers) if (t.dataType === D.FLOAT) out.initializers.set(name, round(t));
  out.nodes = out.nodes.map((n) => ({
    ...n,
    attributes: n.attributes.map((a) => (a.t && a.t.dataType === D.FLOAT ? makeAttribute(a.name ?? '', round(a.t)) : a)),
  }));
  return out;
}

/** A quantised model and the float32 model computing with exactly the weights it dequantises to. */
export interface Quantized {
  quantized: Graph;
  dequantized: Graph;
}

/** MatMuls whose B is a 2-D float32 initializer [K, N]: the linears a weight quantiser rewrites. */
function weightMatMuls(g: Graph): OnnxNode[] {
  return g.nodes.filter(
    (n) =>
      n.opType === 'MatMul' &&
      !n.domain &&
      (g.initializers.get(n.inputs[1])?.dims ?? []).length === 2 &&
      g.initializers.get(n.inputs[1])?.dataType === D.FLOAT,
  );
}

function withOpset(g: Graph, domain: string, version: number): void {
  const imports = g.model.opsetImport ?? [];
  if (!imports.some((o) => o.domain === domain)) g.model.opsetImport = [...imports, { domain, version }];
}

function node(
  name: string,
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, number> = {},
  domain = '',
): OnnxNode {
  return { name, opType, domain, inputs, outputs, attributes: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)) };
}

/** Scale and zero point mapping [min(0, lo), max(0, hi)] onto the integers [qmin, qmax] (zero exactly representable). */
function affine(lo: number, hi: number, qmin: number, qmax: number, symmetric: boolean): { scale: number; zp: number } {
  if (symmetric) {
    const zp = qmin < 0 ? 0 : (qmax + 1) / 2;
    return { scale: Math.max(-lo, hi) / (qmax - zp) || 1, zp };
  }
  const scale = (Math.max(0, hi) - Math.min(0, lo)) / (qmax - qmin) || 1;
  return { scale, zp: Math.max(qmin, Math.min(qmax, Math.round(qmin - Math.min(0, lo) / scale))) };
}

const clampRound = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.round(v)));

export interface NBitsOptions {
  bits?: 2 | 4 | 8;
  blockSize?: number;
  /** 'packed' uint8 (asymmetric), 'float' (an unrounded float zero point per block), 'none' (symmetric, zero point 2^(bits−1)). */
  zeroPoints?: 'packed' | 'float' | 'none';
}

/**
 * Weight-only block quantisation as onnxruntime's MatMulNBits quantiser writes it: per column n and block of
 * block_size rows, q = clamp(round(w / scale) + zp) in [0, 2^bits − 1], packed low bits first into
 * B [N, blocks, block_size·bits/8]; the last block of a K that block_size does not divide is padded.
 */
export function quantizeMatMulNBits(g: Graph, opts: NBitsOptions = {}): Quantized {
  const { bits = 4, blockSize = 32, zeroPoints = 'packed' } = opts;
  const quantized = new Graph(g.toModel());
  const dequantized = new Graph(g.toModel());
  withOpset(quantized, 'com.microsoft', 1);
  const qmax = 2 ** bits - 1;
  const perByte = 8 / bits;
  const done = new Set<string>();
  const replace = new Map<OnnxNode, OnnxNode>();
  for (const mm of weightMatMuls(quantized)) {
    const name = mm.inputs[1];
    const t = quantized.initializers.get(name)!;
    const [K, N] = tensorDims(t);
    const blocks = Math.ceil(K / blockSize);
    replace.set(
      mm,
      node(
        mm.name,
        'MatMulNBits',
        [mm.inputs[0], `${name}_Q${bits}`, `${name}_scales`, ...(zeroPoints === 'none' ? [] : [`${name}_zero_points`])],
        mm.outputs,
        { K, N, bits, block_size: blockSize, accuracy_level: 0 },
        'com.microsoft',
      ),
    );
    if (done.has(name)) continue;
    done.add(name);
    const w = tensorFloats(t);
    const packed = new Uint8Array((N * blocks * blockSize) / perByte);
    const scales = new Float32Array(N * blocks);
    const zpFloat = new Float32Array(N * blocks);
    const zpPacked = new Uint8Array(N * Math.ceil(blocks / perByte));
    const deq = new Float32Array(K * N);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < blocks; b++) {
        const ks = Array.from({ length: Math.min(blockSize, K - b * blockSize) }, (_, j) => b * blockSize + j);
        const vs = ks.map((k) => w[k * N + n]);
        let { scale, zp } = affine(Math.min(...vs), Math.max(...vs), 0, qmax, zeroPoints === 'none');
        scale = Math.fround(scale);
        if (zeroPoints === 'float') zp = Math.fround(-Math.min(0, ...vs) / scale + 0.25);
        scales[n * blocks + b] = scale;
        zpFloat[n * blocks + b] = zp;
        zpPacked[n * Math.ceil(blocks / perByte) + Math.floor(b / perByte)] |= Math.round(zp) << ((b % perByte) * bits);
        for (let j = 0; j < blockSize; j++) {
          const q = j < ks.length ? clampRound(vs[j] / scale + zp, 0, qmax) : Math.round(zp);
          const at = (n * blocks + b) * blockSize + j;
          packed[Math.floor(at / perByte)] |= q << ((at % perByte) * bits);
          if (j < ks.length) deq[ks[j] * N + n] = (q - zp) * scale;
        }
      }
    }
    const raw = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    quantized.initializers.set(`${name}_Q${bits}`, makeRawTensor(`${name}_Q${bits}`, 'uint8', [N, blocks, blockSize / perByte], packed));
    quantized.initializers.set(`${name}_scales`, makeRawTensor(`${name}_scales`, 'float32', [N * blocks], raw(scales)));
    if (zeroPoints === 'packed')
      quantized.initializers.set(`${name}_zero_points`, makeRawTensor(`${name}_zero_points`, 'uint8', [zpPacked.length], zpPacked));
    if (zeroPoints === 'float')
      quantized.initializers.set(`${name}_zero_points`, makeRawTensor(`${name}_zero_points`, 'float32', [N * blocks], raw(zpFloat)));
    quantized.initializers.delete(name);
    dequantized.initializers.set(name, makeRawTensor(name, 'float32', [K, N], raw(deq)));
  }
  quantized.nodes = quantized.nodes.map((n) => replace.get(n) ?? n);
  quantized.invalidate();
  return { quantized, dequantized };
}

export interface DynamicOptions {
  /** int8 symmetric (zero point 0) or uint8 asymmetric weights. */
  weightType?: 'int8' | 'uint8';
  /** One scale (and zero point) per output column instead of per tensor. */
  perChannel?: boolean;
  /** Also quantise token-embedding tables read only by Gather (Gather on uint8, then DequantizeLinear). */
  embeddings?: boolean;
  /** onnxruntime's fused com.microsoft.DynamicQuantizeMatMul instead of the four-node chain. */
  fused?: boolean;
}

interface IntegerWeight {
  q: Uint8Array;
  scale: Float32Array;
  zp: Uint8Array;
  deq: Float32Array;
}

/** w [K, N] → integers with a scale/zero point per tensor or per column; deq = (q − zp) · scale. */
function quantizeWeight(w: Float64Array, K: number, N: number, type: 'int8' | 'uint8', perChannel: boolean): IntegerWeight {
  const [qmin, qmax] = type === 'int8' ? [-127, 127] : [0, 255];
  const group = (i: number) => (perChannel ? i % N : 0);
  const lo = new Float64Array(perChannel ? N : 1).fill(Infinity);
  const hi = new Float64Array(lo.length).fill(-Infinity);
  w.forEach((v, i) => {
    lo[group(i)] = Math.min(lo[group(i)], v);
    hi[group(i)] = Math.max(hi[group(i)], v);
  });
  const scale = new Float32Array(lo.length);
  const zp = new Uint8Array(lo.length);
  lo.forEach((_, c) => {
    const p = affine(lo[c], hi[c], qmin, qmax, type === 'int8');
    scale[c] = p.scale;
    zp[c] = p.zp;
  });
  const q = new Uint8Array(K * N);
  const signed = new Int8Array(q.buffer);
  const deq = new Float32Array(K * N);
  w.forEach((v, i) => {
    const c = group(i);
    const code = clampRound(v / scale[c] + zp[c], qmin, qmax);
    if (type === 'int8') signed[i] = code;
    else q[i] = code;
    deq[i] = (code - zp[c]) * scale[c];
  });
  return { q, scale, zp, deq };
}

/**
 * onnxruntime's quantize_dynamic: each activation x read by a weight MatMul goes through one
 * DynamicQuantizeLinear; each MatMul becomes MatMulInteger(x_q, W_q, x_zp, W_zp) → Cast(FLOAT) →
 * Mul(·, Mul(x_scale, W_scale)). Embedding tables read only by Gather become uint8 + DequantizeLinear.
 */
export function quantizeDynamic(g: Graph, opts: DynamicOptions = {}): Quantized {
  const { weightType = 'int8', perChannel = false, embeddings = false, fused = false } = opts;
  const quantized = new Graph(g.toModel());
  const dequantized = new Graph(g.toModel());
  const replace = new Map<OnnxNode, OnnxNode[]>();
  const weights = new Map<string, IntegerWeight>();
  const raw = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const quantizeInit = (name: string, perCol: boolean, type: 'int8' | 'uint8') => {
    const hit = weights.get(name);
    if (hit) return hit;
    const t = quantized.initializers.get(name)!;
    const [K, N] = tensorDims(t);
    const qw = quantizeWeight(tensorFloats(t), K, N, type, perCol);
    const groups = qw.scale.length;
    const shape = perCol ? [groups] : [];
    quantized.initializers.set(`${name}_quantized`, makeRawTensor(`${name}_quantized`, type, [K, N], qw.q));
    quantized.initializers.set(`${name}_scale`, makeRawTensor(`${name}_scale`, 'float32', shape, raw(qw.scale)));
    quantized.initializers.set(`${name}_zero_point`, makeRawTensor(`${name}_zero_point`, type, shape, qw.zp));
    quantized.initializers.delete(name);
    dequantized.initializers.set(name, makeRawTensor(name, 'float32', [K, N], raw(qw.deq)));
    weights.set(name, qw);
    return qw;
  };
  const activations = new Map<string, string[]>();
  for (const mm of weightMatMuls(quantized)) {
    const [x, w] = mm.inputs;
    quantizeInit(w, perChannel, weightType);
    const [wq, ws, wz] = [`${w}_quantized`, `${w}_scale`, `${w}_zero_point`];
    const y = mm.outputs[0];
    if (fused) {
      withOpset(quantized, 'com.microsoft', 1);
      replace.set(mm, [node(mm.name, 'DynamicQuantizeMatMul', [x, wq, ws, wz], [y], {}, 'com.microsoft')]);
      continue;
    }
    const nodes: OnnxNode[] = [];
    let xq = activations.get(x);
    if (!xq) {
      xq = [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`];
      activations.set(x, xq);
      nodes.push(node(`${x}_QuantizeLinear`, 'DynamicQuantizeLinear', [x], xq));
    }
    nodes.push(
      node(`${mm.name}_quant`, 'MatMulInteger', [xq[0], wq, xq[2], wz], [`${y}_quantized`]),
      node(`${mm.name}_quant_output_scale_mul`, 'Mul', [xq[1], ws], [`${y}_scales_mul`]),
      node(`${mm.name}_cast`, 'Cast', [`${y}_quantized`], [`${y}_cast`], { to: D.FLOAT }),
      node(`${mm.name}_quant_scaled`, 'Mul', [`${y}_cast`, `${y}_scales_mul`], [y]),
    );
    replace.set(mm, nodes);
  }
  if (embeddings) {
    for (const gather of quantized.nodes.filter((n) => n.opType === 'Gather' && quantized.initializers.has(n.inputs[0]))) {
      const table = gather.inputs[0];
      if (quantized.consumers(table).length !== 1 || quantized.initializers.get(table)?.dataType !== D.FLOAT) continue;
      quantizeInit(table, false, 'uint8');
      const y = gather.outputs[0];
      replace.set(gather, [
        node(gather.name, 'Gather', [`${table}_quantized`, gather.inputs[1]], [`${y}_quantized`], { axis: 0 }),
        node(`${gather.name}_DequantizeLinear`, 'DequantizeLinear', [`${y}_quantized`, `${table}_scale`, `${table}_zero_point`], [y]),
      ]);
    }
  }
  quantized.nodes = quantized.nodes.flatMap((n) => replace.get(n) ?? [n]);
  quantized.invalidate();
  quantized.sortTopologically();
  return { quantized, dequantized };
}

/** Weight-only QDQ: each MatMul weight stored as int8 with a per-tensor or per-column scale, read through DequantizeLinear. */
export function quantizeDequantizeLinear(g: Graph, perChannel: boolean): Quantized {
  const quantized = new Graph(g.toModel());
  const dequantized = new Graph(g.toModel());
  const raw = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const added: OnnxNode[] = [];
  for (const name of new Set(weightMatMuls(quantized).map((n) => n.inputs[1]))) {
    const t = quantized.initializers.get(name)!;
    const [K, N] = tensorDims(t);
    const qw = quantizeWeight(tensorFloats(t), K, N, 'int8', perChannel);
    const shape = perChannel ? [N] : [];
    quantized.initializers.set(`${name}_quantized`, makeRawTensor(`${name}_quantized`, 'int8', [K, N], qw.q));
    quantized.initializers.set(`${name}_scale`, makeRawTensor(`${name}_scale`, 'float32', shape, raw(qw.scale)));
    quantized.initializers.set(`${name}_zero_point`, makeRawTensor(`${name}_zero_point`, 'int8', shape, qw.zp));
    quantized.initializers.delete(name);
    added.push(
      node(`${name}_DequantizeLinear`, 'DequantizeLinear', [`${name}_quantized`, `${name}_scale`, `${name}_zero_point`], [name], {
        axis: 1,
      }),
    );
    dequantized.initializers.set(name, makeRawTensor(name, 'float32', [K, N], raw(qw.deq)));
  }
  quantized.nodes = [...added, ...quantized.nodes];
  quantized.invalidate();
  return { quantized, dequantized };
}

/**
 * Optimum's merged decoder: inputs of both decoders plus use_cache_branch (bool [1]); one If whose
 * then_branch is the decoder with past and else_branch the one without, both reading the graph inputs from
 * the outer scope. Initializers equal in both branches move to the outer graph (as Optimum deduplicates
 * them); the rest stay inside their branch. Branch outputs carry the If's output names, as Optimum's do.
 */
export function mergedDecoder(noCache: Graph, withPast: Graph = noCache): Graph {
  const merged = emptyGraph(noCache.opset, 'merged_decoder');
  merged.model.opsetImport = [...(noCache.model.opsetImport ?? [])];
  const same = (a: onnx.ITensorProto, b: onnx.ITensorProto | undefined) =>
    !!b &&
    a.dataType === b.dataType &&
    Buffer.from(a.rawData ?? []).equals(Buffer.from(b.rawData ?? [])) &&
    tensorDims(a).join() === tensorDims(b).join();
  const shared = new Set([...noCache.initializers].filter(([name, t]) => same(t, withPast.initializers.get(name))).map(([name]) => name));
  for (const name of shared) merged.initializers.set(name, noCache.initializers.get(name)!);
  const branch = (g: Graph, name: string) =>
    onnx.GraphProto.create({
      name,
      node: g.nodes.map((n) =>
        onnx.NodeProto.create({
          name: n.name,
          opType: n.opType,
          domain: n.domain,
          input: n.inputs,
          output: n.outputs,
          attribute: n.attributes,
        }),
      ),
      initializer: [...g.initializers].filter(([k]) => !shared.has(k)).map(([, t]) => t),
      output: g.outputs,
    });
  const GRAPH = onnx.AttributeProto.AttributeType.GRAPH;
  merged.inputs = [...noCache.inputs, valueInfo('use_cache_branch', 'bool', [1])];
  merged.outputs = [...noCache.outputs];
  merged.nodes = [
    {
      name: 'optimum::if',
      opType: 'If',
      domain: '',
      inputs: ['use_cache_branch'],
      outputs: noCache.outputs.map((o) => o.name ?? ''),
      attributes: [
        onnx.AttributeProto.create({ name: 'then_branch', type: GRAPH, g: branch(withPast, 'decoder_with_past') }),
        onnx.AttributeProto.create({ name: 'else_branch', type: GRAPH, g: branch(noCache, 'decoder') }),
      ],
    },
  ];
  return merged;
}
