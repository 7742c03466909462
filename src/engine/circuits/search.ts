/**
 * Circuit discovery: score components with the task's training samples as reference (relevance seeded at
 * target − foil at the prompt's end; the consensus rank over bootstrap resamples of the samples' templates, see
 * stability.ts), sweep sparsity, and evaluate the task metric with each mask (fed to one forward session —
 * nothing is recompiled per sparsity) on the selection set (held-out templates) and, where given, on the
 * in-template set (discovery's templates with names discovery did not see). The circuit is the sparsest mask
 * whose metric stays at or above `threshold` × the dense model's on both.
 *
 * At weight and neuron granularity each mask also prunes the weights it leaves dead (deadWeights.ts: keys of
 * query heads that are gone, MLP units with one of gate / up / down gone, …): the output is the same, and the
 * sparsity counts only weights the circuit uses. Masks stay nested (a sparser one prunes all a denser one does).
 * The grid is dense above 85%, where faithfulness on stories260k rises and falls from one point to the next.
 */
import type { PruningSession } from '../pruning/prune';
import { prepareAllocation, achievedSparsity } from '../pruning/allocation';
import type { AllocationOptions } from '../pruning/allocation';
import type { ScoreMethod, PositionSeed } from '../pruning/scores';
import type { Mask, Scores } from '../weights/types';
import { taskAccuracy, taskMetric } from '../tasks/metrics';
import type { TaskAccuracy } from '../tasks/metrics';
import type { TaskMetric } from '../tasks/taskFile';
import type { TokenizedSample } from '../tasks/taskFile';
import { LrpLensError } from '../errors';
import { headAllocator, headSizeFromConfig, headsOf } from './heads';
import { consensusScores } from './stability';
import { biasedWeights, pruneDeadWeights } from './deadWeights';
import type { ConsensusScores } from './stability';

export type Granularity = 'weights' | 'neurons' | 'heads';
export type Ranking = 'global' | 'row';

/** The sweep over heads (a few dozen components: finer steps give the same masks). */
export const DEFAULT_SPARSITIES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99];

/** The sweep over weights and neurons: dense above 85%, where faithfulness rises and falls between neighbours. */
export const DENSE_SPARSITIES = [
  0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.965, 0.97, 0.975, 0.98, 0.985, 0.99,
];

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
  /** A second set the circuit must also keep the threshold on (discovery's templates, unseen names). */
  inTemplate?: { samples: TokenizedSample[]; dense: number };
  /** Bootstrap resamples of the training groups for the consensus ranking (default 20; 0: the plain mean). */
  resamples?: number;
  seed?: number;
}

