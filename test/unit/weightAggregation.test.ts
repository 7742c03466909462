/** Σ_t |R_W,t| computed in the graph (|W| ⊙ |X|ᵀ|G|) against the signed sum it must bound. */
import assert from 'node:assert/strict';
import { buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { CompiledModel, lastTokenSeed, single } from '../support/relevanceHarness';

const CFG: SyntheticConfig = {
  layers: 2,
  hidden: 16,
  heads: 4,
  kvHeads: 2,
  ffn: 32,
  vocab: 40,
  maxPositions: 32,
  dtype: 'float64',
  seed: 5,
};

async function weightRelevance(ids: number[], aggregation: 'signed' | 'absolute') {
  const m = await CompiledModel.create(buildLlamaLike(CFG), 'attnlrp', { weightRelevance: true, weightAggregation: aggregation });
  try {
    const out = await m.run(single(ids), lastTokenSeed(single(ids), 7));
    return Object.fromEntries(Object.entries(m.info.weightOutputs).map(([w, o]) => [w, out[o].data]));
  } finally {
    await m.release();
  }
}

describe('weight relevance aggregation', () => {
  it('with one token, Σ_t |R_t| is |R| of the signed sum, element by element', async () => {
    const signed = await weightRelevance([9], 'signed');
    const absolute = await weightRelevance([9], 'absolute');
    for (const [w, values] of Object.entries(signed)) {
      values.forEach((v, i) =>
        assert.ok(Math.abs(Math.abs(v) - absolute[w][i]) <= 1e-12 * Math.max(1, Math.abs(v)), `${w}[${i}]: |${v}| vs ${absolute[w][i]}`),
      );
    }
  });

  it('with several tokens, Σ_t |R_t| ≥ |Σ_t R_t| everywhere and strictly larger where token signs disagree', async () => {
    const ids = [5, 17, 3, 26, 11];
    const signed = await weightRelevance(ids, 'signed');
    const absolute = await weightRelevance(ids, 'absolute');
    let strictly = 0;
    for (const [w, values] of Object.entries(signed)) {
      values.forEach((v, i) => {
        assert.ok(absolute[w][i] >= Math.abs(v) - 1e-12, `${w}[${i}]`);
        if (absolute[w][i] > Math.abs(v) * (1 + 1e-6) + 1e-12) strictly++;
      });
    }
    assert.ok(strictly > 100, `only ${strictly} elements differ`);
  });
});
