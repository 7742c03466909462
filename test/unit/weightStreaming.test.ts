/**
 * Weights read per block: block-wise execution with streamed weights (read when a segment runs, dropped after)
 * gives the outputs of block-wise execution with every weight kept, and the monolithic graph's; the compile
 * reads no weight (external data stays in its file, fp16 is widened per block); the store holds less than the
 * whole model at once, and keeps a weight several segments share until its last use.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Graph } from '../../src/engine/onnx/graph';
import { readModel, writeModelWithExternalData } from '../../src/engine/onnx/io';
import { BlockwiseRunner, compileBlockwise } from '../../src/engine/runtime/blockwise';
import type { BlockwiseModel } from '../../src/engine/runtime/blockwise';
import { causalLmFeeds, leftPad, seedFeeds } from '../../src/engine/runtime/feeds';
import { tensorNumbers } from '../../src/engine/runtime/session';
import { streamWeights } from '../../src/engine/runtime/weightStreaming';
import { buildGpt2Like, buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { quantizeDequantizeLinear, quantizeDynamic, quantizeMatMulNBits, toHalf } from '../fixtures/exportVariants';
import { CompiledModel, isPaddingLogit, maxAbs } from '../support/relevanceHarness';
import type { Outputs } from '../support/relevanceHarness';

// Wide enough that every matrix and the embedding are past DEFER_MIN_ELEMENTS (deferred, streamed).
const CFG: SyntheticConfig = { layers: 3, hidden: 64, heads: 4, ffn: 128, vocab: 40, maxPositions: 32, seed: 5, dtype: 'float32' };
const BATCH = leftPad(
  [
    [5, 17, 3, 26, 11, 38, 2, 9],
    [21, 9, 30, 4, 14],
  ],
  0,
);
const SEED = {
  targetIds: BATCH.ids.flatMap((r) => r.map((_, i) => (i * 7 + 3) % 40)),
  targetWeights: BATCH.mask.flatMap((r) => r.map((m, i) => (m && i >= 2 ? 1 : 0))),
};

const MODELS: { name: string; graph: () => Graph; tied: boolean }[] = [
  { name: 'fp16 Llama (GQA, untied head)', graph: () => toHalf(buildLlamaLike({ ...CFG, kvHeads: 2 })), tied: false },
  { name: 'fp32 GPT-2 (tied embedding)', graph: () => buildGpt2Like(CFG), tied: true },
  { name: 'q4 Llama (MatMulNBits)', graph: () => quantizeMatMulNBits(buildLlamaLike(CFG)).quantized, tied: false },
  { name: 'q8 Llama (quantize_dynamic)', graph: () => quantizeDynamic(buildLlamaLike(CFG)).quantized, tied: false },
  { name: 'int8 QDQ Llama (per channel)', graph: () => quantizeDequantizeLinear(buildLlamaLike(CFG), true).quantized, tied: false },
];

async function run(model: BlockwiseModel, streamWeights: boolean): Promise<{ out: Outputs; runner: BlockwiseRunner }> {
  // No saved weight products (never done when streaming): kept and streamed then run the same graphs.
  const runner = await BlockwiseRunner.create(model, { streamWeights, saveBytes: 0 });
  const feeds = { ...causalLmFeeds(model.info.inputs, BATCH), ...seedFeeds(model.info.dtype, [2, 8], SEED) };
  const raw = await runner.run(feeds);
  await runner.release();
  return { out: Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, { data: tensorNumbers(v), dims: [...v.dims] }])), runner };
}

async function compiled(path: string): Promise<BlockwiseModel> {
  const c = await compileBlockwise(readModel(path), { mode: 'attnlrp', weightRelevance: true });
  if (!c.ok) throw new Error(c.reason);
  return c;
}

for (const m of MODELS) {
  describe(`weights read per block: ${m.name}, external data`, function () {
    let dir: string;
    let path: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'lrp-stream-'));
      path = join(dir, 'model.onnx');
      writeModelWithExternalData(m.graph(), path, 'model.onnx_data');
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('compiles and starts its sessions without reading a weight', async () => {
      const data = join(dir, 'model.onnx_data');
      renameSync(data, `${data}.away`);
      try {
        const model = await compiled(path);
        assert.equal(model.weights.heldBytes, 0);
        await (await BlockwiseRunner.create(model, { streamWeights: true })).release();
      } finally {
        renameSync(`${data}.away`, data);
      }
    });

    it('streamed equals kept exactly, and the monolithic graph within 1e-5', async () => {
      const kept = await run(await compiled(path), false);
      const streamed = await run(await compiled(path), true);
      assert.deepEqual(streamed.out, kept.out);
      // The same weights, embedded (a model loaded from bytes cannot refer to external data).
      const mono = await CompiledModel.create(m.graph(), 'attnlrp', { weightRelevance: true });
      const expected = await mono.run(BATCH, {
        targets: BATCH.ids.map((r) => r.map((_, i) => (i * 7 + 3) % 40)),
        weights: BATCH.mask.map((r) => r.map((mk, i) => (mk && i >= 2 ? 1 : 0))),
      });
      await mono.release();
      assert.deepEqual(Object.keys(streamed.out).sort(), Object.keys(expected).sort());
      for (const [name, e] of Object.entries(expected)) {
        const scale = Math.max(maxAbs(e.data), name.startsWith('lrp_absorbed_') ? maxAbs(expected.lrp_seed.data) : 0, 1e-30);
        const diff = maxAbs(streamed.out[name].data.map((x, i) => (isPaddingLogit(name, e.dims, BATCH.mask, i) ? 0 : x - e.data[i])));
        assert.ok(diff <= 1e-5 * scale, `${name}: max |Δ| = ${diff} (scale ${scale})`);
      }
    });

    it('holds less than the whole model at once when streaming, everything when kept', async () => {
      const model = await compiled(path);
      const { runner } = await run(model, true);
      const store = model.weights;
      assert.ok(runner.weightStreaming.stream);
      assert.ok(store.maxHeldBytes < 0.6 * store.bytes, `held at most ${store.maxHeldBytes} of ${store.bytes} bytes`);
      assert.equal(store.heldBytes, 0, 'every weight is dropped after its last use');
      // A block's weights are read twice (forward, relevance); a tied embedding once, kept from first to last use.
      const block = store.names.find((w) => /layers?\.1\.|h\.1\./.test(w))!;
      assert.equal(store.loads.get(block), 2, block);
      const readOnce = store.names.filter((w) => store.loads.get(w) === 1);
      if (m.tied)
        assert.ok(
          readOnce.some((w) => /wte/.test(w)),
          `read once: ${readOnce.join(', ')}`,
        );

      const keptModel = await compiled(path);
      await run(keptModel, false);
      assert.equal(keptModel.weights.maxHeldBytes, keptModel.weights.bytes);
      assert.ok([...keptModel.weights.loads.values()].every((n) => n === 1));
    });

    it('saves no weight products when streaming (memory is what is short), whatever the budget', async () => {
      const model = await compiled(path);
      const [streamed, kept] = await Promise.all(
        [true, false].map((s) => BlockwiseRunner.create(model, { streamWeights: s, saveBytes: Infinity })),
      );
      assert.equal(streamed.savedBlocks(2, 8).size, 0);
      assert.ok(kept.savedBlocks(2, 8).size > 0);
      await Promise.all([streamed.release(), kept.release()]);
    });
  });
}

describe('weight streaming decision', () => {
  it('keeps the weights when they fit in half the limit, streams them past it; a forced choice wins', () => {
    assert.equal(streamWeights(4 * 2 ** 30, 16 * 2 ** 30).stream, false);
    assert.equal(streamWeights(12 * 2 ** 30, 16 * 2 ** 30).stream, true);
    assert.match(streamWeights(12 * 2 ** 30, 16 * 2 ** 30).reason, /12\.0 GB.*16\.0 GB/);
    assert.equal(streamWeights(12 * 2 ** 30, 16 * 2 ** 30, false).stream, false);
    assert.equal(streamWeights(1, 16 * 2 ** 30, true).stream, true);
  });
});
