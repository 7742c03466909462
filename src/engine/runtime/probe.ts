/**
 * Shape probing: run the model twice on tiny batches of different sizes with every intermediate tensor
 * fetched, so the compiler knows each tensor's type, rank and which dimensions are static. This replaces a
 * symbolic shape inference over the many shape-computing subgraphs that exporters emit.
 */
import { onnx } from 'onnx-proto';
import { Graph, attrInt } from '../onnx/graph';
import type { OnnxNode } from '../onnx/graph';
import { encodeModel } from '../onnx/io';
import { LrpLensError } from '../errors';
import type { DType } from '../onnx/tensor';
import { dtypeOf, tensorSize } from '../onnx/tensor';
import { GraphBuilder, makeAttribute } from '../onnx/builder';
import { embeddedTensor, isExternal } from '../onnx/externalData';
import { isDeferred } from '../onnx/deferred';
import { Session } from './session';
import { causalLmFeeds, inputSpecs, leftPad } from './feeds';
import type { ShapeTable } from '../onnx/shapes';

const PROBE_PREFIX = 'lrp-probe/';

const PROBES = [
  { batch: 2, seq: 3 },
  { batch: 3, seq: 5 },
];

const ortType: Record<string, DType> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
  string: 'string',
};

export interface ProbeOptions {
  /**
   * Replaces the probes' lengths (3 and 5): a graph whose tensors have sizes that are fractions of the length
   * (attention in query chunks) needs lengths where no such size coincides between the probes.
   */
  sequences?: [number, number];
  /** Probe only these tensors (every intermediate is fetched at once: at longer lengths that is memory). */
  only?: (tensor: string) => boolean;
  tokenRange?: number;
}

export async function probeShapes(graph: Graph, options: ProbeOptions = {}): Promise<ShapeTable> {
  const { sequences, only = () => true, tokenRange = 8 } = options;
  const probes = sequences ? PROBES.map((p, i) => ({ ...p, seq: sequences[i] })) : PROBES;
  const table: ShapeTable = new Map();
  const probeGraph = withoutWeightBytes(graph.clone(), table);
  const known = new Set(probeGraph.outputs.map((o) => o.name));
  const live = inputDependent(probeGraph);
  // Tensors computed from weights alone (a transposed tied LM head, say) can be huge: fetch their Shape instead.
  const shapeOf = new Map<string, string>();
  const shapeNodes: Graph['nodes'] = [];
  for (const n of probeGraph.nodes) {
    for (const o of n.outputs) {
      if (!o || known.has(o) || o.startsWith(PROBE_PREFIX) || !only(o)) continue;
      known.add(o);
      let fetched = o;
      if (!live.has(o)) {
        fetched = `${PROBE_PREFIX}shape/${o}`;
        shapeOf.set(fetched, o);
        shapeNodes.push({ name: fetched, opType: 'Shape', domain: '', inputs: [o], outputs: [fetched], attributes: [] });
      }
      probeGraph.outputs.push(onnx.ValueInfoProto.create({ name: fetched }));
    }
  }
  probeGraph.nodes.push(...shapeNodes);
  probeGraph.invalidate();
  const session = await Session.create(encodeModel(probeGraph), { optimization: 'basic', arena: false });
  const specs = inputSpecs(probeGraph.inputs);
  const results: Record<string, { type: string; dims: readonly number[] }>[] = [];
  const softmaxes = probeGraph.nodes.filter((n) => n.opType === 'Softmax' && !n.domain).map((n) => n.outputs[0]);
  const causal = new Set(softmaxes);
  try {
    for (const p of probes) {
      const rows = Array.from({ length: p.batch }, (_, r) =>
        Array.from({ length: p.seq }, (_, i) => 1 + ((r + i) % Math.max(1, tokenRange - 1))),
      );
      const feeds = causalLmFeeds(specs, leftPad(rows, 0));
      const out = { ...feeds, ...(await session.run(feeds)) };
      for (const t of softmaxes) if (!out[t] || !zeroAboveDiagonal(out[t].data as ArrayLike<number>, out[t].dims, p.seq)) causal.delete(t);
      results.push(
        Object.fromEntries(
          Object.entries(out).map(([k, v]) => {
            const target = shapeOf.get(k);
            // Weight-only tensors are never relevant; their type is reported as the graph's float type.
            return target
              ? [target, { type: 'float32', dims: Array.from(v.data as BigInt64Array, Number) }]
              : [k, { type: v.type, dims: v.dims }];
          }),
        ),
      );
    }
  } finally {
    await session.release();
  }
  for (const name of Object.keys(results[0])) {
    const a = results[0][name];
    const b = results[1][name];
    if (!a || !b) continue;
    const dtype = ortType[a.type];
    if (!dtype) throw new LrpLensError('unsupported-graph', `Tensor ${name} has unsupported type ${a.type}.`);
    if (a.dims.length !== b.dims.length) {
      throw new LrpLensError(
        'unsupported-graph',
        `Tensor ${name} changes rank with the batch or sequence size; this graph is not supported.`,
      );
    }
    const dims = a.dims.map((d, i) => (d === b.dims[i] ? d : null));
    const batchAxis = a.dims.findIndex((d, i) => d === probes[0].batch && b.dims[i] === probes[1].batch);
    table.set(name, { dtype, dims, batchAxis, ...(causal.has(name) ? { causal: true } : {}) });
  }
  return table;
}

