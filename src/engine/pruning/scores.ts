/**
 * Scores for pruning, one interface for every method. Collection produces additive statistics (sums over
 * samples, so shards of a reference set merge by addition); `scoresFromStatistics` turns them into one score
 * per weight element, higher = more important.
 *
 * - lrp: weight relevance R_W = W ⊙ Σ_t x_t (R/z)_t, the relevance pass seeded at the logit of the actual
 *   next token at every position of each reference sample (weight 1 each; the last position has no next token).
 *   How per-token relevance is aggregated is `LrpAggregation`.
 * - gradient: |W ⊙ ∂(Σ_t logit_t)/∂W| with the same seed (the gradient×input pass, summed, then |·|).
 * - wanda: |W| · ‖X_j‖₂, the input channel's activation norm over every reference token.
 * - activation: ‖X_j‖₂ alone (the input channel's activation norm, as activation-based circuit baselines use).
 * - magnitude: |W|.  random: uniform, seeded.
 */
import type { Device } from '../runtime/session';
import type { ModelConfig } from '../runtime/model';
import { RelevanceRunners } from '../runtime/runners';
import type { ExecutionChoice, ExecutionDecision } from '../runtime/execution';
import { causalLmFeeds, padBatch, seedFeeds } from '../runtime/feeds';
import type { CompiledInfo, WeightAggregation } from '../relevance/compiler';
import type { RelevanceMode } from '../relevance/mode';
import { ForwardModel } from '../eval/forward';
import { throwIfCancelled } from '../eval/cancel';
import type { Progress } from '../eval/cancel';
import { LrpLensError } from '../errors';
import { mulberry32 } from '../random';
import type { PrunableWeight, Scores } from '../weights/types';
import { inputUnits } from '../weights/types';

export const SCORE_METHODS = ['lrp', 'wanda', 'magnitude', 'gradient', 'random', 'activation'] as const;
export type ScoreMethod = (typeof SCORE_METHODS)[number];

/**
 * How lrp sums per-token weight relevance: `signed` Σ (the paper's mean), `abs-total` |Σ| over all tokens and
 * samples, `abs-tokens` Σ|·| over tokens, `abs-samples` Σ over samples of |Σ over the sample's tokens|.
 */
export const LRP_AGGREGATIONS = ['signed', 'abs-total', 'abs-tokens', 'abs-samples'] as const;
export type LrpAggregation = (typeof LRP_AGGREGATIONS)[number];
export const DEFAULT_AGGREGATION: LrpAggregation = 'abs-tokens';

/** Additive statistics of one method over a set of samples. */
export interface ScoreStatistics {
  method: ScoreMethod;
  aggregation?: LrpAggregation;
  samples: number;
  tokens: number;
  /** Per weight: relevance sums (lrp, gradient; element-aligned) or Σ x² per input channel (wanda). */
  sums: Map<string, Float32Array>;
}

/** A seed at one position of a sample: the target's logit, minus the foil's when given. */
export interface PositionSeed {
  position: number;
  target: number;
  foil?: number;
}

export interface CollectOptions extends Progress {
  /**
   * Seeds per sample instead of every next token: one (tasks: target − foil at the last position) or several
   * (correction: every position of an undesired continuation).
   */
  seeds?: (PositionSeed | PositionSeed[])[];
  aggregation?: LrpAggregation;
  batchSize?: number;
  device?: Device;
  /** Use the relevance-graph cache (default true). */
  cache?: boolean;
  /** Monolithic graph, block-wise, or chosen per batch by the memory estimate (default). */
  execution?: ExecutionChoice;
  /**
   * The model's config.json: with its sizes the execution is decided before compiling, so a window that only
   * fits block-wise never compiles (or holds) the monolithic graph.
   */
  config?: ModelConfig;
  /** Which execution runs the relevance pass and why: on the first batch, and whenever it changes (the run log). */
  onExecution?: (decision: ExecutionDecision) => void;
  /**
   * A group per sample (0 … groups − 1): `collectGroupedStatistics` keeps one sum per group (batches never mix
   * groups), so resamples of the groups can be scored without collecting again.
   */
  groups?: number[];
}

export function checkMethod(method: string): ScoreMethod {
  if (!(SCORE_METHODS as readonly string[]).includes(method))
    throw new LrpLensError('bad-argument', `Unknown pruning method '${method}'. Use one of ${SCORE_METHODS.join(', ')}.`);
  return method as ScoreMethod;
}

export function checkAggregation(agg: string): LrpAggregation {
  if (!(LRP_AGGREGATIONS as readonly string[]).includes(agg))
    throw new LrpLensError('bad-argument', `Unknown aggregation '${agg}'. Use one of ${LRP_AGGREGATIONS.join(', ')}.`);
  return agg as LrpAggregation;
}

/** Collects a method's statistics over token samples (data-free methods return empty sums). */
export async function collectStatistics(
  onnxPath: string,
  weights: PrunableWeight[],
  method: ScoreMethod,
  samples: number[][],
  opts: CollectOptions = {},
): Promise<ScoreStatistics> {
  const [stats] = await collectGroupedStatistics(onnxPath, weights, method, samples, { ...opts, groups: undefined });
  return stats;
}

