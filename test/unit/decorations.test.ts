/** Editor decorations: signed relevance buckets, their colours and hover text. */
import assert from 'node:assert/strict';
import { LEVELS, bucketOf, decorationBuckets, tokenDecorations } from '../../src/views/decorations';
import { fixtureResult } from '../fixtures/attributionResults';

describe('relevance decorations', () => {
  it('puts max in the top bucket, 0 in the neutral bucket and negatives in negative buckets', () => {
    assert.equal(LEVELS, 7);
    assert.equal(bucketOf(2, 2), 7);
    assert.equal(bucketOf(-2, 2), -7);
    assert.equal(bucketOf(0, 2), 0);
    assert.equal(bucketOf(1, 0), 0, 'an all-zero attribution is neutral');
    assert.equal(bucketOf(Number.NaN, 2), 0);
    assert.equal(bucketOf(-1e-9, 2), -1, 'any negative relevance is visible');
  });

  it('quantises |value|/max into ((k−1)/7, k/7] → k', () => {
    const max = 7;
    assert.equal(bucketOf(3, max), 3, 'exactly on a boundary stays in the lower bucket');
    assert.equal(bucketOf(3.01, max), 4);
    assert.equal(bucketOf(-3.01, max), -4);
    assert.equal(bucketOf(0.5, max), 1);
    assert.equal(bucketOf(6.99, max), 7);
    assert.equal(bucketOf(14, max), 7, 'clamped');
  });

  it('gives one colour per bucket: none for neutral, the two hues, opacity growing with |bucket|', () => {
    const buckets = decorationBuckets();
    assert.deepEqual(
      buckets.map((b) => b.bucket),
      Array.from({ length: 15 }, (_, i) => i - 7),
    );
    assert.equal(buckets[7].background, undefined);
    assert.match(buckets[14].background!, /^rgba\(178, 24, 43, 0\.6\)$/);
    assert.match(buckets[0].background!, /^rgba\(33, 102, 172, 0\.6\)$/);
    const alpha = (css: string) => Number(/, ([\d.]+)\)$/.exec(css)![1]);
    const positive = buckets.slice(8).map((b) => alpha(b.background!));
    assert.deepEqual(
      positive,
      [...positive].sort((a, b) => a - b),
    );
    assert.deepEqual(
      buckets
        .slice(0, 7)
        .map((b) => alpha(b.background!))
        .reverse(),
      positive,
      'symmetric',
    );
  });

  it('decorates each token with text at its prompt offsets, with rank and value on hover', () => {
    const result = fixtureResult({ texts: ['<s>', 'Once', ' upon', ' a'], tokenValues: [0, 4, -2, 1] });
    result.tokens[0] = { ...result.tokens[0], end: 0 }; // BOS has no text in the prompt
    const decorations = tokenDecorations(result);
    assert.deepEqual(
      decorations.map((d) => d.tokenIndex),
      [1, 2, 3],
      'the empty BOS range is skipped',
    );
    assert.deepEqual(
      decorations.map((d) => [d.start, d.end]),
      [
        [3, 7],
        [7, 12],
        [12, 14],
      ],
    );
    assert.deepEqual(
      decorations.map((d) => d.bucket),
      [7, -4, 2],
    );
    assert.equal(decorations[0].hover, 'relevance 4.0000, rank 1 of 4');
    assert.equal(decorations[1].hover, 'relevance -2.0000, rank 2 of 4');
  });
});