/** Whether every [seq × seq] matrix of `data` (the last two axes) is zero above its diagonal. */
function zeroAboveDiagonal(data: ArrayLike<number>, dims: readonly number[], seq: number): boolean {
  const r = dims.length;
  if (r < 2 || dims[r - 1] !== seq || dims[r - 2] !== seq) return false;
  for (let base = 0; base < data.length; base += seq * seq)
    for (let i = 0; i < seq; i++) for (let j = i + 1; j < seq; j++) if (data[base + i * seq + j] !== 0) return false;
  return true;
}

/**
 * Shapes never depend on weight values, so the probe graph drops large float weights: a MatMul by a weight
 * [k, n] becomes ReduceSum(x)·zeros[n] and an embedding Gather becomes ids·zeros[d] (same output shapes);
 * weights read any other way become ConstantOfShape zeros. The probe then costs milliseconds even for
 * multi-GB models.
 */
function withoutWeightBytes(g: Graph, staticShapes: ShapeTable): Graph {
  const b = new GraphBuilder(g, PROBE_PREFIX + 'w');
  const FLOAT = [onnx.TensorProto.DataType.FLOAT, onnx.TensorProto.DataType.DOUBLE, onnx.TensorProto.DataType.FLOAT16];
  const rewritten = new Map<OnnxNode, OnnxNode[]>();
  let filled = 0;
  for (const [name, t] of [...g.initializers]) {
    const float = FLOAT.includes(t.dataType ?? 0);
    if (g.consumers(name).length === 0 && !g.isGraphOutput(name)) {
      // Unread (the packed source of a dequantised weight): not worth reading.
      g.initializers.delete(name);
      continue;
    }
    if (isExternal(t) && !float) {
      // Small integer constants stored externally: the probe model is built from bytes, so embed them.
      g.initializers.set(name, embeddedTensor(t, g.source!.dir));
      continue;
    }
    // External and deferred weights stay unread (their bytes are a file read or a conversion away).
    if ((tensorSize(t) < 4096 && !isExternal(t) && !isDeferred(t)) || !float) continue;
    const dims = (t.dims ?? []).map(Number);
    const dtype = dtypeOf(t.dataType ?? 0);
    const consumers = g.consumers(name);
    const transposed = (c: OnnxNode) =>
      c.opType === 'Transpose' && g.consumers(c.outputs[0]).every((m) => isWeightMatMul(m, c.outputs[0])) && !g.isGraphOutput(c.outputs[0]);
    const cheap = dims.length === 2 && consumers.every((c) => isWeightMatMul(c, name) || isEmbeddingGather(g, c, name) || transposed(c));
    g.initializers.delete(name);
    if (cheap) {
      for (const c of consumers) {
        if (!transposed(c)) {
          rewritten.set(c, shapeOnly(b, c, dtype, dims));
          continue;
        }
        // A tied LM head: MatMul(x, Transpose(W)). Its shape is known without running it.
        const tdims = [dims[1], dims[0]];
        staticShapes.set(c.outputs[0], { dtype, dims: tdims, batchAxis: -1 });
        rewritten.set(c, []);
        for (const m of g.consumers(c.outputs[0])) rewritten.set(m, shapeOnly(b, m, dtype, tdims));
      }
      continue;
    }
    const zero = onnx.TensorProto.create({
      name: 'zero',
      dataType: t.dataType,
      dims: [1],
      rawData: new Uint8Array(dtype === 'float64' ? 8 : dtype === 'float32' ? 4 : 2),
    });
    g.nodes.push({
      name: `${PROBE_PREFIX}${name}`,
      opType: 'ConstantOfShape',
      domain: '',
      inputs: [b.ints(dims)],
      outputs: [name],
      attributes: [makeAttribute('value', zero)],
    });
    filled++;
  }
  if (rewritten.size || filled) {
    g.nodes = g.nodes.flatMap((n) => rewritten.get(n) ?? [n]);
    g.sortTopologically();
  }
  return g;
}

function isWeightMatMul(n: OnnxNode, w: string): boolean {
  return n.opType === 'MatMul' && n.inputs[1] === w && n.inputs[0] !== w;
}

function isEmbeddingGather(g: Graph, n: OnnxNode, w: string): boolean {
  return n.opType === 'Gather' && n.inputs[0] === w && n.inputs[1] !== w && attrInt(n, 'axis', 0) === 0 && !g.initializers.has(n.inputs[1]);
}

/** A node computing a zero tensor of the same shape as `n`'s output, without the weight. */
function shapeOnly(b: GraphBuilder, n: OnnxNode, dtype: DType, dims: number[]): OnnxNode[] {
  const saved = b.graph.nodes;
  b.graph.nodes = [];
  const zeros = b.constant(dtype, [dims[1]], new Array<number>(dims[1]).fill(0), 'zeros');
  const column =
    n.opType === 'MatMul' ? b.ReduceSum(n.inputs[0], [-1], true) : b.op('Unsqueeze', [b.Cast(n.inputs[1], dtype), b.ints([-1])]);
  const out = b.Mul(column, zeros);
  const emitted = b.graph.nodes;
  b.graph.nodes = saved;
  for (const e of emitted) {
    e.name = `${PROBE_PREFIX}${e.name}`;
    e.outputs = e.outputs.map((o) => (o === out ? n.outputs[0] : o));
  }
  return emitted;
}

/** Tensors that depend on a graph input (everything else is a constant of the weights). */
function inputDependent(g: Graph): Set<string> {
  const live = new Set(g.inputs.map((i) => i.name ?? ''));
  for (const n of g.nodes) if (n.inputs.some((i) => live.has(i))) for (const o of n.outputs) live.add(o);
  return live;
}
