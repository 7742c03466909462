/**
 * Whole-graph passes that run before the per-op rewrites: choosing the no-cache branch of a merged decoder
 * (`If` on use_cache_branch), attributing fp16/bf16 models in fp32, and onnxruntime's dynamic int8
 * quantisation (./quantized.ts).
 */
import { onnx } from 'onnx-proto';
import type { OnnxNode } from '../../onnx/graph';
import { attr } from '../../onnx/graph';
import { float16ToFloat32, makeRawTensor, tensorDims } from '../../onnx/tensor';
import { isExternal, readExternalChunks } from '../../onnx/externalData';
import { derivedTensor, isDeferred } from '../../onnx/deferred';
import { LrpLensError } from '../../errors';
import { countEmbedded, dequantizeDynamicMatMuls, tensorBytes } from './quantized';
import type { GraphPass } from './rewrite';

const D = onnx.TensorProto.DataType;
const USE_CACHE_BRANCH = 'use_cache_branch';

/**
 * Optimum's merged decoder: If(use_cache_branch) runs then_branch (the decoder with past) when the cache is
 * used and else_branch (the decoder without past) otherwise. Attribution runs the whole prompt without a
 * cache, so the If is replaced by the else branch's nodes and initializers; the branch reads outer tensors
 * (input_ids, shared weights) by name, and its outputs are renamed to the If's outputs.
 */
export const inlineMergedDecoder: GraphPass = (g) => {
  const node = g.nodes.find((n) => n.opType === 'If' && !n.domain && n.inputs[0] === USE_CACHE_BRANCH);
  if (!node) return undefined;
  const branch = attr(node, 'else_branch')?.g;
  if (!branch)
    throw new LrpLensError('model-corrupt', `The If node '${node.name}' on ${USE_CACHE_BRANCH} has no else_branch (the no-cache decoder).`);
  const nodes: OnnxNode[] = (branch.node ?? []).map((n, i) => ({
    name: `${node.name}/${n.name || `${n.opType}_${i}`}`,
    opType: n.opType ?? '',
    domain: n.domain ?? '',
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attributes: [...(n.attribute ?? [])],
  }));
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const rename = new Map<string, string>();
  (branch.output ?? []).forEach((o, i) => {
    const inner = o.name ?? '';
    const outer = node.outputs[i];
    if (!outer) return;
    // An output that is an initializer, an outer tensor or repeated keeps its name and is copied.
    if (produced.has(inner) && !rename.has(inner)) rename.set(inner, outer);
    else
      nodes.push({
        name: `${node.name}/${outer}`,
        opType: 'Identity',
        domain: '',
        inputs: [rename.get(inner) ?? inner],
        outputs: [outer],
        attributes: [],
      });
  });
  for (const n of nodes) {
    n.inputs = n.inputs.map((t) => rename.get(t) ?? t);
    n.outputs = n.outputs.map((t) => rename.get(t) ?? t);
  }
  for (const t of branch.initializer ?? []) g.initializers.set(t.name ?? '', t);
  g.nodes = g.nodes.flatMap((n) => (n === node ? nodes : [n]));
  g.invalidate();
  if (g.consumers(USE_CACHE_BRANCH).length === 0) g.inputs = g.inputs.filter((i) => i.name !== USE_CACHE_BRANCH);
  return 'merged decoder→no-cache branch';
};

/**
 * fp16 and bf16 models are attributed in fp32: every half-precision weight, constant, Cast target, dtype
 * attribute and declared input/output becomes float32, so the relevance graph (whose ε-rules and sums need
 * the range and precision) and the forward pass it contains run in float32 with the file's weights exactly.
 * Logits then differ from an fp16 run by fp16's own rounding of activations, not by the weights. Subgraph
 * value_info is converted too; the graph's own is not kept by Graph. One label, 'fp16→fp32', for both types.
 *
 * Converted weights are new float32 arrays, so they are embedded in the relevance graph even where the file
 * kept them as external data (read once with readExternalBytes): twice the fp16 size, and countEmbedded
 * refuses models whose fp32 weights would pass protobuf's 2 GiB (their fp32 export with model.onnx_data works).
 * Block-wise execution defers them instead (../../onnx/deferred.ts): converted per block when a segment runs.
 */
export const halfToFloat32: GraphPass = (g) => {
  let changed = false;
  const dir = g.source?.dir;
  for (const [name, t] of g.initializers) {
    if (!isHalf(t.dataType)) continue;
    const f = derivedTensor(g, name, tensorDims(t), (out) => floatValues(t, dir, out));
    if (!isDeferred(f))
      countEmbedded(
        g,
        tensorDims(t).reduce((a, b) => a * b, 4),
      );
    g.initializers.set(name, f);
    changed = true;
  }
  g.nodes = g.nodes.map((n) => {
    const attributes = n.attributes.map((a) => floatAttribute(n.opType, n.domain, a, dir));
    if (attributes.every((a, i) => a === n.attributes[i])) return n;
    changed = true;
    return { ...n, attributes };
  });
  const inputs = g.inputs.map(floatValueInfo);
  const outputs = g.outputs.map(floatValueInfo);
  changed ||= inputs.some((v, i) => v !== g.inputs[i]) || outputs.some((v, i) => v !== g.outputs[i]);
  g.inputs = inputs;
  g.outputs = outputs;
  g.invalidate();
  return changed ? 'fp16→fp32' : undefined;
};

