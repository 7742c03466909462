import assert from 'node:assert/strict';
import { diffSides, sameFraction, splitWords, wordDiff } from '../../src/views/wordDiff';

const join = (parts: { text: string }[]) => parts.map((p) => p.text).join('');

describe('wordDiff (LCS over words)', () => {
  it('splits words keeping their whitespace, so joining gives the text back', () => {
    assert.deepEqual(splitWords('  Once upon\na time.'), ['  ', 'Once ', 'upon\n', 'a ', 'time.']);
    assert.deepEqual(splitWords(''), []);
  });

  it('marks the one changed word and keeps the rest', () => {
    const parts = wordDiff('she went to the park with Lily', 'she went to the shop with Lily');
    assert.deepEqual(parts, [
      { op: 'same', text: 'she went to the ' },
      { op: 'removed', text: 'park ' },
      { op: 'added', text: 'shop ' },
      { op: 'same', text: 'with Lily' },
    ]);
  });

  it('reconstructs both sides exactly', () => {
    const a = 'Lily and Tom played. They were happy and sad and happy.';
    const b = 'Tom played ball. They were happy, happy.';
    const { before, after } = diffSides(wordDiff(a, b));
    assert.equal(join(before), a);
    assert.equal(join(after), b);
  });

  it('finds the longest common subsequence, not a greedy match', () => {
    // LCS of [a b c d] and [b c d a] is [b c d] (3), not [a] (1).
    const parts = wordDiff('a b c d', 'b c d a');
    const same = parts
      .filter((p) => p.op === 'same')
      .map((p) => p.text.trim())
      .join(' ');
    assert.equal(same, 'b c d');
  });

  it('handles identical, empty and disjoint texts', () => {
    assert.deepEqual(wordDiff('same text', 'same text'), [{ op: 'same', text: 'same text' }]);
    assert.deepEqual(wordDiff('', 'new words'), [{ op: 'added', text: 'new words' }]);
    assert.deepEqual(wordDiff('old', ''), [{ op: 'removed', text: 'old' }]);
    assert.equal(sameFraction(wordDiff('a b', 'c d')), 0);
    assert.equal(sameFraction(wordDiff('a b c d', 'a b x y')), 0.5);
    assert.equal(sameFraction(wordDiff('', '')), 1);
  });

  it('ignores trailing whitespace differences between equal words', () => {
    const parts = wordDiff('end of line\nnext', 'end of line next');
    assert.ok(
      parts.every((p) => p.op === 'same'),
      JSON.stringify(parts),
    );
  });

  it('caps very long texts instead of building a huge table', () => {
    const long = Array.from({ length: 5000 }, (_, i) => `w${i}`).join(' ');
    const t0 = performance.now();
    const parts = wordDiff(long, long.replace('w10 ', 'X '), 500);
    assert.ok(performance.now() - t0 < 2000);
    assert.equal(join(diffSides(parts).after), long.replace('w10 ', 'X '));
  });
});
