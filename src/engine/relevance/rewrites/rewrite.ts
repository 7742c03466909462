/**
 * What every canonicalisation rewrite shares: the signatures (per-op rewrite, whole-graph pass), and helpers to emit replacement nodes with the
 * builder while keeping the replaced node's output names.
 */
import { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../../onnx/graph';
import { GraphBuilder } from '../../onnx/builder';

/**
 * Replaces `node` with standard ONNX nodes computing the same outputs (same names, same numerics), or returns
 * undefined to leave it (the rule table then accepts or refuses it).
 */
export type Rewrite = (node: OnnxNode, g: Graph) => OnnxNode[] | undefined;

/** A whole-graph pass: rewrites the graph in place and returns a label for `inspect` when it changed something. */
export type GraphPass = (g: Graph) => string | undefined;

/** A table of rewrites keyed by op type, for one domain. */
export type RewriteTable = Record<string, Rewrite>;

/** Collects the nodes `fn` emits through a builder instead of appending them to the graph. */
export function emitInto(g: Graph, fn: (b: GraphBuilder) => void, hint: string): OnnxNode[] {
  const saved = g.nodes;
  g.nodes = [];
  fn(new GraphBuilder(g, hint));
  const emitted = g.nodes;
  g.nodes = saved;
  g.invalidate();
  return emitted;
}

/** Renames the emitted tensor `from` to the replaced node's output name `to` (where produced and where read). */
export function renameOutput(nodes: OnnxNode[], from: string, to: string): void {
  for (const n of nodes) {
    n.outputs = n.outputs.map((o) => (o === from ? to : o));
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
  }
}

/** Emits with `fn`, whose returned tensors become the node's outputs, in order ('' for one not produced). */
export function replaceWith(node: OnnxNode, g: Graph, fn: (b: GraphBuilder) => string[]): OnnxNode[] {
  let outs: string[] = [];
  const nodes = emitInto(
    g,
    (b) => {
      outs = fn(b);
    },
    node.name,
  );
  outs.forEach((o, i) => {
    if (o && node.outputs[i]) renameOutput(nodes, o, node.outputs[i]);
  });
  return nodes;
}

export function floatTypeOf(g: Graph, tensor: string): 'float32' | 'float64' {
  const t = g.initializers.get(tensor);
  return t?.dataType === onnx.TensorProto.DataType.DOUBLE ? 'float64' : 'float32';
}

/** ReduceMean over `axes` with keepdims, in the form the graph's opset expects (axes input from opset 18). */
export function reduceMean(b: GraphBuilder, g: Graph, x: string, axes: number[]): string {
  return g.opset >= 18 ? b.op('ReduceMean', [x, b.ints(axes)], { keepdims: 1 }) : b.op('ReduceMean', [x], { axes, keepdims: 1 });
}
