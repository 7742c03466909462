/** Attention heads as circuit components: scores per head and masks that silence whole heads. */
import assert from 'node:assert/strict';
import { headAllocator, headDisplayMask, headMask, headSizeFromConfig, headsOf } from '../../src/engine/circuits/heads';
import type { PrunableWeight, Scores } from '../../src/engine/weights/types';

// Two layers' o-projections stored [in = 2 heads × 3, out = 4] (MatMul layout), and a q weight to ignore.
const o0: PrunableWeight = { name: 'o0', dims: [6, 4], outAxis: 1, layer: 0, kind: 'o' };
const o1: PrunableWeight = { name: 'o1', dims: [4, 6], outAxis: 0, layer: 1, kind: 'o' };
const q0: PrunableWeight = { name: 'q0', dims: [4, 6], outAxis: 1, layer: 0, kind: 'q' };
const scores: Scores = new Map([
  ['o0', Float32Array.from({ length: 24 }, (_, i) => (i < 12 ? 1 : 5))], // head 0 rows 0-2: 12 × 1; head 1: 12 × 5
  ['o1', Float32Array.from({ length: 24 }, (_, i) => (i % 6 < 3 ? 3 : 0.5))], // [out, in]: head 0 inputs 0-2 → 3
  ['q0', new Float32Array(24)],
]);

describe('attention heads', () => {
  it('scores each head by the relevance through its slice of the output projection, in either layout', () => {
    const heads = headsOf([o0, o1, q0], scores, 3);
    assert.deepEqual(
      heads.map((h) => [h.weight.name, h.head, h.score]),
      [
        ['o0', 0, 12],
        ['o0', 1, 60],
        ['o1', 0, 36],
        ['o1', 1, 6],
      ],
    );
  });

  it("a head mask zeroes exactly the head's input slice", () => {
    const heads = headsOf([o0, o1], scores, 3);
    const mask = headMask([heads[1], heads[2]], 3);
    const k0 = mask.get('o0')!.keep;
    assert.deepEqual(
      [...k0],
      Array.from({ length: 24 }, (_, i) => (i < 12 ? 1 : 0)),
      'o0 [in, out]: rows 3-5 gone',
    );
    const k1 = mask.get('o1')!.keep;
    assert.deepEqual(
      [...k1],
      Array.from({ length: 24 }, (_, i) => (i % 6 < 3 ? 0 : 1)),
      'o1 [out, in]: columns 0-2 gone',
    );
  });

  it('prunes the lowest heads globally or the same fraction per layer, and reports the fraction of heads', () => {
    const heads = headsOf([o0, o1], scores, 3);
    const global = headAllocator(heads, 3, 'global');
    const g = global.mask(0.5);
    assert.equal(global.achieved(g), 0.5);
    assert.equal(g.get('o0')!.keep[0], 0, 'o0 head 0 (12) goes');
    assert.equal(g.get('o1')!.keep[3], 0, 'o1 head 1 (6) goes');
    const row = headAllocator(heads, 3, 'row');
    assert.equal(row.achieved(row.mask(0.5)), 0.5);
    assert.equal(global.achieved(global.mask(0)), 0);
  });

  it('for the graph, a silenced head also loses its query columns; a shared key head only when all its query heads go', () => {
    const k0: PrunableWeight = { name: 'k0', dims: [4, 3], outAxis: 1, layer: 0, kind: 'k' }; // one kv head for 2 query heads
    const weights = [o0, q0, k0];
    const heads = headsOf([o0], scores, 3);
    const one = headDisplayMask(headMask([heads[1]], 3), weights, 3);
    const q = one.get('q0')!.keep;
    for (let i = 0; i < 4; i++) assert.deepEqual([...q.subarray(i * 6, i * 6 + 6)], [1, 1, 1, 0, 0, 0], `q row ${i}`);
    assert.ok(
      one.get('k0')!.keep.every((k) => k === 1),
      'the key head still serves head 0',
    );
    const both = headDisplayMask(headMask(heads, 3), weights, 3);
    assert.ok(
      both.get('k0')!.keep.every((k) => k === 0),
      'no query head left: the key head goes',
    );
  });

  it('reads the head size from the config, or says it cannot', () => {
    assert.equal(headSizeFromConfig({ hidden_size: 64, num_attention_heads: 8 }), 8);
    assert.equal(headSizeFromConfig({ head_dim: 16, hidden_size: 64, num_attention_heads: 8 }), 16);
    assert.throws(() => headSizeFromConfig({}), /gives no head size/);
  });
});
