/**
 * The shared vocabulary of pruning, circuits, correction and masked evaluation: which weights can be pruned, scores over them,
 * and masks. Element order everywhere is the ONNX initializer's row-major order.
 */

/** Kind of linear layer a weight belongs to (from the initializer name and the graph's patterns). */
export type LinearKind = 'q' | 'k' | 'v' | 'qkv' | 'o' | 'up' | 'gate' | 'down' | 'fc1' | 'fc2' | 'lm_head' | 'embed' | 'other';

/** A prunable weight: a 2-D float initializer consumed by a linear layer (MatMul or Gemm). */
export interface PrunableWeight {
  /** The ONNX initializer's name (masks and scores are keyed by it). */
  name: string;
  /** The initializer's dims as stored. */
  dims: [number, number];
  /**
   * The axis indexing output units: 1 for a MatMul weight stored [in, out], 0 for a Gemm transB weight
   * stored [out, in]. A "row" in Wanda's and the paper's sense (one output unit's incoming weights) is a
   * slice along the other axis.
   */
  outAxis: 0 | 1;
  /** Transformer block index, or null outside the blocks (embeddings, LM head). */
  layer: number | null;
  kind: LinearKind;
}

/** A score per weight element, keyed by initializer name; higher = more important (kept first). */
export type Scores = Map<string, Float32Array>;

/** Kept (1) or pruned (0) per element, unpacked; keyed by initializer name. */
export interface WeightMask {
  dims: number[];
  keep: Uint8Array;
}

export type Mask = Map<string, WeightMask>;

export type Allocation = 'row' | 'layer' | 'global';

/** Index of element (out, in) of a weight in row-major storage order. */
export function elementIndex(w: PrunableWeight, out: number, inp: number): number {
  return w.outAxis === 1 ? inp * w.dims[1] + out : out * w.dims[1] + inp;
}

export function outputUnits(w: PrunableWeight): number {
  return w.dims[w.outAxis];
}

export function inputUnits(w: PrunableWeight): number {
  return w.dims[1 - w.outAxis];
}
