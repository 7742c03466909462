/** Where an untargeted behaviour happens in a continuation: listed words, repeated n-grams, worst-scored continuations. */
import assert from 'node:assert/strict';
import { repeatedNgramPositions, wordTokenPositions, worstHalf } from '../../src/engine/correction/focus';
import { loadTokenizer, resolveModel } from '../../src/engine/runtime/model';
import { STORIES, requireShared } from '../support/sharedFolder';

describe('correction focus', () => {
  it('repetition: the tokens completing a trigram seen before, prompt included, continuation only', () => {
    // prompt [1 2 3], continuation [4 1 2 3 1 2 3]
    assert.deepEqual(repeatedNgramPositions([1, 2, 3, 4, 1, 2, 3, 1, 2, 3], 3), [6, 9]);
    assert.deepEqual(repeatedNgramPositions([1, 2, 3, 1, 2, 3], 4), [5]);
    assert.deepEqual(repeatedNgramPositions([1, 2, 3, 4, 5], 1), []);
  });

  it('command: the continuations at or above the median score (lower is better)', () => {
    assert.deepEqual(worstHalf([0.1, 0.9, 0.5, 0.7]), [1, 2, 3]);
    assert.deepEqual(worstHalf([2, 2]), [0, 1]);
  });

  it('word-rate: the first token of each whole-word occurrence in the continuation (stories260k tokenizer)', async function () {
    requireShared(this);
    const tok = await loadTokenizer(await resolveModel(STORIES, { offline: true }));
    const prompt = tok.encode('There was a little girl named');
    const ids = [...prompt, ...tok.encode(' Lily. Lily liked lilies and Lilyana.').slice(1)];
    const at = wordTokenPositions(tok, ids, prompt.length, ['Lily']);
    assert.equal(at.length, 2, 'two whole-word Lily, not lilies or Lilyana');
    for (const t of at) assert.match(tok.decode(ids.slice(t, t + 1)), /^Lil/);
    assert.deepEqual(wordTokenPositions(tok, ids, ids.length, ['Lily']), [], 'only in the continuation');
  });
});