/**
 * Statistics per group of samples (`opts.groups`, one index per sample; absent: one group), in one session. Each
 * group's statistics are what `collectStatistics` would give on that group's samples alone.
 */
export async function collectGroupedStatistics(
  onnxPath: string,
  weights: PrunableWeight[],
  method: ScoreMethod,
  samples: number[][],
  opts: CollectOptions = {},
): Promise<ScoreStatistics[]> {
  const groupOf = opts.groups ?? samples.map(() => 0);
  if (groupOf.length !== samples.length)
    throw new LrpLensError('bad-argument', `Got ${groupOf.length} group indices for ${samples.length} samples; give one per sample.`);
  const count = samples.length === 0 ? 1 : Math.max(...groupOf) + 1;
  const members = Array.from({ length: count }, (_, g) => samples.map((_, i) => i).filter((i) => groupOf[i] === g));
  const base = (g: number) => ({
    method,
    samples: members[g].length,
    tokens: members[g].reduce((n, i) => n + samples[i].length, 0),
  });
  if (method === 'magnitude' || method === 'random') return members.map(() => ({ method, samples: 0, tokens: 0, sums: new Map() }));
  if (samples.length === 0) throw new LrpLensError('bad-argument', 'The reference set is empty; give at least one sample.');
  const sums = members.map(() => new Map<string, Float32Array>());
  if (method === 'wanda' || method === 'activation') {
    await collectActivationNorms(onnxPath, weights, samples, members, sums, opts);
    return sums.map((s, g) => ({ ...base(g), sums: s }));
  }
  const aggregation = method === 'lrp' ? (opts.aggregation ?? DEFAULT_AGGREGATION) : 'abs-total';
  await collectWeightRelevance(onnxPath, weights, samples, members, sums, method === 'lrp' ? 'attnlrp' : 'gradxinput', aggregation, opts);
  return sums.map((s, g) => ({ ...base(g), aggregation: method === 'lrp' ? aggregation : undefined, sums: s }));
}

/** Batches of sample indices that never mix groups. */
function groupBatches(members: number[][], size: number): { group: number; indices: number[] }[] {
  return members.flatMap((m, group) => batches(m, size).map((indices) => ({ group, indices })));
}

function batches<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

function addInto(acc: Map<string, Float32Array>, name: string, values: Float32Array, absolute: boolean): void {
  let sum = acc.get(name);
  if (!sum) acc.set(name, (sum = new Float32Array(values.length)));
  if (absolute) for (let i = 0; i < values.length; i++) sum[i] += Math.abs(values[i]);
  else for (let i = 0; i < values.length; i++) sum[i] += values[i];
}

async function collectWeightRelevance(
  onnxPath: string,
  weights: PrunableWeight[],
  samples: number[][],
  members: number[][],
  sums: Map<string, Float32Array>[],
  mode: RelevanceMode,
  aggregation: LrpAggregation,
  opts: CollectOptions,
): Promise<void> {
  const inGraph: WeightAggregation = aggregation === 'abs-tokens' ? 'absolute' : 'signed';
  const options = { mode, weightRelevance: weights.map((w) => w.name), weightAggregation: inGraph };
  const perSample = aggregation === 'abs-samples';
  const wanted = perSample ? 1 : (opts.batchSize ?? 4);
  const expect = { batch: Math.min(wanted, Math.max(...members.map((m) => m.length))), seq: Math.max(...samples.map((s) => s.length)) };
  const runners = await RelevanceRunners.load({ onnxPath, config: opts.config }, options, {
    device: opts.device,
    execution: opts.execution,
    expect,
    cache: opts.cache ?? true,
  });
  const info = runners.info;
  // Long windows: as many rows a batch as fit the memory limit (4 × 2,048 tokens may not where 1 does).
  const groups = groupBatches(members, runners.batch ?? wanted);
  const weightOf = new Map(weights.map((w) => [info.weightOutputs[w.name], w.name]));
  let last: string | undefined;
  try {
    for (const [k, { group, indices }] of groups.entries()) {
      throwIfCancelled(opts.signal);
      const seeds = opts.seeds ? indices.map((i) => opts.seeds![i]) : undefined;
      const feeds = relevanceFeeds(
        info,
        indices.map((i) => samples[i]),
        seeds,
      );
      const [B, S] = feeds.input_ids.dims;
      const { runner, decision } = await runners.forBatch(B, S);
      if (decision.execution !== last) opts.onExecution?.(decision);
      last = decision.execution;
      // Each block's weight relevance is added as its block finishes (block-wise), not held for the whole model.
      await runner.run(feeds, {
        takes: (name) => weightOf.has(name),
        take: (name, value) => addInto(sums[group], weightOf.get(name)!, value.data as Float32Array, perSample),
      });
      opts.onProgress?.(k + 1, groups.length);
    }
  } finally {
    await runners.release();
  }
}

