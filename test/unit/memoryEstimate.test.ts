/**
 * The one memory estimate (guard and execution chooser) against measured peak RSS of several shapes: within
 * 25 % and never under (an estimate under the peak lets a run pass the limit).
 */
import { strict as assert } from 'node:assert';
import { estimateMemory, estimateExecutions } from '../../src/engine/memory/memoryEstimate';
import { estimateMemory as chooserEstimate } from '../../src/engine/runtime/execution';
import { MEASURED } from '../fixtures/memoryMeasurements';

const MiB = 2 ** 20;

describe('memory estimate', () => {
  for (const m of MEASURED) {
    const what = `${m.model}, ${m.execution}${m.statistics ? ' with statistics' : ''}, ${m.tokens} tokens`;
    it(`${what}: measured ${(m.peakMiB / 1024).toFixed(2)} GiB, estimate within +0 … +25 %`, () => {
      const est = estimateMemory(m.dims, { tokens: m.tokens, batch: 1, execution: m.execution, statistics: m.statistics }).bytes / MiB;
      const ratio = est / m.peakMiB;
      assert.ok(ratio >= 1 && ratio <= 1.25, `estimate ${est.toFixed(0)} MiB = ${ratio.toFixed(3)} × measured ${m.peakMiB.toFixed(0)} MiB`);
    });
  }

  it('the chooser and the guard use the same estimate', () => {
    const qwen = MEASURED.find((m) => m.model.startsWith('qwen'))!.dims;
    const shape = { layers: 24, heads: 14, hidden: 896, neurons: 4864, vocab: 32000, kvHeads: 2, externalData: true, elementBytes: 4 };
    const weightBytes = estimateMemory(qwen, { tokens: 1, batch: 1 }).parameters * 4;
    assert.deepEqual(chooserEstimate({ ...shape, weightBytes }, 2, 1024), estimateExecutions({ ...qwen, weightBytes }, 2, 1024));
    assert.equal(
      estimateExecutions(qwen, 1, 2048).blockwiseBytes,
      estimateMemory(qwen, { tokens: 2048, batch: 1, execution: 'blockwise' }).bytes,
    );
  });

  it('statistics: the running sums always; the whole model’s outputs at once only for the monolithic graph', () => {
    const qwen = MEASURED.find((m) => m.model.startsWith('qwen'))!.dims;
    const part = (execution: 'monolithic' | 'blockwise') =>
      estimateMemory(qwen, { tokens: 2048, batch: 1, execution, statistics: true }).parts.statistics;
    assert.ok(part('monolithic') > 1.8 * part('blockwise'));
  });
});
