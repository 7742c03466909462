/**
 * Block-wise execution equals the monolithic relevance graph: every output (logits, tokens, layers, heads,
 * neurons, absorbed budget, weight relevance) on the synthetic GPT-2-, OPT- and Llama-like exports, with padded
 * batches and seeds at many positions (continuation targets), in every relevance mode.
 */
import assert from 'node:assert/strict';
import type { Graph } from '../../src/engine/onnx/graph';
import type { SyntheticConfig } from '../../src/engine/onnx/synthetic';
import { buildGpt2Like, buildLlamaLike, buildOptLike } from '../../src/engine/onnx/synthetic';
import { BlockwiseRunner, compileBlockwise } from '../../src/engine/runtime/blockwise';
import { causalLmFeeds, leftPad, seedFeeds } from '../../src/engine/runtime/feeds';
import type { TokenBatch } from '../../src/engine/runtime/feeds';
import { tensorNumbers } from '../../src/engine/runtime/session';
import type { CompileOptions } from '../../src/engine/relevance/compiler';
import type { RelevanceMode } from '../../src/engine/relevance/patterns';
import { CompiledModel, cloneGraph } from './helpers';
import type { Outputs, Seed } from './helpers';

const BASE: Omit<SyntheticConfig, 'dtype'> = { layers: 3, hidden: 16, heads: 4, ffn: 32, vocab: 40, maxPositions: 32, seed: 7 };

const MODELS: { name: string; build: (c: SyntheticConfig) => Graph; cfg: Omit<SyntheticConfig, 'dtype'> }[] = [
  { name: 'GPT-2', build: buildGpt2Like, cfg: BASE },
  { name: 'OPT', build: buildOptLike, cfg: { ...BASE, seed: 8 } },
  { name: 'Llama (GQA)', build: buildLlamaLike, cfg: { ...BASE, kvHeads: 2, seed: 9 } },
];

/** Two rows of different lengths (left-padded), seeds at every position of a continuation, contrastive foils. */
function continuationSeed(batch: TokenBatch): Seed {
  return {
    targets: batch.ids.map((r) => r.map((_, i) => (i * 7 + 3) % 40)),
    weights: batch.mask.map((r) => r.map((m, i) => (m && i >= 2 ? 1 : 0))),
    foils: batch.ids.map((r) => r.map((_, i) => (i * 5 + 1) % 40)),
    foilWeights: batch.mask.map((r) => r.map((m, i) => (m && i === r.length - 1 ? 1 : 0))),
  };
}

async function blockwise(
  graph: Graph,
  batch: TokenBatch,
  seed: Seed,
  options: CompileOptions,
): Promise<{ out: Outputs; sessions: number }> {
  const compiled = await compileBlockwise(cloneGraph(graph), options);
  if (!compiled.ok) throw new Error(compiled.reason);
  const runner = await BlockwiseRunner.create(compiled);
  try {
    const [b, s] = [batch.ids.length, batch.ids[0].length];
    const feeds = causalLmFeeds(compiled.info.inputs, batch);
    Object.assign(
      feeds,
      seedFeeds(compiled.info.dtype, [b, s], {
        targetIds: seed.targets.flat(),
        targetWeights: seed.weights.flat(),
        foilIds: seed.foils?.flat(),
        foilWeights: seed.foilWeights?.flat(),
      }),
    );
    const raw = await runner.run(feeds);
    const out = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, { data: tensorNumbers(v), dims: [...v.dims] }]));
    return { out, sessions: runner.sessionCount };
  } finally {
    await runner.release();
  }
}

async function monolithic(graph: Graph, batch: TokenBatch, seed: Seed, options: CompileOptions): Promise<Outputs> {
  const compiled = await CompiledModel.create(graph, options.mode, options);
  try {
    return await compiled.run(batch, seed);
  } finally {
    await compiled.release();
  }
}

const maxAbs = (xs: number[]) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * Every output of the monolithic graph, with the same dims, equal up to float reassociation: |Δ| ≤ tolerance ×
 * the output's largest value; absorbed relevance (a sum of tiny cancelling terms) relative to the seed.
 */
function assertSameOutputs(actual: Outputs, expected: Outputs, tolerance: number): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    assert.deepEqual(a.dims, e.dims, `${name} dims`);
    const scale = Math.max(maxAbs(e.data), name.startsWith('lrp_absorbed_') ? maxAbs(expected.lrp_seed.data) : 0, 1e-30);
    const diff = Math.max(0, ...a.data.map((x, i) => Math.abs(x - e.data[i])));
    assert.ok(diff <= tolerance * scale, `${name}: max |Δ| = ${diff} (scale ${scale})`);
  }
}

const BATCH = leftPad(
  [
    [5, 17, 3, 26, 11, 38, 2, 9],
    [21, 9, 30, 4, 14],
  ],
  0,
);

for (const model of MODELS) {
  describe(`block-wise execution on ${model.name}`, function () {
    const cases: { mode: RelevanceMode; weights: boolean }[] = [
      { mode: 'attnlrp', weights: true },
      { mode: 'gradxinput', weights: false },
      { mode: 'cp-lrp', weights: false },
    ];
    for (const { mode, weights } of cases) {
      it(`equals the monolithic graph (${mode}${weights ? ', weight relevance' : ''}, padded batch, continuation seeds)`, async () => {
        const graph = model.build({ ...model.cfg, dtype: 'float32' });
        const options: CompileOptions = { mode, weightRelevance: weights };
        const seed = continuationSeed(BATCH);
        const expected = await monolithic(graph, BATCH, seed, options);
        const { out, sessions } = await blockwise(graph, BATCH, seed, options);
        assertSameOutputs(out, expected, 1e-5);
        assert.ok(sessions < 2 * model.cfg.layers + 3, `${sessions} sessions: blocks of one shape share a session`);
      });
    }

    it('equals the monolithic graph in float64 to 1e-12', async () => {
      const graph = model.build({ ...model.cfg, dtype: 'float64' });
      const seed = continuationSeed(BATCH);
      const options: CompileOptions = { mode: 'attnlrp', weightRelevance: true, weightAggregation: 'absolute' };
      assertSameOutputs((await blockwise(graph, BATCH, seed, options)).out, await monolithic(graph, BATCH, seed, options), 1e-12);
    });
  });
}
