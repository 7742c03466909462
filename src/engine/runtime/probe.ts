/**
 * Shape probing: run the model twice on tiny batches of different sizes with every intermediate tensor
 * fetched, so the compiler knows each tensor's type, rank and which dimensions are static. This replaces a
 * symbolic shape inference over the many shape-computing subgraphs that exporters emit.
 */
import { onnx } from 'onnx-proto';
import { Graph } from '../onnx/graph';
import { encodeModel } from '../onnx/io';
import { LrpLensError } from '../errors';
import type { DType } from '../onnx/tensor';
import { tensorSize } from '../onnx/tensor';
import { GraphBuilder, makeAttribute } from '../onnx/builder';
import { Session } from './session';
import { causalLmFeeds, inputSpecs, leftPad } from './feeds';

export interface TensorShapeInfo {
  dtype: DType;
  /** Static size per axis, or null where it changed between the probes (batch or sequence). */
  dims: (number | null)[];
  /** Axis whose size was the batch size in both probes (0 for most activations), or -1. */
  batchAxis: number;
}

export type ShapeTable = Map<string, TensorShapeInfo>;

const PROBES = [
  { batch: 2, seq: 3 },
  { batch: 3, seq: 5 },
];

const ortType: Record<string, DType> = {
  float32: 'float32', float64: 'float64', float16: 'float16', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', bool: 'bool', string: 'string',
};

export async function probeShapes(graph: Graph, tokenRange = 8): Promise<ShapeTable> {
  const probeGraph = withoutWeightBytes(new Graph(graph.toModel()));
  const known = new Set(probeGraph.outputs.map((o) => o.name));
  const names: string[] = [];
  for (const n of probeGraph.nodes) {
    for (const o of n.outputs) {
      if (o && !known.has(o)) {
        known.add(o);
        names.push(o);
        probeGraph.outputs.push(onnx.ValueInfoProto.create({ name: o }));
      }
    }
  }
  const session = await Session.create(encodeModel(probeGraph));
  const specs = inputSpecs(probeGraph.inputs);
  const results: Record<string, { type: string; dims: readonly number[] }>[] = [];
  try {
    for (const p of PROBES) {
      const rows = Array.from({ length: p.batch }, (_, r) => Array.from({ length: p.seq }, (_, i) => 1 + ((r + i) % Math.max(1, tokenRange - 1))));
      const feeds = causalLmFeeds(specs, leftPad(rows, 0));
      const out = { ...feeds, ...(await session.run(feeds)) };
      results.push(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { type: v.type, dims: v.dims }])));
    }
  } finally {
    await session.release();
  }
  const table: ShapeTable = new Map();
  for (const name of Object.keys(results[0])) {
    const a = results[0][name];
    const b = results[1][name];
    if (!a || !b) continue;
    const dtype = ortType[a.type];
    if (!dtype) throw new LrpLensError('unsupported-graph', `Tensor ${name} has unsupported type ${a.type}.`);
    if (a.dims.length !== b.dims.length) {
      throw new LrpLensError('unsupported-graph', `Tensor ${name} changes rank with the batch or sequence size; this graph is not supported.`);
    }
    const dims = a.dims.map((d, i) => (d === b.dims[i] ? d : null));
    const batchAxis = a.dims.findIndex((d, i) => d === PROBES[0].batch && b.dims[i] === PROBES[1].batch);
    table.set(name, { dtype, dims, batchAxis });
  }
  return table;
}

/**
 * Shapes never depend on weight values, so large float weights become ConstantOfShape zeros: the probe
 * model then serialises in milliseconds even for multi-GB models.
 */
function withoutWeightBytes(g: Graph): Graph {
  const b = new GraphBuilder(g, 'probe');
  const replaced: ReturnType<GraphBuilder['node']>[] = [];
  const FLOAT = [onnx.TensorProto.DataType.FLOAT, onnx.TensorProto.DataType.DOUBLE, onnx.TensorProto.DataType.FLOAT16];
  for (const [name, t] of [...g.initializers]) {
    if (tensorSize(t) < 4096 || !FLOAT.includes(t.dataType ?? 0)) continue;
    g.initializers.delete(name);
    const zero = onnx.TensorProto.create({ name: 'zero', dataType: t.dataType, dims: [1], rawData: new Uint8Array(t.dataType === onnx.TensorProto.DataType.DOUBLE ? 8 : t.dataType === onnx.TensorProto.DataType.FLOAT ? 4 : 2) });
    const shape = b.ints((t.dims ?? []).map(Number));
    g.nodes.push({ name: `probe/${name}`, opType: 'ConstantOfShape', domain: '', inputs: [shape], outputs: [name], attributes: [makeAttribute('value', zero)] });
    replaced.push([name]);
  }
  if (replaced.length) g.sortTopologically();
  return g;
}
