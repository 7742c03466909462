/**
 * Passes over the compiled graph once the relevance nodes are emitted: Shape reads moved next to their
 * producers (so no forward activation is kept alive for its shape) and dead nodes dropped.
 */
import type { Graph, OnnxNode } from '../onnx/graph';

/**
 * onnxruntime runs nodes in graph order and frees a tensor after its last reader: a Shape read placed among
 * the relevance nodes would keep a large forward activation alive to the end. Place each right after the
 * node producing its input.
 */
export function hoistShapes(graph: Graph, hoisted: Set<OnnxNode>): void {
  const byInput = new Map<string, OnnxNode[]>();
  for (const n of hoisted) byInput.set(n.inputs[0], [...(byInput.get(n.inputs[0]) ?? []), n]);
  const early = [...hoisted].filter((n) => !graph.producer(n.inputs[0]));
  const order: OnnxNode[] = [...early];
  for (const n of graph.nodes) {
    if (hoisted.has(n)) continue;
    order.push(n);
    for (const o of n.outputs) order.push(...(byInput.get(o) ?? []));
  }
  graph.nodes = order;
  graph.invalidate();
}

/** Drops nodes no output depends on (the KV-cache outputs, unused shape arithmetic). */
export function pruneDeadNodes(graph: Graph): void {
  const needed = new Set(graph.outputs.map((o) => o.name ?? ''));
  const keep: OnnxNode[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep.push(n);
    for (const inp of n.inputs) needed.add(inp);
  }
  graph.nodes = keep.reverse();
  graph.sortTopologically();
  for (const name of [...graph.initializers.keys()]) if (!needed.has(name)) graph.initializers.delete(name);
  graph.inputs = graph.inputs.filter((i) => needed.has(i.name ?? '') || (i.name ?? '').startsWith('lrp_') || i.name === 'input_ids');
}
