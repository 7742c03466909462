/**
 * Measuring a correction: the behaviour metric on held-out undesired prompts and perplexity on evaluation text,
 * for the dense model and after pruning each count of a sweep; and choosing the point to keep.
 *
 * Continuations for `repetition` and `command` are 50 greedy tokens, always that many (no stop at EOS), so a
 * pruned model cannot look less repetitive by ending early.
 */
import { LrpLensError } from '../errors';
import type { PruningSession } from '../pruning/prune';
import type { Mask } from '../weights/types';
import { greedyContinuations } from '../eval/generate';
import { higherIsBetter, meanUniquenessRatio, runScorer, wordFirstTokenIds, wordProbability } from './behaviour';
import type { BehaviourMetricSpec } from './behaviour';
import { correctionMask, prunedPerLayer } from './correct';
import type { Component, Granularity, UndesiredPrompt } from './correct';

export const CONTINUATION_TOKENS = 50;

export interface BehaviourResult {
  value: number;
  /** Greedy continuations of the held-out prompts (repetition, command). */
  continuations?: string[];
}

export interface BehaviourProbe {
  spec: BehaviourMetricSpec;
  prompts: UndesiredPrompt[];
  /** word-rate's words (the metric's own, else the undesired continuations). */
  words?: string[];
  steps?: number;
}

/** The words word-rate looks for: the metric's list, else the undesired set's continuations. */
export function wordsFor(spec: BehaviourMetricSpec, undesired: UndesiredPrompt[]): string[] | undefined {
  if (spec.kind !== 'word-rate') return undefined;
  if (spec.words) return spec.words;
  const words = [...new Set(undesired.map((p) => p.continuation?.trim()).filter((w): w is string => !!w))];
  if (words.length === 0)
    throw new LrpLensError(
      'bad-argument',
      'word-rate needs words: give them as --metric word-rate:WORD[,WORD…] or as "target" in the undesired prompts file.',
    );
  return words;
}

export async function measureBehaviour(session: PruningSession, probe: BehaviourProbe, mask: Mask | undefined): Promise<BehaviourResult> {
  if (probe.prompts.length === 0)
    throw new LrpLensError('bad-argument', 'No held-out prompts to measure the behaviour on; give at least one.');
  session.forward.setMask(mask);
  const tok = session.tokenizer;
  if (probe.spec.kind === 'word-rate') {
    const rows = await session.forward.lastLogits(probe.prompts.map((p) => tok.encode(p.prompt)));
    const probs = probe.prompts.map((p, i) => wordProbability(rows[i], wordFirstTokenIds(tok, p.prompt, probe.words ?? [])));
    return { value: probs.reduce((a, b) => a + b, 0) / probs.length };
  }
  const ids = await greedyContinuations(
    session.forward,
    probe.prompts.map((p) => tok.encode(p.prompt)),
    probe.steps ?? CONTINUATION_TOKENS,
  );
  const continuations = ids.map((c) => tok.decode(c, { skip_special_tokens: true }));
  if (probe.spec.kind === 'repetition') return { value: meanUniquenessRatio(ids), continuations };
  let sum = 0;
  for (const text of continuations) sum += await runScorer(probe.spec.command, text);
  return { value: sum / continuations.length, continuations };
}

export interface CorrectionPoint {
  count: number;
  behaviour: number;
  perplexity: number;
  perLayer: Record<string, number>;
  continuations?: string[];
  mask: Mask;
}

/** One point per count (0 = the dense model), each evaluated with the behaviour probe and perplexity. */
export async function correctionSweep(
  session: PruningSession,
  ranked: Component[],
  granularity: Granularity,
  counts: number[],
  probe: BehaviourProbe,
  evalWindows: number[][],
  headSize = 0,
): Promise<CorrectionPoint[]> {
  const masks = counts.map((c) => correctionMask(ranked, session.weights, c, granularity, headSize));
  const points: CorrectionPoint[] = [];
  for (const [k, count] of counts.entries()) {
    session.throwIfCancelled();
    const behaviour = await measureBehaviour(session, probe, masks[k]);
    const { perplexity } = await session.perplexity(evalWindows, masks[k]);
    points.push({
      count,
      behaviour: behaviour.value,
      perplexity,
      perLayer: prunedPerLayer(ranked, count),
      continuations: behaviour.continuations,
      mask: masks[k],
    });
  }
  return points;
}

/**
 * The point to keep: the best behaviour among points whose perplexity rose by at most `maxRise` (a fraction of
 * the dense perplexity); where none stays within it, the smallest count.
 */
export function choosePoint(
  points: CorrectionPoint[],
  densePerplexity: number,
  spec: BehaviourMetricSpec,
  maxRise = 0.1,
): { point: CorrectionPoint; withinBudget: boolean } {
  if (points.length === 0) throw new LrpLensError('bad-argument', 'No counts to choose from; give --count or --counts.');
  const sign = higherIsBetter(spec) ? 1 : -1;
  const within = points.filter((p) => p.perplexity <= densePerplexity * (1 + maxRise));
  if (within.length === 0) return { point: [...points].sort((a, b) => a.count - b.count)[0], withinBudget: false };
  return { point: within.reduce((best, p) => (sign * p.behaviour > sign * best.behaviour ? p : best)), withinBudget: true };
}
