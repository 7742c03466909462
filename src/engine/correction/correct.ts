/**
 * Targeted correction (Hatefi et al. 2025, §3.3): score every component by its mean relevance on general text
 * minus its mean relevance on the undesired behaviour, R̄_general − R̄_undesired (Eq. 7), and prune the lowest
 * first — components that drive the undesired behaviour and matter little for general text.
 *
 * - Undesired set: prompts, each with its undesired continuation (a prompts file's `target`) or, where none is
 *   given, the model's own greedy continuation. A sample is prompt + continuation; relevance is seeded at the
 *   logit of every token of a given continuation, and of a greedy one only where the behaviour happens (the
 *   listed words, the repeating n-grams, the continuations a scorer rates worst; see focus.ts).
 * - General set: text windows, relevance seeded at every next token (the pruning default).
 * - Each side is a mean: its relevance sums ÷ its seeded positions (Wanda: Σx² ÷ tokens, so ‖X‖₂ becomes an RMS).
 * - Granularity: `neurons` — whole output units of a linear layer (rows in the paper's sense: an MLP up/gate/fc1
 *   unit is an MLP neuron), scored by the sum of their weights' scores; or single `weights`. Heads: not yet.
 * - Methods: `lrp` (Eq. 7), and on the same interface the baselines Wanda-difference (|W|·‖X‖₂ general minus
 *   undesired) and gradient-difference (|Σ gradient × input| general minus undesired).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LrpLensError } from '../errors';
import type { PruningSession } from '../pruning/prune';
import type { LrpAggregation, PositionSeed, ScoreStatistics } from '../pruning/scores';
import { elementIndex, inputUnits, outputUnits } from '../weights/types';
import type { Mask, PrunableWeight, Scores } from '../weights/types';
import { greedyContinuations } from '../eval/generate';
import { readTextFile } from '../eval/textData';
import { isPromptsJsonl, parsePromptsJsonl } from '../attribution/promptFile';
import { runScorer } from './behaviour';
import type { BehaviourMetricSpec } from './behaviour';
import { REPEAT_NGRAM, repeatedNgramPositions, wordTokenPositions, worstHalf } from './focus';

export const CORRECTION_METHODS = ['lrp', 'wanda', 'gradient'] as const;
export type CorrectionMethod = (typeof CORRECTION_METHODS)[number];
export const GRANULARITIES = ['neurons', 'weights', 'heads'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** Relevance is averaged per sample for correction: each seeded token counts once, in magnitude. */
export const CORRECTION_AGGREGATION: LrpAggregation = 'abs-tokens';

export interface UndesiredPrompt {
  prompt: string;
  /** The undesired continuation; undefined: the model's own greedy continuation. */
  continuation?: string;
}

/** Token samples with the positions their relevance is seeded at (undefined: every next token). */
export interface ReferenceSamples {
  samples: number[][];
  seeds?: PositionSeed[][];
  /** Seeded positions in all: the divisor of the mean. */
  positions: number;
  /** Tokens in all (Wanda's divisor). */
  tokens: number;
}

export function checkCorrectionMethod(m: string): CorrectionMethod {
  if (!(CORRECTION_METHODS as readonly string[]).includes(m))
    throw new LrpLensError('bad-argument', `Unknown correction method '${m}'. Use one of ${CORRECTION_METHODS.join(', ')}.`);
  return m as CorrectionMethod;
}

export function checkGranularity(g: string): Granularity {
  if (!(GRANULARITIES as readonly string[]).includes(g))
    throw new LrpLensError('bad-argument', `Unknown granularity '${g}'. Use neurons, weights or heads.`);
  return g as Granularity;
}

// ---- inputs -----------------------------------------------------------------------------------------------

/** A prompt set: `*.prompts.jsonl` (prompt + optional target = continuation) or plain text, one prompt a line. */
export function readPromptSet(path: string, what: string): UndesiredPrompt[] {
  const text = readTextFile(path, what);
  if (isPromptsJsonl(path)) return parsePromptsJsonl(text, path).map((s) => ({ prompt: s.prompt, continuation: s.target }));
  const prompts = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((prompt) => ({ prompt }));
  if (prompts.length === 0) throw new LrpLensError('bad-argument', `The ${what} file ${path} has no prompts; write one prompt per line.`);
  return prompts;
}

