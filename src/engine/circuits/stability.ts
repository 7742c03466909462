/**
 * Stable circuit components: relevance collected per group of training samples (one group per template where the
 * task has templates), then B bootstrap resamples of the groups (drawn with replacement, seeded). Each resample
 * ranks the components (weights, neurons or heads); a component's consensus score is its mean percentile rank over
 * the resamples, so a component that matters on every resample outranks one that a few groups push up (Meinshausen
 * & Bühlmann's stability selection, with ranks in place of a selection threshold). After the circuit is chosen,
 * each component's stability is how often a resample's own mask at the circuit's sparsity keeps it.
 */
import { LrpLensError } from '../errors';
import type { PruningSession } from '../pruning/prune';
import { mergeStatistics } from '../pruning/scores';
import type { ScoreMethod, ScoreStatistics } from '../pruning/scores';
import { elementIndex, inputUnits, outputUnits } from '../weights/types';
import type { Mask, PrunableWeight, Scores } from '../weights/types';
import { mulberry32, randomInt } from '../random';
import type { TokenizedSample, TaskMetric } from '../tasks/taskFile';
import { headSizeFromConfig } from './heads';
import type { Granularity } from './search';

export const DEFAULT_RESAMPLES = 20;

/** A component: one weight element, one output unit (neuron) or one head, as a slice of one weight. */
interface ComponentIndex {
  weight: PrunableWeight;
  /** Components of this weight, and where they start in the flat vector. */
  count: number;
  offset: number;
}

export interface StabilityReport {
  resamples: number;
  /** Groups resampled, and what a group is. */
  groups: number;
  groupedBy: 'template' | 'samples';
  /** Components the circuit keeps, and the share of them kept by ≥ 90% of the resamples' own masks. */
  kept: number;
  consistent: number;
  /** Mean over kept components of the fraction of resamples that keep them. */
  meanFrequency: number;
}

export interface ConsensusScores {
  /** Element scores whose allocation gives the consensus ranking (the mean percentile rank per component). */
  scores: Scores;
  /** Scores of the plain mean over all groups (what one collection would give). */
  meanScores: Scores;
  /** Masks of resample b at a sparsity, from that resample's own scores. */
  resampleScores: (b: number) => Scores;
  resamples: number;
  groups: number;
  groupedBy: 'template' | 'samples';
}

/** Group index per sample: its template where samples carry one, else `min(10, n)` interleaved chunks. */
export function sampleGroups(samples: TokenizedSample[]): { groups: number[]; groupedBy: 'template' | 'samples' } {
  const templates = samples.map((s) => s.meta?.template);
  if (templates.every((t) => typeof t === 'string' || typeof t === 'number')) {
    const keys = [...new Set(templates.map(String))];
    if (keys.length >= 2) return { groups: templates.map((t) => keys.indexOf(String(t))), groupedBy: 'template' };
  }
  const chunks = Math.min(10, samples.length);
  return { groups: samples.map((_, i) => i % chunks), groupedBy: 'samples' };
}

/** Collects per-group statistics once, and ranks components by their mean percentile over `resamples` bootstraps. */
export async function consensusScores(
  session: PruningSession,
  method: ScoreMethod,
  train: TokenizedSample[],
  metric: TaskMetric,
  granularity: Granularity,
  opts: { resamples?: number; seed?: number } = {},
): Promise<ConsensusScores> {
  const resamples = opts.resamples ?? DEFAULT_RESAMPLES;
  if (!Number.isInteger(resamples) || resamples < 0)
    throw new LrpLensError('bad-argument', `The number of resamples must be a whole number ≥ 0 (got ${resamples}).`);
  const { groups, groupedBy } = sampleGroups(train);
  const perGroup = await session.groupedStatistics(
    method,
    train.map((s) => s.promptIds),
    groups,
    { seeds: train.map((s) => ({ position: s.promptIds.length - 1, target: s.targetId, foil: metric === 'prob' ? undefined : s.foilId })) },
  );
  const headSize = granularity === 'heads' ? headSizeFromConfig(session.folder.config) : 0;
  const index = componentIndex(session.weights, granularity, headSize);
  const meanScores = session.scores(meanOf(perGroup));
  const draw = (b: number) => resampleOf(perGroup, (opts.seed ?? 0) * 7919 + b);
  const resampleScores = (b: number) => session.scores(meanOf(draw(b)));
  if (resamples === 0) return { scores: meanScores, meanScores, resampleScores, resamples, groups: perGroup.length, groupedBy };
  const consensus = new Float64Array(index.total);
  for (let b = 0; b < resamples; b++) {
    session.throwIfCancelled();
    const ranks = percentileRanks(componentValues(resampleScores(b), index, granularity, headSize));
    for (let i = 0; i < ranks.length; i++) consensus[i] += ranks[i] / resamples;
  }
  return {
    scores: elementScores(consensus, index, granularity, headSize),
    meanScores,
    resampleScores,
    resamples,
    groups: perGroup.length,
    groupedBy,
  };
}

