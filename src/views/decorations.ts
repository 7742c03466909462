/**
 * Token relevance → editor decorations, quantised into signed buckets so the extension creates one decoration
 * type per bucket once and only batches ranges under them (GitLens' heatmap approach). Pure: no vscode.
 */
import type { AttributionResult } from '../engine/attribution/result';
import { NEGATIVE, POSITIVE, maxAbs, rgbaCss } from './colors';
import { formatValue, ranksByMagnitude } from './relevancePanel/viewModel';

/** Buckets per sign: −LEVELS … −1 negative, 0 neutral, 1 … LEVELS positive. */
export const LEVELS = 7;
/** Opacity of the strongest bucket; the editor text must stay readable on top of it. */
const MAX_ALPHA = 0.6;

export interface DecorationBucket {
  bucket: number;
  /** Semi-transparent CSS colour; undefined for the neutral bucket (no decoration). */
  background: string | undefined;
}

export interface TokenDecoration {
  tokenIndex: number;
  /** UTF-16 offsets into the prompt; the extension maps them to document offsets. */
  start: number;
  end: number;
  bucket: number;
  hover: string;
}

/**
 * Signed bucket of value on a scale whose ends are ±max: |value|/max in ((k−1)/levels, k/levels] → ±k,
 * so max lands in the top bucket and only an exact 0 (or max = 0) is neutral.
 */
export function bucketOf(value: number, max: number, levels = LEVELS): number {
  if (!(max > 0) || !Number.isFinite(value) || value === 0) return 0;
  const level = Math.min(levels, Math.max(1, Math.ceil((Math.abs(value) / max) * levels - 1e-9)));
  return Math.sign(value) * level;
}

/** Every bucket from −levels to +levels, with its background: the scale's end hue, more opaque further out. */
export function decorationBuckets(levels = LEVELS): DecorationBucket[] {
  return Array.from({ length: 2 * levels + 1 }, (_, i) => {
    const bucket = i - levels;
    const hue = bucket > 0 ? POSITIVE : NEGATIVE;
    return { bucket, background: bucket === 0 ? undefined : rgbaCss(hue, (MAX_ALPHA * Math.abs(bucket)) / levels) };
  });
}

export function hoverText(value: number, rank: number, count: number): string {
  return `relevance ${formatValue(value)}, rank ${rank} of ${count}`;
}

/** One decoration per token with text (empty ranges such as BOS are left out). */
export function tokenDecorations(result: AttributionResult, levels = LEVELS): TokenDecoration[] {
  const values = result.relevance.tokens;
  const max = maxAbs(values);
  const ranks = ranksByMagnitude(values);
  return result.tokens.flatMap((token, tokenIndex) => {
    if (token.end <= token.start) return [];
    const value = values[tokenIndex] ?? 0;
    return [
      {
        tokenIndex,
        start: token.start,
        end: token.end,
        bucket: bucketOf(value, max, levels),
        hover: hoverText(value, ranks[tokenIndex], values.length),
      },
    ];
  });
}
