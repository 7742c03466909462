/**
 * Whole-graph passes that run before the per-op rewrites: choosing the no-cache branch of a merged decoder
 * (`If` on use_cache_branch) and attributing fp16 models in fp32.
 */
import type { Graph } from '../../onnx/graph';

/** A pass rewrites the graph in place and returns a label for `inspect` when it changed something. */
export type GraphPass = (g: Graph) => string | undefined;

export const GRAPH_PASSES: GraphPass[] = [];