let halfTable: Float32Array | undefined;

/** A half-precision tensor (embedded, in int32_data, or external) as float32; bfloat16 is float32's top half. */
function floatTensor(t: onnx.ITensorProto, dir: string | undefined): onnx.TensorProto {
  const out = floatValues(t, dir);
  return makeRawTensor(t.name ?? '', 'float32', tensorDims(t), new Uint8Array(out.buffer));
}

/** Bytes of fp16 read at once from external data: the stored tensor is converted piece by piece. */
const CHUNK_BYTES = 1 << 22;
let chunk: Uint8Array | undefined;

function floatValues(t: onnx.ITensorProto, dir: string | undefined, into?: Float32Array): Float32Array {
  const out = into ?? new Float32Array(tensorDims(t).reduce((a, b) => a * b, 1));
  const bfloat = t.dataType === D.BFLOAT16;
  if (isExternal(t) && dir) {
    chunk ??= new Uint8Array(CHUNK_BYTES);
    readExternalChunks(t, dir, chunk, (bytes, at) =>
      widen(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2), out, at / 2, bfloat),
    );
    return out;
  }
  const raw = t.rawData?.length || isExternal(t) ? tensorBytes(t, dir) : undefined;
  const bits = raw ? new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2) : Uint16Array.from(t.int32Data ?? []);
  widen(bits, out, 0, bfloat);
  return out;
}

function widen(bits: Uint16Array, out: Float32Array, at: number, bfloat: boolean): void {
  if (bfloat) {
    const words = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < bits.length; i++) words[at + i] = bits[i] << 16;
    return;
  }
  halfTable ??= Float32Array.from({ length: 65536 }, (_, h) => float16ToFloat32(h));
  const table = halfTable;
  for (let i = 0; i < bits.length; i++) out[at + i] = table[bits[i]];
}

function isHalf(code: number | null | undefined): boolean {
  return code === D.FLOAT16 || code === D.BFLOAT16;
}

function floatValueInfo(v: onnx.IValueInfoProto): onnx.IValueInfoProto {
  const tt = v.type?.tensorType;
  if (!tt || !isHalf(tt.elemType)) return v;
  return onnx.ValueInfoProto.create({ ...v, type: { ...v.type, tensorType: { ...tt, elemType: D.FLOAT } } });
}

/** Attributes naming an element type: Cast's `to`; `dtype` of EyeLike, RandomNormal(Like), RandomUniform(Like), Bernoulli. */
function isTypeAttribute(opType: string, domain: string, a: onnx.IAttributeProto): boolean {
  if (domain && domain !== 'ai.onnx') return false;
  return a.name === (opType === 'Cast' ? 'to' : 'dtype') && a.type === onnx.AttributeProto.AttributeType.INT;
}

/** Tensor values (Constant, ConstantOfShape), type attributes and subgraphs (If, Loop, Scan), converted. */
function floatAttribute(opType: string, domain: string, a: onnx.IAttributeProto, dir: string | undefined): onnx.IAttributeProto {
  if (isTypeAttribute(opType, domain, a) && isHalf(Number(a.i))) return onnx.AttributeProto.create({ ...a, i: D.FLOAT });
  if (a.t && isHalf(a.t.dataType)) return onnx.AttributeProto.create({ ...a, t: floatTensor(a.t, dir) });
  if (a.tensors?.some((t) => isHalf(t.dataType))) {
    return onnx.AttributeProto.create({ ...a, tensors: a.tensors.map((t) => (isHalf(t.dataType) ? floatTensor(t, dir) : t)) });
  }
  if (a.g) return onnx.AttributeProto.create({ ...a, g: floatGraph(a.g, dir) });
  if (a.graphs?.length) return onnx.AttributeProto.create({ ...a, graphs: a.graphs.map((s) => floatGraph(s, dir)) });
  return a;
}

function floatGraph(s: onnx.IGraphProto, dir: string | undefined): onnx.GraphProto {
  return onnx.GraphProto.create({
    ...s,
    initializer: (s.initializer ?? []).map((t) => (isHalf(t.dataType) ? floatTensor(t, dir) : t)),
    node: (s.node ?? []).map((n) =>
      onnx.NodeProto.create({ ...n, attribute: (n.attribute ?? []).map((a) => floatAttribute(n.opType ?? '', n.domain ?? '', a, dir)) }),
    ),
    input: (s.input ?? []).map(floatValueInfo),
    output: (s.output ?? []).map(floatValueInfo),
    valueInfo: (s.valueInfo ?? []).map(floatValueInfo),
  });
}

/** In order: the merged decoder's branch may itself be fp16, and dynamic quantisation reads float scales. */
export const GRAPH_PASSES: GraphPass[] = [inlineMergedDecoder, halfToFloat32, dequantizeDynamicMatMuls];
