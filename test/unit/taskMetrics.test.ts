/** Task metrics over final-position logits, hand-computed. */
import assert from 'node:assert/strict';
import { LrpLensError } from '../../src/engine/errors';
import { finalRows, logitDiff, sampleMetric, targetAboveFoil, targetProb, taskMetric } from '../../src/engine/tasks/metrics';

const row = (...v: number[]) => Float32Array.from(v);

describe('task metrics', () => {
  it('logit_diff, accuracy and prob on hand-worked rows', () => {
    const r = row(2, 0, -1);
    assert.equal(logitDiff(r, 0, 2), 3);
    assert.equal(targetAboveFoil(r, 0, 2), 1);
    assert.equal(targetAboveFoil(r, 2, 0), 0);
    assert.equal(targetAboveFoil(row(1, 1), 0, 1), 0, 'a tie is not "above"');
    const z = Math.exp(2) + 1 + Math.exp(-1);
    assert.ok(Math.abs(targetProb(r, 0) - Math.exp(2) / z) < 1e-12);
    assert.ok(Math.abs(targetProb(row(1000, 999), 0) - 1 / (1 + Math.exp(-1))) < 1e-12, 'no overflow on large logits');
  });

  it('per sample and mean; prob needs no foil, the others do', () => {
    const rows = [row(2, 0, -1), row(0, 1, 0)];
    const samples = [
      { targetId: 0, foilId: 1 },
      { targetId: 0, foilId: 1 },
    ];
    assert.deepEqual(taskMetric('logit_diff', rows, samples), { metric: 'logit_diff', perSample: [2, -1], mean: 0.5 });
    assert.deepEqual(taskMetric('accuracy', rows, samples).perSample, [1, 0]);
    assert.equal(sampleMetric('prob', rows[1], { targetId: 1 }), targetProb(rows[1], 1));
    const isBad = (re: RegExp) => (e: unknown) => LrpLensError.is(e, 'bad-argument') && re.test(e.message);
    assert.throws(() => sampleMetric('logit_diff', rows[0], { targetId: 0 }), isBad(/has no foil; add foils or use the metric "prob"/));
    assert.throws(() => taskMetric('prob', rows, [{ targetId: 0 }]), isBad(/2 logit rows for 1 samples/));
    assert.throws(() => taskMetric('prob', [], []), isBad(/No samples/));
    assert.throws(
      () => logitDiff(rows[0], 0, 3),
      (e: unknown) => LrpLensError.is(e, 'unknown-token'),
    );
  });

  it('takes the final-position rows of [batch, seq, vocab] logits, left or right padded', () => {
    const logits = Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => i);
    assert.deepEqual(
      finalRows(logits, [2, 3, 2]).map((r) => [...r]),
      [
        [4, 5],
        [10, 11],
      ],
    );
    assert.deepEqual(
      finalRows(logits, [2, 3, 2], [2, 3]).map((r) => [...r]),
      [
        [2, 3],
        [10, 11],
      ],
    );
    assert.throws(
      () => finalRows(logits, [2, 2, 2]),
      (e: unknown) => LrpLensError.is(e, 'bad-argument'),
    );
  });
});
