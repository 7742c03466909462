/**
 * Which execution runs a relevance pass: the monolithic graph (fastest, but it keeps every block's activations
 * and attention probabilities for the backward half: memory grows with depth × length²) or the block-wise one
 * (memory of one block plus the residual stream, for one more forward pass). Chosen by the memory estimate
 * (memory/memoryEstimate.ts, the one the memory guard uses) against a limit.
 */
import { LrpLensError } from '../errors';
import { availableMemory, memoryGuardForced } from '../memory/memoryGuard';
import { estimateExecutions } from '../memory/memoryEstimate';
import type { ModelDims } from '../memory/memoryEstimate';

export type Execution = 'monolithic' | 'blockwise';
export type ExecutionChoice = Execution | 'auto';
export const EXECUTION_CHOICES: ExecutionChoice[] = ['auto', 'monolithic', 'blockwise'];

export interface ModelShape {
  layers: number;
  heads: number;
  hidden: number;
  /** MLP width. */
  neurons: number;
  vocab: number;
  /** Bytes of the weights as the engine holds them (float32). */
  weightBytes: number;
  /** Bytes of one activation element (4 for float32, 8 for float64). */
  elementBytes: number;
  kvHeads?: number;
  /** Gated MLP (default true: the larger count of prunable weights). */
  gated?: boolean;
  /** Weights in external data files (see ModelDims). */
  externalData?: boolean;
  /** Weight-relevance statistics are accumulated (pruning): their sums count too. */
  statistics?: boolean;
}

export interface MemoryEstimate {
  monolithicBytes: number;
  blockwiseBytes: number;
}

export interface ExecutionDecision {
  execution: Execution;
  /** Why, in words, with the estimates (for the run log and `inspect`). */
  reason: string;
  estimate: MemoryEstimate;
  limitBytes: number;
}

export function dimsOfShape(m: ModelShape): ModelDims {
  return {
    layers: m.layers,
    hidden: m.hidden,
    ffn: m.neurons,
    heads: m.heads,
    kvHeads: m.kvHeads ?? m.heads,
    vocab: m.vocab,
    gated: m.gated ?? true,
    tied: true,
    weightBytes: m.weightBytes,
    externalData: m.externalData,
    elementBytes: m.elementBytes,
  };
}

/** Both executions' estimates for a batch of `batch` rows of `seq` tokens. */
export function estimateMemory(m: ModelShape, batch: number, seq: number): MemoryEstimate {
  return estimateExecutions(dimsOfShape(m), batch, seq, m.statistics);
}

/** The memory a run may use: the memory guard's (--memory-limit / LRP_LENS_MEMORY_LIMIT, the cgroup, what is available). */
export function memoryLimitBytes(): number {
  return availableMemory().bytes;
}

const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;

/**
 * `auto`: monolithic where its estimate fits the limit (it is faster), block-wise otherwise. A forced choice is
 * honoured. A run whose execution cannot fit is refused before it starts, with the estimate and the way out.
 */
export function chooseExecution(
  requested: ExecutionChoice,
  shape: ModelShape,
  batch: number,
  seq: number,
  limitBytes = memoryLimitBytes(),
  blockwiseAvailable: string | true = true,
): ExecutionDecision {
  const estimate = estimateMemory(shape, batch, seq);
  const at = `${batch} × ${seq} tokens`;
  const decide = (execution: Execution, reason: string): ExecutionDecision => ({ execution, reason, estimate, limitBytes });
  const fits = (b: number) => b <= limitBytes;
  if (requested === 'monolithic')
    return decide('monolithic', `forced (--execution monolithic); estimate ${gb(estimate.monolithicBytes)} at ${at}`);
  if (requested === 'blockwise') {
    if (blockwiseAvailable !== true)
      throw new LrpLensError('unsupported-graph', `Block-wise execution is not possible for this model: ${blockwiseAvailable}.`);
    return decide('blockwise', `forced (--execution blockwise); estimate ${gb(estimate.blockwiseBytes)} at ${at}`);
  }
  if (fits(estimate.monolithicBytes))
    return decide(
      'monolithic',
      `the monolithic graph's estimate ${gb(estimate.monolithicBytes)} at ${at} fits the limit of ${gb(limitBytes)}`,
    );
  if (blockwiseAvailable === true && fits(estimate.blockwiseBytes))
    return decide(
      'blockwise',
      `the monolithic graph's estimate ${gb(estimate.monolithicBytes)} at ${at} exceeds the limit of ${gb(limitBytes)}; block-wise needs ${gb(estimate.blockwiseBytes)}`,
    );
  if (memoryGuardForced())
    return decide(
      blockwiseAvailable === true ? 'blockwise' : 'monolithic',
      `run past the estimate (--force): ${gb(blockwiseAvailable === true ? estimate.blockwiseBytes : estimate.monolithicBytes)} at ${at}, limit ${gb(limitBytes)}`,
    );
  const best = blockwiseAvailable === true ? estimate.blockwiseBytes : estimate.monolithicBytes;
  const maxSeq = longestFitting(shape, batch, limitBytes, blockwiseAvailable === true ? 'blockwiseBytes' : 'monolithicBytes');
  throw new LrpLensError(
    'out-of-memory',
    `Attributing ${at} needs about ${gb(best)} (${blockwiseAvailable === true ? 'block-wise' : `monolithic; block-wise is not possible: ${blockwiseAvailable}`}), more than the limit of ${gb(limitBytes)}. ` +
      `Shorten the input to at most ${maxSeq} tokens${batch > 1 ? ' or attribute fewer rows at once' : ''}, run on a machine with more memory, or pass --force to run anyway.`,
  );
}

function longestFitting(shape: ModelShape, batch: number, limit: number, key: keyof MemoryEstimate): number {
  let lo = 0;
  let hi = 1 << 20;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (estimateMemory(shape, batch, mid)[key] <= limit) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
