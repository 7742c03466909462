/** Weight relevance (what pruning ranks) and the cp-lrp rule set, on synthetic models. */
import assert from 'node:assert/strict';
import { buildGpt2Like, buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { CompiledModel, lastTokenSeed, single } from '../support/relevanceHarness';
import type { Outputs } from '../support/relevanceHarness';

const CFG: SyntheticConfig = {
  layers: 2,
  hidden: 16,
  heads: 4,
  kvHeads: 2,
  ffn: 32,
  vocab: 40,
  maxPositions: 32,
  dtype: 'float64',
  seed: 21,
};
const IDS = [5, 17, 3, 26, 11];

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const close = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

function absorbedTotal(out: Outputs): number {
  return sum(
    Object.entries(out)
      .filter(([k]) => k.startsWith('lrp_absorbed_'))
      .map(([, v]) => v.data[0]),
  );
}

describe('weight relevance', () => {
  it('R_W = W ⊙ Σ_tokens xᵀ·g sums, per down projection, to the relevance of its input neurons (Llama, bias-free)', async () => {
    const m = await CompiledModel.create(buildLlamaLike(CFG), 'attnlrp', { weightRelevance: true });
    try {
      const out = await m.run(single(IDS), lastTokenSeed(single(IDS), 7));
      const names = Object.keys(m.info.weightOutputs);
      assert.ok(names.length >= CFG.layers * 7, `one output per linear weight, got ${names.length}: ${names.join(', ')}`);
      const neurons = out.lrp_neurons;
      const n = neurons.dims[2];
      const down = names.filter((w) => /down/.test(w)).sort();
      assert.equal(down.length, CFG.layers);
      down.forEach((w, l) => {
        const rw = out[m.info.weightOutputs[w]];
        assert.deepEqual(rw.dims, [CFG.ffn, CFG.hidden], 'in the initializer layout');
        const expected = sum(neurons.data.slice(l * n, (l + 1) * n));
        assert.ok(close(sum(rw.data), expected, 1e-9), `layer ${l}: Σ R_W ${sum(rw.data)} vs Σ neurons ${expected}`);
      });
    } finally {
      await m.release();
    }
  });

  it('the transposed (Gemm/Conv1D) weights of GPT-2 are reported in their own layout and conserve the layer relevance', async () => {
    const m = await CompiledModel.create(buildGpt2Like({ ...CFG, kvHeads: undefined }), 'attnlrp', { weightRelevance: true });
    try {
      const out = await m.run(single(IDS), lastTokenSeed(single(IDS), 7));
      for (const [init, name] of Object.entries(m.info.weightOutputs)) {
        const w = m.graph.initializers.get(init);
        assert.ok(w, `${init} is an initializer`);
        assert.deepEqual(out[name].dims, (w.dims ?? []).map(Number), `${init} keeps its shape`);
        assert.ok(
          out[name].data.some((v) => v !== 0),
          `${init} received relevance`,
        );
      }
    } finally {
      await m.release();
    }
  });
});

describe('cp-lrp', () => {
  it('treats attention probabilities as constants: no softmax absorption, budget closes, heads still reported', async () => {
    const m = await CompiledModel.create(buildLlamaLike(CFG), 'cp-lrp');
    const a = await CompiledModel.create(buildLlamaLike(CFG), 'attnlrp');
    try {
      const seed = lastTokenSeed(single(IDS), 7);
      const out = await m.run(single(IDS), seed);
      const ref = await a.run(single(IDS), seed);
      assert.equal(out.lrp_absorbed_softmax.data[0], 0);
      const total = sum(out.lrp_tokens.data) + absorbedTotal(out);
      assert.ok(close(total, out.lrp_seed.data[0], 1e-9), `budget ${total} vs ${out.lrp_seed.data[0]}`);
      assert.equal(out.lrp_heads.dims[0], CFG.layers);
      assert.notDeepEqual(out.lrp_tokens.data, ref.lrp_tokens.data, 'differs from attnlrp');
    } finally {
      await m.release();
      await a.release();
    }
  });
});
