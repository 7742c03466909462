/**
 * Canonicalisation: rewrite ops that have an equivalent in the small op set the rules cover, so one rule
 * serves every export style. Whole-graph passes first (merged decoders, fp16, dynamic q8), then one rewrite
 * per op type (tables in ./rewrites). Numerics are unchanged except where ./rewrites/quantized.ts says so.
 */
import type { Graph, OnnxNode } from '../onnx/graph';
import { makeTensor } from '../onnx/tensor';
import { deferWeightsOf } from '../onnx/deferred';
import { onnx } from 'onnx-proto';
import type { Rewrite, RewriteTable } from './rewrites/rewrite';
import { STANDARD_REWRITES } from './rewrites/standard';
import { NORM_REWRITES } from './rewrites/norms';
import { ATTENTION_REWRITES } from './rewrites/attention';
import { QUANTIZED_REWRITES } from './rewrites/quantized';
import { GRAPH_PASSES } from './rewrites/graphPasses';

/** Where a weight consumed by a MatMul came from, so weight relevance maps back to the file's initializer. */
export interface WeightOrigin {
  initializer: string;
  transposed: boolean;
}

export interface CanonicalGraph {
  graph: Graph;
  /** Canonical MatMul weight tensor → initializer in the original file. */
  weightOrigins: Map<string, WeightOrigin>;
  /** Rewrites and passes applied, with counts (reported by `inspect`). */
  rewrites: Record<string, number>;
}

/** Rewrites by domain ('' is the default ONNX domain), then op type. */
export const REWRITES: Record<string, RewriteTable> = {
  '': STANDARD_REWRITES,
  'com.microsoft': { ...NORM_REWRITES, ...ATTENTION_REWRITES, ...QUANTIZED_REWRITES },
};

export function rewriteFor(node: OnnxNode): Rewrite | undefined {
  const domain = node.domain === 'ai.onnx' ? '' : node.domain;
  return REWRITES[domain]?.[node.opType];
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

export interface CanonicalizeOptions {
  /** Keep weights derived from fp16 / quantised ones as recipes made when needed (block-wise execution). */
  deferWeights?: boolean;
}

export function canonicalize(graph: Graph, options: CanonicalizeOptions = {}): CanonicalGraph {
  if (options.deferWeights) deferWeightsOf(graph);
  hoistConstants(graph);
  const rewrites: Record<string, number> = {};
  for (const pass of GRAPH_PASSES) {
    const label = pass(graph);
    if (label) rewrites[label] = (rewrites[label] ?? 0) + 1;
  }
  // A rewrite may emit ops that have rewrites of their own (a fused attention emitting a Gemm, say).
  for (let round = 0; round < 4; round++) {
    let changed = false;
    const out: OnnxNode[] = [];
    for (const node of graph.nodes) {
      const replaced = rewriteFor(node)?.(node, graph);
      if (replaced) {
        const label = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}.${node.opType}` : node.opType;
        rewrites[label] = (rewrites[label] ?? 0) + 1;
        out.push(...replaced);
        changed = true;
      } else out.push(node);
    }
    graph.nodes = out;
    graph.invalidate();
    if (!changed) break;
  }
  hoistConstants(graph);
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
