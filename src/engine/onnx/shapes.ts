/** What is known of each tensor's shape (filled by runtime/probe.ts, read by the relevance compiler). */
import type { DType } from './tensor';

export interface TensorShapeInfo {
  dtype: DType;
  /** Static size per axis, or null where it changed between the probes (batch or sequence). */
  dims: (number | null)[];
  /** Axis whose size was the batch size in both probes (0 for most activations), or -1. */
  batchAxis: number;
  /**
   * Softmax outputs only: [.., T, T] and exactly zero above the diagonal in every probe — no query read a later
   * key (relevance/attentionChunks.ts may then cut the keys per query chunk).
   */
  causal?: boolean;
}

export type ShapeTable = Map<string, TensorShapeInfo>;