/** How often each component the circuit keeps is kept by the resamples' own masks at the same sparsity. */
export function stabilityOf(
  consensus: ConsensusScores,
  circuit: Mask,
  maskOf: (scores: Scores) => Mask,
  weights: PrunableWeight[],
  granularity: Granularity,
  headSize: number,
): StabilityReport {
  const index = componentIndex(weights, granularity, headSize);
  const kept = keptComponents(circuit, index, granularity, headSize);
  const frequency = new Float64Array(index.total);
  for (let b = 0; b < consensus.resamples; b++) {
    const k = keptComponents(maskOf(consensus.resampleScores(b)), index, granularity, headSize);
    for (let i = 0; i < k.length; i++) if (k[i]) frequency[i] += 1 / consensus.resamples;
  }
  let n = 0;
  let consistent = 0;
  let sum = 0;
  for (let i = 0; i < kept.length; i++) {
    if (!kept[i]) continue;
    n++;
    sum += frequency[i];
    if (frequency[i] >= 0.9 - 1e-9) consistent++;
  }
  return {
    resamples: consensus.resamples,
    groups: consensus.groups,
    groupedBy: consensus.groupedBy,
    kept: n,
    consistent: n && consensus.resamples ? consistent / n : 0,
    meanFrequency: n && consensus.resamples ? sum / n : 0,
  };
}

/** Per-group sums → the mean per sample over the drawn groups (groups of unequal size count by their samples). */
function meanOf(parts: ScoreStatistics[]): ScoreStatistics {
  const merged = mergeStatistics(parts);
  const n = Math.max(1, merged.samples);
  const sums = new Map<string, Float32Array>();
  for (const [name, v] of merged.sums)
    sums.set(
      name,
      v.map((x) => x / n),
    );
  return { ...merged, sums };
}

function resampleOf(parts: ScoreStatistics[], seed: number): ScoreStatistics[] {
  const rand = mulberry32(seed);
  return parts.map(() => parts[randomInt(rand, parts.length)]);
}

function componentIndex(
  weights: PrunableWeight[],
  granularity: Granularity,
  headSize: number,
): { entries: ComponentIndex[]; total: number } {
  let offset = 0;
  const entries: ComponentIndex[] = [];
  for (const w of weights) {
    if (granularity === 'heads' && w.kind !== 'o') continue;
    const count = granularity === 'weights' ? w.dims[0] * w.dims[1] : granularity === 'neurons' ? outputUnits(w) : inputUnits(w) / headSize;
    entries.push({ weight: w, count, offset });
    offset += count;
  }
  return { entries, total: offset };
}

/** The component scores as the allocators see them: elements, row sums (neurons) or head-slice sums. */
function componentValues(
  scores: Scores,
  index: { entries: ComponentIndex[]; total: number },
  granularity: Granularity,
  headSize: number,
): Float64Array {
  const out = new Float64Array(index.total);
  for (const { weight: w, count, offset } of index.entries) {
    const s = scores.get(w.name)!;
    if (granularity === 'weights') {
      for (let i = 0; i < count; i++) out[offset + i] = s[i];
      continue;
    }
    for (let c = 0; c < count; c++) out[offset + c] = sliceSum(w, s, c, granularity, headSize);
  }
  return out;
}

function sliceSum(w: PrunableWeight, s: Float32Array, c: number, granularity: Granularity, headSize: number): number {
  let sum = 0;
  if (granularity === 'neurons') for (let i = 0; i < inputUnits(w); i++) sum += s[elementIndex(w, c, i)];
  else for (let i = c * headSize; i < (c + 1) * headSize; i++) for (let o = 0; o < outputUnits(w); o++) sum += s[elementIndex(w, o, i)];
  return sum;
}

/** Percentile rank of each value (0 = lowest, 1 = highest; ties share their mean rank). */
export function percentileRanks(values: Float64Array): Float64Array {
  const order = Array.from(values.keys()).sort((a, b) => values[a] - values[b]);
  const out = new Float64Array(values.length);
  const scale = Math.max(1, values.length - 1);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1]] === values[order[i]]) j++;
    for (let k = i; k <= j; k++) out[order[k]] = (i + j) / 2 / scale;
    i = j + 1;
  }
  return out;
}

/** Element scores whose row / slice sums equal the component scores, so every allocator ranks by them. */
function elementScores(
  component: Float64Array,
  index: { entries: ComponentIndex[]; total: number },
  granularity: Granularity,
  headSize: number,
): Scores {
  const scores: Scores = new Map();
  for (const { weight: w, count, offset } of index.entries) {
    const s = new Float32Array(w.dims[0] * w.dims[1]);
    if (granularity === 'weights') for (let i = 0; i < count; i++) s[i] = component[offset + i];
    else if (granularity === 'neurons')
      for (let c = 0; c < count; c++)
        for (let i = 0; i < inputUnits(w); i++) s[elementIndex(w, c, i)] = component[offset + c] / inputUnits(w);
    else {
      const size = headSize * outputUnits(w);
      for (let c = 0; c < count; c++)
        for (let i = c * headSize; i < (c + 1) * headSize; i++)
          for (let o = 0; o < outputUnits(w); o++) s[elementIndex(w, o, i)] = component[offset + c] / size;
    }
    scores.set(w.name, s);
  }
  return scores;
}

/** 1 where the mask keeps the component (a neuron or head counts as kept unless wholly pruned). */
function keptComponents(
  mask: Mask,
  index: { entries: ComponentIndex[]; total: number },
  granularity: Granularity,
  headSize: number,
): Uint8Array {
  const out = new Uint8Array(index.total).fill(1);
  for (const { weight: w, count, offset } of index.entries) {
    const keep = mask.get(w.name)?.keep;
    if (!keep) continue;
    for (let c = 0; c < count; c++) {
      if (granularity === 'weights') out[offset + c] = keep[c];
      else if (granularity === 'neurons') out[offset + c] = keep[elementIndex(w, c, 0)];
      else out[offset + c] = keep[elementIndex(w, 0, c * headSize)];
    }
  }
  return out;
}