/** Feeds seeding the logit of the actual next token at every position of each sample, or the given seeds. */
function relevanceFeeds(info: CompiledInfo, group: number[][], seeds?: (PositionSeed | PositionSeed[])[]) {
  const batch = padBatch(group, 0, info.padding);
  const B = group.length;
  const S = batch.ids[0].length;
  const targetIds = new Array<number>(B * S).fill(0);
  const targetWeights = new Array<number>(B * S).fill(0);
  const foilIds = new Array<number>(B * S).fill(0);
  const foilWeights = new Array<number>(B * S).fill(0);
  group.forEach((ids, b) => {
    const start = info.padding === 'left' ? S - ids.length : 0;
    const seed = seeds?.[b];
    if (seed) {
      for (const one of [seed].flat()) {
        const at = b * S + start + one.position;
        [targetIds[at], targetWeights[at]] = [one.target, 1];
        if (one.foil !== undefined) [foilIds[at], foilWeights[at]] = [one.foil, 1];
      }
      return;
    }
    for (let t = 0; t + 1 < ids.length; t++) {
      targetIds[b * S + start + t] = ids[t + 1];
      targetWeights[b * S + start + t] = 1;
    }
  });
  return { ...causalLmFeeds(info.inputs, batch), ...seedFeeds(info.dtype, [B, S], { targetIds, targetWeights, foilIds, foilWeights }) };
}

async function collectActivationNorms(
  onnxPath: string,
  weights: PrunableWeight[],
  samples: number[][],
  members: number[][],
  sums: Map<string, Float32Array>[],
  opts: CollectOptions,
): Promise<void> {
  const model = await ForwardModel.load(onnxPath, { statistics: weights, device: opts.device });
  const groups = groupBatches(members, opts.batchSize ?? 4);
  try {
    for (const [k, { group, indices }] of groups.entries()) {
      throwIfCancelled(opts.signal);
      const run = await model.run(indices.map((i) => samples[i]));
      for (const w of weights) addInto(sums[group], w.name, run.sumSquares(w.name), false);
      opts.onProgress?.(k + 1, groups.length);
    }
  } finally {
    await model.release();
  }
}

/** Sums statistics of shards of one reference set (same method, aggregation and weights). */
export function mergeStatistics(parts: ScoreStatistics[]): ScoreStatistics {
  if (parts.length === 0) throw new LrpLensError('bad-argument', 'Nothing to merge: give at least one statistics file.');
  const [first] = parts;
  const sums = new Map<string, Float32Array>();
  for (const p of parts) {
    if (p.method !== first.method || p.aggregation !== first.aggregation) {
      throw new LrpLensError(
        'bad-argument',
        `Cannot merge ${p.method}/${p.aggregation ?? '-'} statistics with ${first.method}/${first.aggregation ?? '-'}: shards must use one method and aggregation.`,
      );
    }
    for (const [name, v] of p.sums) addInto(sums, name, v, false);
  }
  return { ...first, samples: parts.reduce((n, p) => n + p.samples, 0), tokens: parts.reduce((n, p) => n + p.tokens, 0), sums };
}

/** One score per element from statistics and the weights' values. */
export function scoresFromStatistics(
  stats: ScoreStatistics,
  weights: PrunableWeight[],
  values: (name: string) => Float32Array,
  seed = 0,
): Scores {
  const scores: Scores = new Map();
  const random = mulberry32(seed);
  for (const w of weights) {
    const W = values(w.name);
    const s = new Float32Array(W.length);
    const sums = stats.sums.get(w.name);
    if (stats.method !== 'magnitude' && stats.method !== 'random' && !sums)
      throw new LrpLensError('bad-argument', `The ${stats.method} statistics have nothing for weight '${w.name}'.`);
    switch (stats.method) {
      case 'magnitude':
        for (let i = 0; i < W.length; i++) s[i] = Math.abs(W[i]);
        break;
      case 'random':
        for (let i = 0; i < W.length; i++) s[i] = random();
        break;
      case 'wanda':
        wandaScores(w, W, sums!, s, true);
        break;
      case 'activation':
        wandaScores(w, W, sums!, s, false);
        break;
      case 'gradient':
        for (let i = 0; i < W.length; i++) s[i] = Math.abs(sums![i]);
        break;
      case 'lrp': {
        const abs = stats.aggregation === 'abs-total';
        for (let i = 0; i < W.length; i++) s[i] = abs ? Math.abs(sums![i]) : sums![i];
        break;
      }
    }
    scores.set(w.name, s);
  }
  return scores;
}

function wandaScores(w: PrunableWeight, W: Float32Array, sumSquares: Float32Array, out: Float32Array, timesWeight: boolean): void {
  const inputs = inputUnits(w);
  const norms = Float32Array.from(sumSquares, (v) => Math.sqrt(v));
  if (norms.length !== inputs)
    throw new LrpLensError(
      'bad-argument',
      `Activation statistics for '${w.name}' have ${norms.length} channels; the weight has ${inputs} inputs.`,
    );
  const cols = w.dims[1];
  for (let i = 0; i < W.length; i++) {
    const input = w.outAxis === 1 ? Math.floor(i / cols) : i % cols;
    out[i] = timesWeight ? Math.abs(W[i]) * norms[input] : norms[input];
  }
}
