/**
 * Block-wise execution, the forward structure: the residual stream h_0 … h_L cuts a causal LM into segments —
 * the embedding (tokens → h_0), one per block (h_l → h_l+1) and the head (h_L → logits) — such that every
 * relevant tensor belongs to exactly one segment and a segment reads relevant tensors of its own or its input
 * h only. Relevance then flows between segments through h alone, which is what lets the engine recompute one
 * block at a time (gradient checkpointing, as torch.utils.checkpoint does per segment).
 */
import type { Graph } from '../onnx/graph';
import { findNormStatistics } from './patterns';
import type { ModelPatterns } from './patterns';

export interface BlockStructure {
  /** h_0 … h_L: the residual stream entering each block, then the final norm's input. */
  stream: string[];
  /** Segment of each relevant forward tensor: 0 the embedding, l+1 block l, L+1 the head. */
  segmentOf: Map<string, number>;
}

export type BlockAnalysis = { ok: true; blocks: BlockStructure } | { ok: false; reason: string };

/** Number of segments: the embedding, the L blocks and the head. */
export function segmentCount(blocks: BlockStructure): number {
  return blocks.stream.length + 1;
}

export function analyseBlocks(g: Graph, patterns: ModelPatterns): BlockAnalysis {
  const inputs = patterns.blockInputs;
  if (!inputs || inputs.length === 0) return { ok: false, reason: 'the residual stream between blocks was not recognised' };
  const stream = [...inputs, finalNormInput(g)];
  if (new Set(stream).size !== stream.length || !stream.every((t) => patterns.relevant.has(t)))
    return { ok: false, reason: 'the final norm does not read the residual stream after the last block' };
  const at = new Map(stream.map((t, k) => [t, k]));
  const segmentOf = new Map<string, number>();
  // A consumer of h_k lies in segment k+1; any other relevant tensor in its producer's segment.
  const segmentIn = (t: string) => (at.has(t) ? at.get(t)! + 1 : segmentOf.get(t));
  for (const n of g.nodes) {
    const outs = n.outputs.filter((o) => patterns.relevant.has(o));
    if (outs.length === 0) continue;
    const ins = n.inputs.filter((i) => patterns.relevant.has(i)).map(segmentIn);
    const seg = ins.length ? Math.max(...ins.map((s) => s ?? -1)) : 0;
    if (ins.some((s) => s !== seg))
      return { ok: false, reason: `node '${n.name}' reads relevant tensors of two blocks (a connection that skips the residual stream)` };
    for (const o of outs) segmentOf.set(o, seg);
  }
  for (const [t, k] of at)
    if (segmentOf.get(t) !== k) return { ok: false, reason: `the residual stream tensor '${t}' is not produced by block ${k - 1}` };
  if (segmentOf.get(patterns.logits) !== stream.length)
    return { ok: false, reason: 'the logits do not depend on the residual stream after the last block alone' };
  return { ok: true, blocks: { stream, segmentOf } };
}

/** x of the last normalisation: ReduceMean(x²) for RMSNorm, ReduceMean((x − mean)²) for LayerNorm. */
function finalNormInput(g: Graph): string {
  const squared = [...findNormStatistics(g).values()].pop()!;
  const p = g.producer(squared);
  return p?.opType === 'Sub' ? p.inputs[0] : squared;
}
