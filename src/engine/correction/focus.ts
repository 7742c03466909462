/**
 * Where an untargeted behaviour happens in a greedy continuation, so correction seeds relevance there and not on
 * the whole continuation (where the behaviour's own tokens are a small share of the signal):
 *
 * - `word-rate:WORDS`: the tokens that produce a listed word (its first token where a word spans several), found
 *   as whole words (case-insensitive) in the decoded continuation;
 * - `repetition`: the tokens that complete an n-gram (n = 3) already seen earlier in prompt + continuation;
 * - `command:CMD`: every token of the continuations the command scores worst (at or above the median; lower is
 *   better), the others dropped.
 *
 * Positions are token indices into the full sequence (prompt + continuation); the relevance seed for a token at
 * t is the logit of that token at position t − 1.
 */
import type { TokenizerLike } from '../runtime/model';

export const REPEAT_NGRAM = 3;

/** Indices (into `ids`) of the continuation tokens that start an occurrence of one of `words`. */
export function wordTokenPositions(tok: TokenizerLike, ids: readonly number[], promptLength: number, words: readonly string[]): number[] {
  const prefix = (n: number) => (n === 0 ? '' : tok.decode(ids.slice(0, n), { skip_special_tokens: true }));
  const ends: number[] = [];
  for (let n = 0; n <= ids.length; n++) ends.push(prefix(n).length);
  const text = prefix(ids.length);
  const starts = new Set<number>();
  for (const word of words) {
    const w = word.trim();
    if (w === '') continue;
    const re = new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(w)}(?![\\p{L}\\p{N}])`, 'giu');
    for (const m of text.matchAll(re)) {
      // The token whose decoded span holds the word's first character.
      const t = ends.findIndex((end, n) => n > 0 && end > m.index!) - 1;
      if (t >= promptLength) starts.add(t);
    }
  }
  return [...starts].sort((a, b) => a - b);
}

/** Indices (into `ids`) of the continuation tokens that complete an n-gram seen earlier in the sequence. */
export function repeatedNgramPositions(ids: readonly number[], promptLength: number, n = REPEAT_NGRAM): number[] {
  const seen = new Set<string>();
  const out: number[] = [];
  for (let t = n - 1; t < ids.length; t++) {
    const key = ids.slice(t - n + 1, t + 1).join(',');
    if (seen.has(key) && t >= promptLength) out.push(t);
    seen.add(key);
  }
  return out;
}

/** The indices of the scores at or above their median (the worst half, lower being better; at least one). */
export function worstHalf(scores: readonly number[]): number[] {
  const sorted = [...scores].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return scores.map((s, i) => (s >= median ? i : -1)).filter((i) => i >= 0);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
