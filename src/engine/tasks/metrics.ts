/**
 * Task metrics from the logits at a prompt's final position (one row of vocabulary size per sample):
 *
 * - `logit_diff`: logit(target) − logit(foil), the circuit literature's usual faithfulness measure;
 * - `accuracy`: 1 when the target's logit is strictly above the foil's, else 0;
 * - `prob`: softmax probability of the target over the whole vocabulary.
 */
import { LrpLensError } from '../errors';
import type { TaskMetric } from './taskFile';

export interface MetricTokens {
  targetId: number;
  foilId?: number;
}

export interface TaskMetricResult {
  metric: TaskMetric;
  perSample: number[];
  mean: number;
}

export function logitDiff(row: Float32Array, targetId: number, foilId: number): number {
  return row[checkId(row, targetId)] - row[checkId(row, foilId)];
}

export function targetAboveFoil(row: Float32Array, targetId: number, foilId: number): number {
  return logitDiff(row, targetId, foilId) > 0 ? 1 : 0;
}

/** Softmax probability of `targetId`, with the maximum subtracted so large logits cannot overflow. */
export function targetProb(row: Float32Array, targetId: number): number {
  checkId(row, targetId);
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return Math.exp(row[targetId] - max) / sum;
}

export function sampleMetric(metric: TaskMetric, row: Float32Array, tokens: MetricTokens): number {
  if (metric === 'prob') return targetProb(row, tokens.targetId);
  if (tokens.foilId === undefined) {
    throw new LrpLensError(
      'bad-argument',
      `The metric "${metric}" compares target and foil, but a sample has no foil; add foils or use the metric "prob".`,
    );
  }
  return metric === 'logit_diff' ? logitDiff(row, tokens.targetId, tokens.foilId) : targetAboveFoil(row, tokens.targetId, tokens.foilId);
}

/** The metric per sample and its mean; `rows[i]` are the final-position logits of sample i. */
export function taskMetric(metric: TaskMetric, rows: readonly Float32Array[], samples: readonly MetricTokens[]): TaskMetricResult {
  if (rows.length !== samples.length)
    throw new LrpLensError(
      'bad-argument',
      `Got ${rows.length} logit rows for ${samples.length} samples; pass one final-position row per sample.`,
    );
  if (rows.length === 0) throw new LrpLensError('bad-argument', 'No samples to evaluate; the task has no samples.');
  const perSample = rows.map((row, i) => sampleMetric(metric, row, samples[i]));
  return { metric, perSample, mean: perSample.reduce((a, b) => a + b, 0) / perSample.length };
}

/**
 * The final-position rows of logits [batch, seq, vocab] (row-major). Left-padded batches end every row at
 * seq − 1; for right padding pass each row's length.
 */
export function finalRows(logits: Float32Array, dims: readonly number[], lengths?: readonly number[]): Float32Array[] {
  const [b, s, v] = dims;
  if (dims.length !== 3 || logits.length !== b * s * v)
    throw new LrpLensError(
      'bad-argument',
      `Logits of shape [${dims.join(', ')}] hold ${logits.length} values; expected [batch, seq, vocab].`,
    );
  return Array.from({ length: b }, (_, r) => {
    const last = (lengths?.[r] ?? s) - 1;
    return logits.subarray((r * s + last) * v, (r * s + last + 1) * v);
  });
}

function checkId(row: Float32Array, id: number): number {
  if (!Number.isInteger(id) || id < 0 || id >= row.length)
    throw new LrpLensError('unknown-token', `Token id ${id} is outside the vocabulary (0..${row.length - 1}).`);
  return id;
}

/** How often the model gets a task right, against what guessing would give. */
export interface TaskAccuracy {
  /** With foils: target's logit above the foil's; without: target is the top-1 prediction. */
  kind: 'target-above-foil' | 'target-top-1';
  value: number;
  /** Guessing: ½ between target and foil, 1 / vocabulary for the top-1. */
  chance: number;
  samples: number;
  /** The accuracy is within two binomial standard errors of chance: the model does not do the task. */
  atChance: boolean;
}

export function taskAccuracy(rows: readonly Float32Array[], samples: readonly MetricTokens[]): TaskAccuracy {
  if (rows.length === 0 || rows.length !== samples.length)
    throw new LrpLensError(
      'bad-argument',
      `Got ${rows.length} logit rows for ${samples.length} samples; pass one final-position row per sample.`,
    );
  const foils = samples.every((s) => s.foilId !== undefined);
  const right = rows.filter((row, i) =>
    foils ? targetAboveFoil(row, samples[i].targetId, samples[i].foilId!) === 1 : argmaxOf(row) === checkId(row, samples[i].targetId),
  ).length;
  const chance = foils ? 0.5 : 1 / rows[0].length;
  const value = right / rows.length;
  return {
    kind: foils ? 'target-above-foil' : 'target-top-1',
    value,
    chance,
    samples: rows.length,
    atChance: value < chance + 2 * Math.sqrt((chance * (1 - chance)) / rows.length),
  };
}

function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