/** Ids the tokenizer falls back to for text it does not know: its unk token and byte-fallback tokens. */
export function unknownTokenIds(modelDir: string): Set<number> {
  const ids = new Set<number>();
  let json: { model?: { unk_token?: string; byte_fallback?: boolean; vocab?: Record<string, number> | [string, number][] } };
  try {
    json = JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8'));
  } catch {
    return ids;
  }
  const vocab = json.model?.vocab;
  const entries: [string, number][] = Array.isArray(vocab) ? vocab.map(([t], i) => [t, i]) : Object.entries(vocab ?? {});
  for (const [token, id] of entries) {
    if (token === json.model?.unk_token || (json.model?.byte_fallback && /^<0x[0-9A-Fa-f]{2}>$/.test(token))) ids.add(id);
  }
  return ids;
}

/** Refuses a set that is mostly unknown (unk or byte-fallback) tokens: it was written for another tokenizer. */
export function checkTokenizerFit(samples: number[][], unknown: Set<number>, what: string, source: string, limit = 0.3): void {
  let total = 0;
  let bad = 0;
  for (const s of samples) {
    total += s.length;
    for (const id of s) if (unknown.has(id)) bad++;
  }
  if (total > 0 && bad / total > limit) {
    throw new LrpLensError(
      'bad-argument',
      `The ${what} set ${source} is ${Math.round((100 * bad) / total)}% tokens this model's tokenizer does not know (unknown or byte-fallback); it looks written for another model or language. Give text in the model's language and vocabulary.`,
    );
  }
}

/**
 * What an untargeted undesired set is seeded at: the behaviour metric (and word-rate's words). Without it every
 * token of a generated continuation is seeded.
 */
export interface UndesiredFocus {
  spec: BehaviourMetricSpec;
  words?: string[];
}

/**
 * Samples of the undesired set: prompt + continuation (given or greedy). A given continuation is seeded at every
 * one of its tokens; a greedy one where the behaviour happens (focus.ts), or at every token without a focus.
 * Prompts whose continuation never shows the behaviour are left out.
 */
export async function undesiredSamples(
  session: PruningSession,
  prompts: UndesiredPrompt[],
  steps = 50,
  focus?: UndesiredFocus,
): Promise<ReferenceSamples> {
  if (prompts.length === 0) throw new LrpLensError('bad-argument', 'The undesired set is empty; give at least one prompt.');
  const tok = session.tokenizer;
  const promptIds = prompts.map((p) => tok.encode(p.prompt));
  const open = prompts.map((p, i) => (p.continuation === undefined ? i : -1)).filter((i) => i >= 0);
  session.forward.setMask(undefined);
  const generated = await greedyContinuations(
    session.forward,
    open.map((i) => promptIds[i]),
    steps,
  );
  const full = prompts.map((p, i) =>
    p.continuation === undefined ? [...promptIds[i], ...generated[open.indexOf(i)]] : tok.encode(p.prompt + p.continuation),
  );
  const seeds = full.map((ids, i) => continuationSeeds(ids, promptIds[i], prompts[i]));
  if (focus && open.length > 0) await focusSeeds(session, full, promptIds, open, seeds, focus);
  const kept = full.map((_, i) => i).filter((i) => seeds[i].length > 0);
  if (kept.length === 0) throw new LrpLensError('bad-argument', unfocusedMessage(focus!, steps));
  const samples = kept.map((i) => full[i]);
  const kSeeds = kept.map((i) => seeds[i]);
  return {
    samples,
    seeds: kSeeds,
    positions: kSeeds.reduce((n, s) => n + s.length, 0),
    tokens: samples.reduce((n, s) => n + s.length, 0),
  };
}

