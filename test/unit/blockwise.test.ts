/**
 * Block-wise execution equals the monolithic relevance graph: every output (logits, tokens, layers, heads,
 * neurons, absorbed budget, weight relevance) on the synthetic GPT-2-, OPT- and Llama-like exports, with padded
 * batches and seeds at many positions (continuation targets), in every relevance mode.
 */
import assert from 'node:assert/strict';
import type { Graph } from '../../src/engine/onnx/graph';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { buildGpt2Like, buildLlamaLike, buildOptLike } from '../fixtures/torchExports';
import { BlockwiseRunner, compileBlockwise } from '../../src/engine/runtime/blockwise';
import { leftPad } from '../../src/engine/runtime/feeds';
import type { TokenBatch } from '../../src/engine/runtime/feeds';
import type { CompileOptions } from '../../src/engine/relevance/compiler';
import type { RelevanceMode } from '../../src/engine/relevance/mode';
import { CompiledModel, blockwise, cloneGraph, isPaddingLogit, maxAbs } from '../support/relevanceHarness';
import type { Outputs, Seed } from '../support/relevanceHarness';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import type { AttributeRequest } from '../../src/engine/attribution/attribute';
import { collectStatistics } from '../../src/engine/pruning/scores';
import { findLinearWeights } from '../../src/engine/pruning/prunable';
import { readModel } from '../../src/engine/onnx/io';
import { chooseExecution, estimateMemory } from '../../src/engine/runtime/execution';
import type { ModelShape } from '../../src/engine/runtime/execution';
import { LrpLensError } from '../../src/engine/errors';
import { STORIES, requireShared } from '../support/sharedFolder';

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

async function monolithic(graph: Graph, batch: TokenBatch, seed: Seed, options: CompileOptions): Promise<Outputs> {
  const compiled = await CompiledModel.create(graph, options.mode, options);
  try {
    return await compiled.run(batch, seed);
  } finally {
    await compiled.release();
  }
}

const BATCH = leftPad(
  [
    [5, 17, 3, 26, 11, 38, 2, 9],
    [21, 9, 30, 4, 14],
  ],
  0,
);

/**
 * Every output of the monolithic graph, with the same dims, equal up to float reassociation: |Δ| ≤ tolerance ×
 * the output's largest value; absorbed relevance (a sum of tiny cancelling terms) relative to the seed; logits
 * at real tokens only (isPaddingLogit).
 */
