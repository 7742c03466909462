/**
 * The relevance compiler on the three synthetic export styles (GPT-2, OPT, Llama with GQA): forward pass
 * unchanged, gradient × input equal to finite differences, AttnLRP budget closed, unsupported ops refused,
 * left-padded batches equal single runs.
 */
import assert from 'node:assert/strict';
import type { Graph } from '../../src/engine/onnx/graph';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { buildGpt2Like, buildLlamaLike, buildOptLike } from '../fixtures/torchExports';
import { LrpLensError } from '../../src/engine/errors';
import { compileGraph } from '../../src/engine/runtime/compile';
import { leftPad } from '../../src/engine/runtime/feeds';
import {
  ABSORBED,
  CompiledModel,
  budget,
  cloneGraph,
  finiteDifferences,
  forward,
  lastTokenSeed,
  maxAbs,
  relativeError,
  rows,
  single,
} from '../support/relevanceHarness';
import type { Seed } from '../support/relevanceHarness';

const BASE: Omit<SyntheticConfig, 'dtype'> = { layers: 2, hidden: 16, heads: 4, ffn: 32, vocab: 40, maxPositions: 32, seed: 7 };

const MODELS: { name: string; build: (c: SyntheticConfig) => Graph; cfg: Omit<SyntheticConfig, 'dtype'> }[] = [
  { name: 'GPT-2 (Gemm, LayerNormalization, tanh-GELU)', build: buildGpt2Like, cfg: BASE },
  { name: 'OPT (decomposed LayerNorm, ReLU, offset positions)', build: buildOptLike, cfg: { ...BASE, seed: 8 } },
  { name: 'Llama (RMSNorm, RoPE, GQA, SwiGLU)', build: buildLlamaLike, cfg: { ...BASE, kvHeads: 2, seed: 9 } },
];

/** Distinct ids, so that scaling one embedding row perturbs one position. */
const PROMPT = [5, 17, 3, 26, 11, 38];
const SHORT = [21, 9, 30];

/**
 * Targets with uneven weights at every position: exercises the whole seed. Target ids stay out of the
 * prompt: GPT-2 and OPT tie the LM head to the embedding, so a perturbed row would also move its logit.
 */
function spreadSeed(ids: number[]): Seed {
  const targets = [1, 2, 4, 6, 7, 8, 10, 12];
  return {
    targets: [ids.map((_, i) => targets[i % targets.length])],
    weights: [ids.map((_, i) => 0.5 + 0.25 * i)],
  };
}

/** Contrastive: target minus foil at the last position (neither in the prompt). */
function contrastiveSeed(ids: number[]): Seed {
  return lastTokenSeed(single(ids), 13, 29);
}