/** Narrows the seeds of generated continuations (indices `open`) to where the behaviour happens. */
async function focusSeeds(
  session: PruningSession,
  full: number[][],
  promptIds: number[][],
  open: number[],
  seeds: PositionSeed[][],
  focus: UndesiredFocus,
): Promise<void> {
  const tok = session.tokenizer;
  const seedAt = (ids: number[], ts: number[]) => ts.filter((t) => t >= 1).map((t) => ({ position: t - 1, target: ids[t] }));
  if (focus.spec.kind === 'word-rate') {
    const words = focus.words ?? [];
    for (const i of open) seeds[i] = seedAt(full[i], wordTokenPositions(tok, full[i], promptIds[i].length, words));
  } else if (focus.spec.kind === 'repetition') {
    for (const i of open) seeds[i] = seedAt(full[i], repeatedNgramPositions(full[i], promptIds[i].length));
  } else {
    const command = focus.spec.command;
    const scores: number[] = [];
    for (const i of open)
      scores.push(await runScorer(command, tok.decode(full[i].slice(promptIds[i].length), { skip_special_tokens: true })));
    const worst = new Set(worstHalf(scores).map((k) => open[k]));
    for (const i of open) if (!worst.has(i)) seeds[i] = [];
  }
}

function unfocusedMessage(focus: UndesiredFocus, steps: number): string {
  if (focus.spec.kind === 'word-rate')
    return `None of the words ${(focus.words ?? []).join(', ')} occurs in the ${steps}-token greedy continuations of the undesired prompts, so there is nothing to seed; give prompts that lead to them, raise --steps, or give the undesired continuation as "target".`;
  return `No greedy continuation of the undesired prompts repeats an earlier ${REPEAT_NGRAM}-gram within ${steps} tokens, so there is no repetition to seed; give prompts that loop, or raise --steps.`;
}

function continuationSeeds(full: number[], prompt: number[], p: UndesiredPrompt): PositionSeed[] {
  let k = 0;
  while (k < prompt.length && k < full.length && prompt[k] === full[k]) k++;
  const seeds: PositionSeed[] = [];
  for (let t = Math.max(k, 1); t < full.length; t++) seeds.push({ position: t - 1, target: full[t] });
  if (seeds.length === 0)
    throw new LrpLensError(
      'bad-argument',
      `The undesired prompt ${JSON.stringify(p.prompt.slice(0, 60))} has an empty continuation; give a non-empty "target" or let the model continue it.`,
    );
  return seeds;
}

/** General samples: every next token seeded. */
export function generalSamples(samples: number[][]): ReferenceSamples {
  if (samples.length === 0) throw new LrpLensError('bad-argument', 'The general set is empty; give text.');
  return { samples, positions: samples.reduce((n, s) => n + s.length - 1, 0), tokens: samples.reduce((n, s) => n + s.length, 0) };
}

// ---- scores -----------------------------------------------------------------------------------------------

function meanStatistics(stats: ScoreStatistics, divisor: number): ScoreStatistics {
  const sums = new Map<string, Float32Array>();
  for (const [name, v] of stats.sums)
    sums.set(
      name,
      v.map((x) => x / divisor),
    );
  return { ...stats, sums };
}

async function sideScores(session: PruningSession, method: CorrectionMethod, set: ReferenceSamples): Promise<Scores> {
  const stats = await session.statistics(method, set.samples, {
    aggregation: method === 'lrp' ? CORRECTION_AGGREGATION : undefined,
    seeds: set.seeds,
  });
  return session.scores(meanStatistics(stats, method === 'wanda' ? set.tokens : set.positions));
}

/** Per-element differential scores, general − undesired (lowest = prune first). */
export async function differentialScores(
  session: PruningSession,
  method: CorrectionMethod,
  general: ReferenceSamples,
  undesired: ReferenceSamples,
): Promise<Scores> {
  const g = await sideScores(session, method, general);
  const u = await sideScores(session, method, undesired);
  const out: Scores = new Map();
  for (const [name, gs] of g)
    out.set(
      name,
      gs.map((x, i) => x - u.get(name)![i]),
    );
  return out;
}

// ---- ranking and masks ------------------------------------------------------------------------------------

export interface Component {
  weight: PrunableWeight;
  /** Output unit (neurons) or storage-order element (weights). */
  index: number;
  score: number;
}

/**
 * Components in pruning order: lowest differential score first (ties: weight order, then index). Heads are the
 * `headSize`-wide input slices of the attention output projections (see circuits/heads.ts).
 */