function assertSameOutputs(actual: Outputs, expected: Outputs, tolerance: number, mask = BATCH.mask): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    assert.deepEqual(a.dims, e.dims, `${name} dims`);
    const scale = Math.max(maxAbs(e.data), name.startsWith('lrp_absorbed_') ? maxAbs(expected.lrp_seed.data) : 0, 1e-30);
    const diff = Math.max(0, ...a.data.map((x, i) => (isPaddingLogit(name, e.dims, mask, i) ? 0 : Math.abs(x - e.data[i]))));
    assert.ok(diff <= tolerance * scale, `${name}: max |Δ| = ${diff} (scale ${scale})`);
  }
}

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
        const { out, sessions, chunkedLayers, specialBlocks } = await blockwise(graph, BATCH, seed, options);
        assertSameOutputs(out, expected, 1e-5);
        assert.equal(chunkedLayers, model.cfg.layers, 'every (causal) attention layer runs in query chunks');
        // The first block too: the token relevance is the embedding's graph's, so one arena serves every block.
        assert.equal(specialBlocks, 0, 'every block has the same relevance graph');
        // Unshared, there would be L + 1 forward, L + 2 relevance and one assembly graph, and 2L saving variants.
        assert.ok(sessions < 2 * model.cfg.layers + 3 + 2, `${sessions} sessions: blocks of one shape share a session`);
      });
    }

    it('saving the weight products of the last blocks (all, one, none) gives the same outputs', async () => {
      const graph = model.build({ ...model.cfg, dtype: 'float32' });
      const options: CompileOptions = { mode: 'attnlrp', weightRelevance: true };
      const seed = continuationSeed(BATCH);
      const expected = await monolithic(graph, BATCH, seed, options);
      const L = model.cfg.layers;
      const all = await blockwise(graph, BATCH, seed, options, { saveBytes: Infinity });
      assert.deepEqual(
        all.saved,
        Array.from({ length: L }, (_, i) => i + 1),
      );
      const plan = await compileBlockwise(cloneGraph(graph), options);
      assert.ok(plan.ok);
      const lastBlock = plan.plan.saving[L]!.elementsPerToken * BATCH.ids.length * BATCH.ids[0].length * 4;
      const one = await blockwise(graph, BATCH, seed, options, { saveBytes: lastBlock });
      assert.deepEqual(one.saved, [L], 'the last block is saved first');
      const none = await blockwise(graph, BATCH, seed, options, { saveBytes: 0 });
      assert.deepEqual(none.saved, []);
      for (const r of [all, one, none]) assertSameOutputs(r.out, expected, 1e-5);
    });

    it('by default saves a block only while its products outweigh its attention matrix per token', async () => {
      const graph = model.build({ ...model.cfg, dtype: 'float32' });
      const compiled = await compileBlockwise(cloneGraph(graph), { mode: 'attnlrp' });
      assert.ok(compiled.ok);
      const runner = await BlockwiseRunner.create(compiled, { streamWeights: false });
      try {
        const perToken = compiled.plan.saving[1]!.elementsPerToken;
        const heads = compiled.info.heads!;
        const longest = Math.floor(perToken / heads);
        assert.ok(runner.savedBlocks(1, longest).size > 0, `saves at ${longest} tokens`);
        assert.equal(runner.savedBlocks(1, longest + 1).size, 0, `saves nothing past ${longest} tokens`);
      } finally {
        await runner.release();
      }
    });

    it('query chunks: prompts shorter than the chunk count, and lengths the chunks do not divide', async () => {
      const graph = model.build({ ...model.cfg, dtype: 'float32' });
      const options: CompileOptions = { mode: 'attnlrp', weightRelevance: true };
      const ids = [5, 17, 3, 26, 11, 38, 2, 9, 21, 9, 30, 4, 14];
      for (const batch of [leftPad([[7]], 0), leftPad([ids.slice(0, 3)], 0), leftPad([ids, ids.slice(0, 6)], 0)]) {
        const seed = continuationSeed(batch);
        const expected = await monolithic(graph, batch, seed, options);
        const { out, chunkedLayers } = await blockwise(graph, batch, seed, options);
        assert.equal(chunkedLayers, model.cfg.layers);
        try {
          assertSameOutputs(out, expected, 1e-5, batch.mask);
        } catch (e) {
          throw new Error(`${batch.ids.map((r) => r.length).join('+')} tokens: ${(e as Error).message}`);
        }
      }
    });

    it('equals the monolithic graph in float64 to 1e-12', async () => {
      const graph = model.build({ ...model.cfg, dtype: 'float64' });
      const seed = continuationSeed(BATCH);
      const options: CompileOptions = { mode: 'attnlrp', weightRelevance: true, weightAggregation: 'absolute' };
      assertSameOutputs((await blockwise(graph, BATCH, seed, options)).out, await monolithic(graph, BATCH, seed, options), 1e-12);
    });
  });
}

describe('block-wise execution of attention that is not causal', () => {
  it('keeps such layers whole (no query chunks) and still equals the monolithic graph', async () => {
    const graph = buildLlamaLike({ ...BASE, kvHeads: 2, seed: 9, dtype: 'float32' });
    // Keys at or after the query instead of at or before it: every query reads later keys.
    const causal = graph.nodes.filter((n) => n.opType === 'LessOrEqual');
    assert.equal(causal.length, 1);
    causal[0].opType = 'GreaterOrEqual';
    const options: CompileOptions = { mode: 'attnlrp', weightRelevance: true };
    const seed = continuationSeed(BATCH);
    const { out, chunkedLayers } = await blockwise(graph, BATCH, seed, options);
    assert.equal(chunkedLayers, 0);
    assertSameOutputs(out, await monolithic(graph, BATCH, seed, options), 1e-5);
  });
});

