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
import { streamWeights } from './weightStreaming';
import type { StreamingDecision } from './weightStreaming';

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
  /** The LM head shares the embedding (default true: a streamed run then holds it throughout). */
  tied?: boolean;
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
  /** Block-wise: whether its weights are read per block (the estimate counts one block's) or kept. */
  weights?: StreamingDecision;
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
    tied: m.tied ?? true,
    weightBytes: m.weightBytes,
    externalData: m.externalData,
    elementBytes: m.elementBytes,
  };
}

/**
 * Both executions' estimates for a batch of `batch` rows of `seq` tokens; block-wise with the weights streamed
 * when the limit says they will be (weightStreaming.ts), so that only one block's count.
 */
export function estimateMemory(m: ModelShape, batch: number, seq: number, limitBytes?: number): MemoryEstimate {
  const streamed = limitBytes !== undefined && weightStreaming(m, limitBytes).stream;
  return estimateExecutions(dimsOfShape(m), batch, seq, m.statistics, streamed);
}

/** Whether block-wise execution streams this model's weights under a limit (the runner is told the same). */
export function weightStreaming(m: ModelShape, limitBytes: number): StreamingDecision {
  return streamWeights(m.weightBytes, limitBytes);
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
  const estimate = estimateMemory(shape, batch, seq, limitBytes);
  const at = `${batch} × ${seq} tokens`;
  const weights = weightStreaming(shape, limitBytes);
  const decide = (execution: Execution, reason: string): ExecutionDecision =>
    execution === 'monolithic'
      ? { execution, reason, estimate, limitBytes }
      : { execution, reason: `${reason}; weights ${weights.reason}`, estimate, limitBytes, weights };
  const fits = (b: number) => b <= limitBytes;
  if (requested === 'blockwise' && blockwiseAvailable !== true)
    throw new LrpLensError('unsupported-graph', `Block-wise execution is not possible for this model: ${blockwiseAvailable}.`);
  if (requested !== 'auto') {
    const bytes = estimate[`${requested}Bytes`];
    if (!fits(bytes) && !memoryGuardForced()) throw forcedTooLarge(requested, bytes, estimate, at, limitBytes, blockwiseAvailable === true);
    return decide(requested, `forced (--execution ${requested}); estimate ${gb(bytes)} at ${at}`);
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

/** A forced execution past the limit: refused before it runs, with the estimate and the way out. */
function forcedTooLarge(
  forced: Execution,
  bytes: number,
  estimate: MemoryEstimate,
  at: string,
  limitBytes: number,
  blockwise: boolean,
): LrpLensError {
  const other = forced === 'monolithic' ? estimate.blockwiseBytes : estimate.monolithicBytes;
  const switchTo =
    forced === 'monolithic' && blockwise && other <= limitBytes
      ? `Use --execution auto or blockwise (block-wise needs ${gb(other)}), shorten the input`
      : forced === 'blockwise' && other <= limitBytes
        ? `Use --execution auto or monolithic (the monolithic graph needs ${gb(other)}), shorten the input`
        : 'Shorten the input';
  return new LrpLensError(
    'out-of-memory',
    `Attributing ${at} with --execution ${forced} needs about ${gb(bytes)}, more than the limit of ${gb(limitBytes)}. ` +
      `${switchTo}, run on a machine with more memory, or pass --force to run anyway.`,
  );
}

function longestFitting(shape: ModelShape, batch: number, limit: number, key: keyof MemoryEstimate): number {
  let lo = 0;
  let hi = 1 << 20;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (estimateMemory(shape, batch, mid, limit)[key] <= limit) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
