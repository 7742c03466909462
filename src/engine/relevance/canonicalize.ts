/**
 * Canonicalisation: rewrite ops that have an equivalent in the small op set the rules cover, so one rule
 * serves every export style. One rewrite per op type, numerics unchanged.
 */
import { Graph, attrFloat, attrInt } from '../onnx/graph';
import type { OnnxNode } from '../onnx/graph';
import { GraphBuilder } from '../onnx/builder';
import { makeTensor } from '../onnx/tensor';
import { onnx } from 'onnx-proto';

type Rewrite = (node: OnnxNode, b: GraphBuilder, g: Graph) => OnnxNode[] | undefined;

/** Where a weight consumed by a MatMul came from, so weight relevance maps back to the file's initializer. */
export interface WeightOrigin {
  initializer: string;
  transposed: boolean;
}

export interface CanonicalGraph {
  graph: Graph;
  /** Canonical MatMul weight tensor → initializer in the original file. */
  weightOrigins: Map<string, WeightOrigin>;
  /** Op types rewritten, with counts (reported by `inspect`). */
  rewrites: Record<string, number>;
}

/** Collects the nodes a rewrite emits instead of appending them to the graph. */
function emitInto(g: Graph, fn: (b: GraphBuilder) => void, hint: string): OnnxNode[] {
  const saved = g.nodes;
  g.nodes = [];
  fn(new GraphBuilder(g, hint));
  const emitted = g.nodes;
  g.nodes = saved;
  g.invalidate();
  return emitted;
}

function renameLastOutput(nodes: OnnxNode[], from: string, to: string): void {
  for (const n of nodes) n.outputs = n.outputs.map((o) => (o === from ? to : o));
}

const rewriteGemm: Rewrite = (node, _b, g) => {
  const [a, bIn, c] = node.inputs;
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  const dtype = floatTypeOf(g, bIn);
  let out = '';
  const nodes = emitInto(g, (b) => {
    const lhs = attrInt(node, 'transA', 0) ? b.Transpose(a, [1, 0]) : a;
    const rhs = attrInt(node, 'transB', 0) ? b.Transpose(bIn, [1, 0]) : bIn;
    out = b.MatMul(lhs, rhs);
    if (alpha !== 1) out = b.Mul(out, b.scalar(dtype, alpha));
    if (c) out = b.Add(out, beta !== 1 ? b.Mul(c, b.scalar(dtype, beta)) : c);
  }, node.name);
  renameLastOutput(nodes, out, node.outputs[0]);
  return nodes;
};

const rewriteLayerNormalization: Rewrite = (node, _b, g) => {
  const [x, scale, bias] = node.inputs;
  const axis = attrInt(node, 'axis', -1);
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const dtype = floatTypeOf(g, scale);
  if (axis >= 0) return undefined; // needs the rank; left for the rule table to refuse with a clear message
  const axes = Array.from({ length: -axis }, (_, i) => axis + i);
  let out = '';
  const nodes = emitInto(g, (b) => {
    const mean = reduceMean(b, g, x, axes);
    const centred = b.Sub(x, mean);
    const variance = reduceMean(b, g, b.op('Pow', [centred, b.scalar(dtype, 2)]), axes);
    const std = b.op('Sqrt', [b.Add(variance, b.scalar(dtype, eps))]);
    out = b.Mul(b.Div(centred, std), scale);
    if (bias) out = b.Add(out, bias);
  }, node.name);
  renameLastOutput(nodes, out, node.outputs[0]);
  return nodes;
};

function reduceMean(b: GraphBuilder, g: Graph, x: string, axes: number[]): string {
  return g.opset >= 18 ? b.op('ReduceMean', [x, b.ints(axes)], { keepdims: 1 }) : b.op('ReduceMean', [x], { axes, keepdims: 1 });
}

function floatTypeOf(g: Graph, tensor: string): 'float32' | 'float64' {
  const t = g.initializers.get(tensor);
  return t?.dataType === onnx.TensorProto.DataType.DOUBLE ? 'float64' : 'float32';
}

/** Constant nodes become initializers, so "is this a constant?" has one answer. */
function hoistConstants(g: Graph): void {
  g.nodes = g.nodes.filter((n) => {
    if (n.opType !== 'Constant' || n.domain) return true;
    const name = n.outputs[0];
    const v = n.attributes.find((a) => a.name === 'value');
    if (v?.t) {
      g.initializers.set(name, onnx.TensorProto.create({ ...v.t, name }));
      return false;
    }
    const values = g.constantValues(name);
    if (!values) return true; // sparse or string constants stay as nodes
    const isInt = n.attributes.some((a) => a.name === 'value_int' || a.name === 'value_ints');
    const isList = n.attributes.some((a) => a.name === 'value_ints' || a.name === 'value_floats');
    g.initializers.set(name, makeTensor(name, isInt ? 'int64' : 'float32', isList ? [values.length] : [], values));
    return false;
  });
  g.invalidate();
}

export const REWRITES: Record<string, Rewrite> = {
  Gemm: rewriteGemm,
  LayerNormalization: rewriteLayerNormalization,
};

export function canonicalize(graph: Graph): CanonicalGraph {
  hoistConstants(graph);
  const rewrites: Record<string, number> = {};
  const out: OnnxNode[] = [];
  for (const node of graph.nodes) {
    const rw = !node.domain || node.domain === 'ai.onnx' ? REWRITES[node.opType] : undefined;
    const replaced = rw ? rw(node, new GraphBuilder(graph, node.name), graph) : undefined;
    if (replaced) {
      rewrites[node.opType] = (rewrites[node.opType] ?? 0) + 1;
      out.push(...replaced);
    } else out.push(node);
  }
  graph.nodes = out;
  graph.invalidate();
  graph.sortTopologically();
  return { graph, weightOrigins: findWeightOrigins(graph), rewrites };
}

function findWeightOrigins(g: Graph): Map<string, WeightOrigin> {
  const origins = new Map<string, WeightOrigin>();
  for (const n of g.nodes) {
    if (n.opType !== 'MatMul') continue;
    const w = n.inputs[1];
    const init = g.initializers.get(w);
    if (init && (init.dims ?? []).length === 2) {
      origins.set(w, { initializer: w, transposed: false });
      continue;
    }
    const p = g.producer(w);
    if (p?.opType === 'Transpose' && g.initializers.has(p.inputs[0]) && (g.initializers.get(p.inputs[0])!.dims ?? []).length === 2) {
      origins.set(w, { initializer: p.inputs[0], transposed: true });
    }
  }
  return origins;
}