function assertClose(a: number[], e: number[], tolerance: number, what: string): void {
  assert.equal(a.length, e.length, `${what} length`);
  const scale = Math.max(maxAbs(e), 1e-30);
  const diff = maxAbs(a.map((x, i) => x - e[i]));
  assert.ok(diff <= tolerance * scale, `${what}: max |Δ| = ${diff} (scale ${scale})`);
}

describe('block-wise execution on stories260k', function () {
  before(function () {
    requireShared(this);
  });

  it('the engine gives the monolithic attributions: a padded batch with a contrastive foil and a continuation', async () => {
    const reqs: AttributeRequest[] = [
      { prompt: 'Once upon a time, there was a little girl named', target: ' Lily', foilId: 403 },
      { prompt: 'Tom went to the park.', continuation: ' He saw a big dog and' },
    ];
    const mono = await AttributionEngine.load(STORIES, { execution: 'monolithic' });
    const block = await AttributionEngine.load(STORIES, { execution: 'blockwise' });
    try {
      const expected = await mono.attributeBatch(reqs);
      const actual = await block.attributeBatch(reqs);
      actual.forEach((a, i) => {
        const e = expected[i];
        assert.equal(a.execution?.kind, 'blockwise');
        assert.equal(e.execution?.kind, 'monolithic');
        assertClose(a.relevance.tokens, e.relevance.tokens, 1e-5, 'tokens');
        assertClose(a.relevance.layers.flat(), e.relevance.layers.flat(), 1e-5, 'layers');
        assertClose(a.relevance.heads.flat(), e.relevance.heads.flat(), 1e-5, 'heads');
        assertClose(a.relevance.neurons.flat(), e.relevance.neurons.flat(), 1e-5, 'neurons');
        const budget = (r: typeof a) => [r.relevance.seed, ...Object.values(r.relevance.absorbed)];
        assertClose(budget(a), budget(e), 1e-5, 'seed and absorbed budget');
        assert.equal(a.target.id, e.target.id);
        assertClose([a.target.logit], [e.target.logit], 1e-5, 'target logit');
        if (e.continuation) assertClose(a.continuation!.matrix.flat(), e.continuation.matrix.flat(), 1e-5, 'continuation matrix');
      });
      assert.ok(expected[1].continuation!.matrix.length >= 5, 'the continuation has several targets');
    } finally {
      await mono.release();
      await block.release();
    }
  });

  it('weight relevance for pruning (per weight, summed over samples) equals the monolithic graph', async () => {
    const onnx = join(STORIES, 'onnx', 'model.onnx');
    const weights = findLinearWeights(readModel(onnx));
    const samples = [
      [1, 403, 407, 261, 378, 247, 260, 306, 5, 181],
      [1, 320, 285, 450, 265, 310, 270],
    ];
    const mono = await collectStatistics(onnx, weights, 'lrp', samples, { execution: 'monolithic', cache: false });
    const block = await collectStatistics(onnx, weights, 'lrp', samples, { execution: 'blockwise', cache: false });
    assert.ok(weights.length >= 5 * 7);
    for (const w of weights) assertClose([...block.sums.get(w.name)!], [...mono.sums.get(w.name)!], 1e-5, w.name);
  });

  it('auto picks block-wise when the monolithic estimate exceeds the memory limit, and says why', async () => {
    const prompt = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.';
    const probe = await AttributionEngine.load(STORIES);
    const ids = probe.encode(prompt).length;
    const { monolithicBytes, blockwiseBytes } = probe.decide(1, ids).estimate;
    await probe.release();
    assert.ok(blockwiseBytes < monolithicBytes);
    const engine = await AttributionEngine.load(STORIES, { memoryLimitBytes: (monolithicBytes + blockwiseBytes) / 2 });
    try {
      const r = await engine.attribute({ prompt });
      assert.equal(r.execution?.kind, 'blockwise');
      assert.match(r.execution!.reason, /exceeds the limit/);
      assert.equal(engine.decide(1, 4).execution, 'monolithic', 'a short prompt still fits the monolithic graph');
    } finally {
      await engine.release();
    }
  });

  it('a prompt that fits neither execution is refused before it runs, with the estimate and the longest that fits', async () => {
    const probe = await AttributionEngine.load(STORIES);
    const limit = (probe.decide(1, 2).estimate.blockwiseBytes + probe.decide(1, 20).estimate.blockwiseBytes) / 2;
    await probe.release();
    const engine = await AttributionEngine.load(STORIES, { memoryLimitBytes: limit });
    try {
      await assert.rejects(
        engine.attribute({ prompt: 'Once upon a time, there was a little girl named Lily. She loved to play outside.' }),
        (e: unknown) => LrpLensError.is(e, 'out-of-memory') && /needs about .* GB/.test(e.message) && /at most \d+ tokens/.test(e.message),
      );
    } finally {
      await engine.release();
    }
  });
});