export function rankComponents(scores: Scores, weights: PrunableWeight[], granularity: Granularity, headSize = 0): Component[] {
  const all: Component[] = [];
  for (const w of componentWeights(weights, granularity)) {
    const s = scores.get(w.name);
    if (!s) throw new LrpLensError('bad-argument', `No scores for weight '${w.name}'.`);
    if (granularity === 'weights') s.forEach((score, index) => all.push({ weight: w, index, score }));
    else if (granularity === 'heads')
      for (let h = 0; h < inputUnits(w) / headSize; h++) all.push({ weight: w, index: h, score: headScore(w, s, h, headSize) });
    else for (let j = 0; j < outputUnits(w); j++) all.push({ weight: w, index: j, score: unitScore(w, s, j) });
  }
  return all.sort((a, b) => a.score - b.score);
}

/** The weights whose units are components: every selected weight, or only the attention output projections. */
function componentWeights(weights: PrunableWeight[], granularity: Granularity): PrunableWeight[] {
  if (granularity !== 'heads') return weights;
  const o = weights.filter((w) => w.kind === 'o');
  if (o.length === 0)
    throw new LrpLensError(
      'bad-argument',
      'Heads are pruned through the attention output projections (kind o), and none is selected. Include o in --layers.',
    );
  return o;
}

function headScore(w: PrunableWeight, s: Float32Array, head: number, headSize: number): number {
  let sum = 0;
  for (let i = head * headSize; i < (head + 1) * headSize; i++) for (let o = 0; o < outputUnits(w); o++) sum += s[elementIndex(w, o, i)];
  return sum;
}

function unitScore(w: PrunableWeight, s: Float32Array, unit: number): number {
  let sum = 0;
  for (let i = 0; i < inputUnits(w); i++) sum += s[elementIndex(w, unit, i)];
  return sum;
}

export function granularityNoun(g: Granularity): string {
  return g;
}

export function checkCount(count: number, available: number, granularity: Granularity): void {
  if (!Number.isInteger(count) || count < 0)
    throw new LrpLensError('bad-argument', `The count ${count} is not a whole number ≥ 0 of ${granularityNoun(granularity)} to prune.`);
  if (count > available) {
    throw new LrpLensError(
      'bad-argument',
      `Cannot prune ${count} ${granularityNoun(granularity)}: the selected layers have only ${available}. Lower --count/--counts or widen --layers.`,
    );
  }
}

/** The mask pruning the first `count` ranked components (every selected weight present, unpruned ones all kept). */
export function correctionMask(
  ranked: Component[],
  weights: PrunableWeight[],
  count: number,
  granularity: Granularity,
  headSize = 0,
): Mask {
  checkCount(count, ranked.length, granularity);
  const mask: Mask = new Map(weights.map((w) => [w.name, { dims: [...w.dims], keep: new Uint8Array(w.dims[0] * w.dims[1]).fill(1) }]));
  for (const c of ranked.slice(0, count)) {
    const keep = mask.get(c.weight.name)!.keep;
    const w = c.weight;
    if (granularity === 'weights') keep[c.index] = 0;
    else if (granularity === 'heads')
      for (let i = c.index * headSize; i < (c.index + 1) * headSize; i++)
        for (let o = 0; o < outputUnits(w); o++) keep[elementIndex(w, o, i)] = 0;
    else for (let i = 0; i < inputUnits(w); i++) keep[elementIndex(w, c.index, i)] = 0;
  }
  return mask;
}

/** Pruned components per `kind@layer`, e.g. { "up@3": 12 }. */
export function prunedPerLayer(ranked: Component[], count: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of ranked.slice(0, count)) {
    const key = `${c.weight.kind}@${c.weight.layer ?? '-'}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** How many components the selection has: output units (neurons), elements (weights) or heads. */
export function availableComponents(weights: PrunableWeight[], granularity: Granularity, headSize = 0): number {
  if (granularity === 'heads') return componentWeights(weights, granularity).reduce((n, w) => n + inputUnits(w) / headSize, 0);
  return weights.reduce((n, w) => n + (granularity === 'neurons' ? outputUnits(w) : w.dims[0] * w.dims[1]), 0);
}