export interface CurvePoint {
  sparsity: number;
  /** Fraction pruned (dead weights included): of the selected weights (weights, neurons) or of the attention heads (heads). */
  achieved: number;
  metric: number;
  /** metric ÷ dense metric. */
  retained: number;
  /** The in-template set's metric ÷ its dense metric, where there is one. */
  inTemplateRetained?: number;
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

export function componentAllocator(session: PruningSession, scores: Scores, opts: CircuitSearchOptions): ComponentAllocator {
  if (opts.granularity === 'heads') {
    const size = headSizeFromConfig(session.folder.config);
    return headAllocator(headsOf(session.weights, scores, size), size, opts.ranking);
  }
  const allocator = prepareAllocation(scores, session.weights, allocationFor(opts.granularity, opts.ranking));
  const size = headSizeOrZero(session.folder.config);
  const biased = biasedWeights(session.graph, session.weights);
  return {
    mask: (s) => pruneDeadWeights(allocator.mask(s), session.weights, size, biased),
    achieved: (m) => achievedSparsity(m, session.weights).overall,
  };
}

function headSizeOrZero(config: Record<string, unknown>): number {
  try {
    return headSizeFromConfig(config);
  } catch {
    return 0;
  }
}

/** Final-position logits of the model (dense or masked) on tokenized samples, 32 prompts a batch. */
async function finalLogits(session: PruningSession, samples: TokenizedSample[], mask?: Mask): Promise<Float32Array[]> {
  session.forward.setMask(mask);
  const rows: Float32Array[] = [];
  for (let i = 0; i < samples.length; i += 32)
    rows.push(...(await session.forward.lastLogits(samples.slice(i, i + 32).map((s) => s.promptIds))));
  return rows;
}

/** The task metric of the model (dense or masked) on tokenized samples, from final-position logits. */
export async function evaluateTask(session: PruningSession, samples: TokenizedSample[], metric: TaskMetric, mask?: Mask) {
  return taskMetric(metric, await finalLogits(session, samples, mask), samples);
}

/** The model's accuracy on the task (dense or masked), against chance. */
export async function evaluateAccuracy(session: PruningSession, samples: TokenizedSample[], mask?: Mask): Promise<TaskAccuracy> {
  return taskAccuracy(await finalLogits(session, samples, mask), samples);
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

/** Whether a point keeps the threshold on the selection set and on the in-template set (where measured). */
export function passes(p: CurvePoint, threshold: number): boolean {
  return p.retained >= threshold && (p.inTemplateRetained === undefined || p.inTemplateRetained >= threshold);
}

/** One method's faithfulness curve over the sparsities, and its chosen circuit. */
export async function circuitCurve(
  session: PruningSession,
  method: ScoreMethod,
  train: TokenizedSample[],
  heldOut: TokenizedSample[],
  dense: number,
  opts: CircuitSearchOptions,
): Promise<MethodCurve & { masks: Map<number, Mask>; scores: Scores; consensus: ConsensusScores }> {
  if (!(opts.threshold > 0 && opts.threshold <= 1))
    throw new LrpLensError('bad-argument', `The threshold is a fraction of the dense metric in (0, 1] (got ${opts.threshold}).`);
  for (const [set, value] of [
    ['held-out', dense],
    ['in-template', opts.inTemplate?.dense ?? 1],
  ] as const)
    if (!(value > 0))
      throw new LrpLensError(
        'bad-argument',
        `The dense model does not do the task (mean ${opts.metric} ${value.toFixed(4)} ≤ 0 on the ${set} samples), so there is no circuit to find. Check the task's targets and foils, and \`lrp-lens task eval\`'s accuracy.`,
      );
  const t0 = performance.now();
  const consensus = await consensusScores(session, method, train, opts.metric, opts.granularity, {
    resamples: opts.resamples,
    seed: opts.seed,
  });
  const collectMs = performance.now() - t0;
  const scores = consensus.scores;
  const allocator = componentAllocator(session, scores, opts);
  const points: CurvePoint[] = [];
  const masks = new Map<number, Mask>();
  const sparsities = opts.sparsities ?? (opts.granularity === 'heads' ? DEFAULT_SPARSITIES : DENSE_SPARSITIES);
  const steps = opts.refine ?? 4;
  const evaluate = async (sparsity: number): Promise<CurvePoint> => {
    session.throwIfCancelled();
    const mask = allocator.mask(sparsity);
    const metric = (await evaluateTask(session, heldOut, opts.metric, mask)).mean;
    const inTemplate = opts.inTemplate ? (await evaluateTask(session, opts.inTemplate.samples, opts.metric, mask)).mean : undefined;
    const point: CurvePoint = { sparsity, achieved: allocator.achieved(mask), metric, retained: metric / dense };
    if (inTemplate !== undefined) point.inTemplateRetained = inTemplate / opts.inTemplate!.dense;
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
  const passing = points.filter((p) => passes(p, opts.threshold));
  const chosen = passing.length ? passing.reduce((a, b) => (b.achieved > a.achieved ? b : a)) : undefined;
  return { method, points, chosen, collectMs, masks, scores, consensus };
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
  const passing = points.filter((p) => passes(p, threshold));
  if (passing.length === 0) return;
  let lo = passing.reduce((a, b) => (b.sparsity > a.sparsity ? b : a)).sparsity;
  let hi = grid.find((s) => s > lo);
  for (let k = 0; hi !== undefined && k < steps; k++) {
    const mid = (lo + hi) / 2;
    if (passes(await evaluate(mid), threshold)) lo = mid;
    else hi = mid;
  }
}
