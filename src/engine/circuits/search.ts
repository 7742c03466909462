/**
 * Circuit discovery: score components with the task's training samples as reference (relevance seeded at
 * target − foil at the prompt's end), sweep sparsity, and evaluate the task metric on held-out samples with
 * each mask (fed to one forward session — nothing is recompiled per sparsity). The circuit is the sparsest
 * mask whose metric stays at or above `threshold` × the dense model's.
 */
import type { PruningSession } from '../pruning/prune';
import { prepareAllocation, achievedSparsity } from '../pruning/allocation';
import type { AllocationOptions } from '../pruning/allocation';
import type { ScoreMethod, PositionSeed } from '../pruning/scores';
import type { Mask, Scores } from '../weights/types';
import { taskMetric } from '../tasks/metrics';
import type { TaskMetric } from '../tasks/taskFile';
import type { TokenizedSample } from '../tasks/taskFile';
import { LrpLensError } from '../errors';
import { headAllocator, headSizeFromConfig, headsOf } from './heads';

export type Granularity = 'weights' | 'neurons' | 'heads';
export type Ranking = 'global' | 'row';

export const DEFAULT_SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99];

export interface CircuitSearchOptions {
  metric: TaskMetric;
  granularity: Granularity;
  ranking: Ranking;
  threshold: number;
  sparsities?: number[];
  /** Bisection steps between the sparsest passing grid point and the next (default 4; 0: the grid only). */
  refine?: number;
  /** Called after each sparsity is evaluated. */
  onPoint?: (done: number, total: number) => void;
}

export interface CurvePoint {
  sparsity: number;
  /** Fraction pruned: of the selected weights (weights, neurons) or of the attention heads (heads). */
  achieved: number;
  metric: number;
  /** metric ÷ dense metric. */
  retained: number;
}

export interface MethodCurve {
  method: ScoreMethod;
  points: CurvePoint[];
  /** The sparsest point at or above the threshold; undefined if even the first sparsity falls below. */
  chosen?: CurvePoint;
  collectMs: number;
}

export function allocationFor(granularity: Granularity, ranking: Ranking): AllocationOptions {
  if (granularity === 'neurons') return { allocation: ranking === 'row' ? 'layer' : 'global', structured: true };
  if (granularity === 'heads') return { allocation: ranking === 'row' ? 'layer' : 'global', structured: true };
  return { allocation: ranking };
}

interface ComponentAllocator {
  mask(sparsity: number): Mask;
  achieved(mask: Mask): number;
}

function componentAllocator(session: PruningSession, scores: Scores, opts: CircuitSearchOptions): ComponentAllocator {
  if (opts.granularity === 'heads') {
    const size = headSizeFromConfig(session.folder.config);
    return headAllocator(headsOf(session.weights, scores, size), size, opts.ranking);
  }
  const allocator = prepareAllocation(scores, session.weights, allocationFor(opts.granularity, opts.ranking));
  return { mask: (s) => allocator.mask(s), achieved: (m) => achievedSparsity(m, session.weights).overall };
}

/** The task metric of the model (dense or masked) on tokenized samples, from final-position logits. */
export async function evaluateTask(session: PruningSession, samples: TokenizedSample[], metric: TaskMetric, mask?: Mask) {
  session.forward.setMask(mask);
  const rows: Float32Array[] = [];
  for (let i = 0; i < samples.length; i += 32)
    rows.push(...(await session.forward.lastLogits(samples.slice(i, i + 32).map((s) => s.promptIds))));
  return taskMetric(metric, rows, samples);
}

/** Relevance seeded at the task's own quantity: target (− foil) logit at the prompt's last token. */
export function taskSeeds(samples: TokenizedSample[], metric: TaskMetric): PositionSeed[] {
  return samples.map((s) => ({ position: s.promptIds.length - 1, target: s.targetId, foil: metric === 'prob' ? undefined : s.foilId }));
}

export async function taskScores(
  session: PruningSession,
  method: ScoreMethod,
  train: TokenizedSample[],
  metric: TaskMetric,
): Promise<{ scores: Scores; collectMs: number }> {
  const t0 = performance.now();
  const stats = await session.statistics(
    method,
    train.map((s) => s.promptIds),
    { seeds: taskSeeds(train, metric) },
  );
  return { scores: session.scores(stats), collectMs: performance.now() - t0 };
}

/** One method's faithfulness curve over the sparsities, and its chosen circuit. */
export async function circuitCurve(
  session: PruningSession,
  method: ScoreMethod,
  train: TokenizedSample[],
  heldOut: TokenizedSample[],
  dense: number,
  opts: CircuitSearchOptions,
): Promise<MethodCurve & { masks: Map<number, Mask>; scores: Scores }> {
  if (!(opts.threshold > 0 && opts.threshold <= 1))
    throw new LrpLensError('bad-argument', `The threshold is a fraction of the dense metric in (0, 1] (got ${opts.threshold}).`);
  if (!(dense > 0))
    throw new LrpLensError(
      'bad-argument',
      `The dense model does not do the task (mean ${opts.metric} ${dense.toFixed(4)} ≤ 0 on held-out samples), so there is no circuit to find. Check the task's targets and foils.`,
    );
  const { scores, collectMs } = await taskScores(session, method, train, opts.metric);
  const allocator = componentAllocator(session, scores, opts);
  const points: CurvePoint[] = [];
  const masks = new Map<number, Mask>();
  const sparsities = opts.sparsities ?? DEFAULT_SPARSITIES;
  const steps = opts.refine ?? 4;
  const evaluate = async (sparsity: number): Promise<CurvePoint> => {
    session.throwIfCancelled();
    const mask = allocator.mask(sparsity);
    const metric = (await evaluateTask(session, heldOut, opts.metric, mask)).mean;
    const point = { sparsity, achieved: allocator.achieved(mask), metric, retained: metric / dense };
    points.push(point);
    masks.set(sparsity, mask);
    opts.onPoint?.(points.length, sparsities.length + steps);
    return point;
  };
  for (const sparsity of sparsities) await evaluate(sparsity);
  await refineChosen(points, sparsities, steps, opts.threshold, evaluate);
  // Refinement is skipped without a passing point below the last grid one: progress still ends at its total.
  if (points.length < sparsities.length + steps) opts.onPoint?.(sparsities.length + steps, sparsities.length + steps);
  points.sort((a, b) => a.sparsity - b.sparsity);
  const passing = points.filter((p) => p.retained >= opts.threshold);
  const chosen = passing.length ? passing.reduce((a, b) => (b.achieved > a.achieved ? b : a)) : undefined;
  return { method, points, chosen, collectMs, masks, scores };
}

/**
 * Bisects between the sparsest grid point that keeps the threshold and the next grid point, `steps` times: the
 * circuit gets as sparse as the grid's resolution would otherwise hide. Each step is one fed mask.
 */
async function refineChosen(
  points: CurvePoint[],
  grid: number[],
  steps: number,
  threshold: number,
  evaluate: (s: number) => Promise<CurvePoint>,
): Promise<void> {
  const passing = points.filter((p) => p.retained >= threshold);
  if (passing.length === 0) return;
  let lo = passing.reduce((a, b) => (b.sparsity > a.sparsity ? b : a)).sparsity;
  let hi = grid.find((s) => s > lo);
  for (let k = 0; hi !== undefined && k < steps; k++) {
    const mid = (lo + hi) / 2;
    if ((await evaluate(mid)).retained >= threshold) lo = mid;
    else hi = mid;
  }
}