describe('execution choice', () => {
  const qwen: ModelShape = { layers: 24, heads: 14, hidden: 896, neurons: 4864, vocab: 32000, weightBytes: 1.55e9, elementBytes: 4 };
  const GB = 2 ** 30;

  it('the estimate grows with length² for the monolithic graph and far less for block-wise (no depth factor)', () => {
    const [a, b] = [estimateMemory(qwen, 1, 1024), estimateMemory(qwen, 1, 2048)];
    assert.ok(b.monolithicBytes - a.monolithicBytes > 3 * (b.blockwiseBytes - a.blockwiseBytes));
    const deeper = estimateMemory({ ...qwen, layers: 48 }, 1, 2048);
    assert.ok(deeper.blockwiseBytes - b.blockwiseBytes < 0.01 * (deeper.monolithicBytes - b.monolithicBytes));
  });

  it('auto: monolithic where it fits, block-wise where only that fits, refused (with the estimate and the way out) otherwise', () => {
    assert.equal(chooseExecution('auto', qwen, 1, 256, 16 * GB).execution, 'monolithic');
    const long = chooseExecution('auto', qwen, 1, 2048, 16 * GB);
    assert.equal(long.execution, 'blockwise');
    assert.match(long.reason, /exceeds the limit of 16\.0 GB/);
    assert.throws(
      () => chooseExecution('auto', qwen, 1, 32768, 16 * GB),
      (e: unknown) =>
        LrpLensError.is(e, 'out-of-memory') && /needs about [\d.]+ GB/.test(e.message) && /at most \d+ tokens/.test(e.message),
    );
    assert.throws(
      () => chooseExecution('auto', qwen, 1, 2048, 16 * GB, 'the residual stream was not recognised'),
      /block-wise is not possible/,
    );
  });

  it('a forced execution is honoured where it fits and refused before it runs where not; forcing block-wise on a model that cannot be split says why', () => {
    assert.equal(chooseExecution('monolithic', qwen, 1, 512, 16 * GB).execution, 'monolithic');
    assert.equal(chooseExecution('monolithic', qwen, 1, 2048, 64 * GB).execution, 'monolithic');
    assert.equal(chooseExecution('blockwise', qwen, 1, 16, 16 * GB).execution, 'blockwise');
    assert.throws(
      () => chooseExecution('monolithic', qwen, 1, 2048, 16 * GB),
      (err: unknown) =>
        LrpLensError.is(err, 'out-of-memory') &&
        /--execution monolithic needs about 3\d\.\d GB, more than the limit of 16\.0 GB\. Use --execution auto or blockwise \(block-wise needs \d\.\d GB\)/.test(
          (err as Error).message,
        ),
    );
    assert.throws(() => chooseExecution('blockwise', qwen, 1, 32768, 16 * GB), /--execution blockwise needs about .*Shorten the input/);
    assert.throws(
      () => chooseExecution('blockwise', qwen, 1, 16, 16 * GB, 'no residual stream'),
      /not possible for this model: no residual stream/,
    );
  });
});