for (const model of MODELS) {
  describe(`relevance compiler on ${model.name}`, function () {
    const f32 = model.build({ ...model.cfg, dtype: 'float32' });
    const f64 = model.build({ ...model.cfg, dtype: 'float64' });

    it('keeps the forward pass: compiled logits equal the original (float32)', async () => {
      const compiled = await CompiledModel.create(f32, 'attnlrp');
      try {
        for (const batch of [single(PROMPT), leftPad([PROMPT, SHORT], 0)]) {
          const expected = await forward(f32, batch);
          const out = await compiled.run(batch, lastTokenSeed(batch, 1));
          assert.deepEqual(out.logits.dims, expected.dims);
          const diff = maxAbs(out.logits.data.map((x, i) => x - expected.data[i]));
          assert.ok(diff <= 1e-5, `max |Δlogits| = ${diff}`);
          assert.ok(maxAbs(expected.data) > 0.1, 'logits are not trivial');
        }
      } finally {
        await compiled.release();
      }
    });

    describe('gradxinput equals central finite differences (float64)', () => {
      let compiled: CompiledModel;
      before(async () => {
        compiled = await CompiledModel.create(f64, 'gradxinput');
      });
      after(async () => compiled?.release());

      for (const [label, seedOf] of [
        ['next-token seed at every position', spreadSeed],
        ['contrastive seed (target − foil)', contrastiveSeed],
      ] as const) {
        it(label, async () => {
          const seed = seedOf(PROMPT);
          const out = await compiled.run(single(PROMPT), seed);
          const lrp = rows(out.lrp_tokens)[0];
          const fd = await finiteDifferences(f64, PROMPT, seed);
          const err = relativeError(lrp, fd);
          assert.ok(maxAbs(fd) > 1e-3, 'relevance is not trivial');
          assert.ok(err <= 1e-3, `max relative error ${err.toExponential(2)}\n lrp ${lrp.join(' ')}\n fd  ${fd.join(' ')}`);
        });
      }
    });

    it('attnlrp: Σ tokens + Σ absorbed = seed, and every per-unit output is present', async () => {
      const compiled = await CompiledModel.create(f32, 'attnlrp');
      try {
        assert.deepEqual(compiled.info.warnings, []);
        assert.equal(compiled.info.layers, model.cfg.layers);
        assert.equal(compiled.info.heads, model.cfg.heads);
        assert.equal(compiled.info.neurons, model.cfg.ffn);
        const batch = leftPad([PROMPT, SHORT], 0);
        for (const seed of [
          lastTokenSeed(batch, 13),
          lastTokenSeed(batch, 13, 29),
          { targets: batch.ids.map((r) => r.map(() => 4)), weights: batch.mask },
        ]) {
          const out = await compiled.run(batch, seed);
          const totals = budget(out);
          for (const [r, total] of totals.entries()) {
            const s = out.lrp_seed.data[r];
            const err = Math.abs(total - s) / Math.max(Math.abs(s), 1e-6);
            assert.ok(err <= 1e-4, `row ${r}: Σ = ${total}, seed = ${s} (relative error ${err.toExponential(2)})`);
          }
          for (const k of ABSORBED) assert.ok(out[`lrp_absorbed_${k}`], `lrp_absorbed_${k} is an output`);
          assert.deepEqual(out.lrp_layers.dims, [model.cfg.layers, 2, PROMPT.length]);
          assert.deepEqual(out.lrp_heads.dims, [model.cfg.layers, 2, model.cfg.heads, PROMPT.length]);
          assert.deepEqual(out.lrp_neurons.dims, [model.cfg.layers, 2, model.cfg.ffn]);
        }
      } finally {
        await compiled.release();
      }
    });

    it('a left-padded batch gives the same results as single runs', async () => {
      const compiled = await CompiledModel.create(f32, 'attnlrp');
      try {
        const batch = leftPad([PROMPT, SHORT], 0);
        const both = await compiled.run(batch, lastTokenSeed(batch, 13, 29));
        const pad = PROMPT.length - SHORT.length;
        for (const [r, ids] of [PROMPT, SHORT].entries()) {
          const alone = await compiled.run(single(ids), lastTokenSeed(single(ids), 13, 29));
          const batched = rows(both.lrp_tokens)[r];
          const offset = r === 1 ? pad : 0;
          const real = batched.slice(offset);
          const tokens = rows(alone.lrp_tokens)[0];
          assert.ok(relativeError(real, tokens) <= 1e-4, `row ${r}: batched ${real} vs single ${tokens}`);
          assert.ok(maxAbs(batched.slice(0, offset)) <= 1e-6, `padding carries no relevance: ${batched.slice(0, offset)}`);
          assert.ok(Math.abs(both.lrp_seed.data[r] - alone.lrp_seed.data[0]) <= 1e-5 * Math.max(1, Math.abs(alone.lrp_seed.data[0])));
          for (const k of ABSORBED) {
            const a = both[`lrp_absorbed_${k}`].data[r];
            const b = alone[`lrp_absorbed_${k}`].data[0];
            assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `absorbed ${k}: batched ${a} vs single ${b}`);
          }
          const [, s, v] = alone.logits.dims;
          const lastBatched = both.logits.data.slice((r * PROMPT.length + PROMPT.length - 1) * v, (r * PROMPT.length + PROMPT.length) * v);
          const lastAlone = alone.logits.data.slice((s - 1) * v, s * v);
          assert.ok(relativeError(lastBatched, lastAlone) <= 1e-5, `row ${r}: last-position logits differ`);
        }
      } finally {
        await compiled.release();
      }
    });
  });
}

describe('relevance compiler refuses what it cannot explain', () => {
  /** GPT-2 with `op` inserted between the final LayerNorm and the LM head. */
  function withOp(op: string): Graph {
    const g = cloneGraph(buildGpt2Like({ ...BASE, dtype: 'float32' }));
    const head = g.producer('logits')!;
    head.inputs[0] = insert(g, op, head.inputs[0]);
    return g;
  }

  function insert(g: Graph, op: string, input: string): string {
    g.nodes.push({ name: `inserted_${op}`, opType: op, domain: '', inputs: [input], outputs: [`inserted_${op}_out`], attributes: [] });
    g.invalidate();
    g.sortTopologically();
    return `inserted_${op}_out`;
  }

  for (const op of ['Cos', 'Round']) {
    for (const mode of ['attnlrp', 'gradxinput'] as const) {
      it(`an op without a rule (${op}) on the relevant path fails at compile time in ${mode}, naming the op and node`, async () => {
        await assert.rejects(compileGraph(withOp(op), { mode }), (err: unknown) => {
          assert.ok(LrpLensError.is(err, 'unsupported-op'), String(err));
          assert.match(err.message, new RegExp(`\\b${op}\\b`));
          assert.match(err.message, new RegExp(`inserted_${op}`));
          return true;
        });
      });
    }
  }

  it('an op without a rule off the relevant path is fine (Cos of position ids in RoPE)', async () => {
    const { info } = await compileGraph(buildLlamaLike({ ...BASE, kvHeads: 2, dtype: 'float32' }));
    assert.equal(info.layers, BASE.layers);
  });
});
