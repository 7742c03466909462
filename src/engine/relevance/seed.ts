/**
 * The LM head as the seed sees it: logits = h·W (+ b) with a constant W, so the seed gradient at h is a
 * weighted pick of W's rows instead of a one-hot over the vocabulary.
 */
import type { Graph } from '../onnx/graph';
import type { GraphBuilder } from '../onnx/builder';
import type { WeightOrigin } from './canonicalize';

export interface LmHead {
  hidden: string;
  initializer: string;
  bias?: string;
  /** Rows of the head for token ids [batch, seq] → [batch, seq, hidden]. */
  rows(b: GraphBuilder, ids: string): string;
}

/** logits = h·W (+ b) with a constant W: the usual LM head (W may be the transposed, tied embedding). */
export function lmHead(graph: Graph, logits: string, origins: Map<string, WeightOrigin>): LmHead | undefined {
  let p = graph.producer(logits);
  let bias: string | undefined;
  if (p?.opType === 'Add') {
    bias = p.inputs.find((i) => graph.initializers.has(i) && (graph.initializers.get(i)!.dims ?? []).length === 1);
    const mm = p.inputs.find((i) => i !== bias);
    p = bias && mm ? graph.producer(mm) : undefined;
  }
  if (p?.opType !== 'MatMul') return undefined;
  const origin = origins.get(p.inputs[1]);
  if (!origin) return undefined;
  const w = origin.initializer;
  const rows = origin.transposed
    ? (b: GraphBuilder, ids: string) => b.op('Gather', [w, ids], { axis: 0 })
    : (b: GraphBuilder, ids: string) => b.Transpose(b.op('Gather', [w, ids], { axis: 1 }), [1, 2, 0]);
  return { hidden: p.inputs[0], initializer: w, bias, rows };
}
