/** Applying masks: zeroed weights in memory and in exported model folders that transformers.js loads. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LrpLensError } from '../../src/engine/errors';
import { isExternal, readExternalBytes } from '../../src/engine/onnx/externalData';
import type { Graph } from '../../src/engine/onnx/graph';
import { readModel, writeModel, writeModelWithExternalData } from '../../src/engine/onnx/io';
import { buildLlamaLike } from '../fixtures/torchExports';
import { toHalf } from '../fixtures/exportVariants';
import { tensorDims } from '../../src/engine/onnx/tensor';
import { applyMaskToGraph, exportPrunedModel } from '../../src/engine/pruning/export';
import type { Mask } from '../../src/engine/weights/types';
import { forward, single } from '../support/relevanceHarness';
import type { Values } from '../support/relevanceHarness';
import { STORIES, requireShared } from '../support/sharedFolder';

const PROMPT = 'Once upon a time, there was a little girl named';

/** Initializers read by MatMul nodes as their weight. */
function matmulWeights(g: Graph): string[] {
  return g.nodes.filter((n) => n.opType === 'MatMul' && g.initializers.has(n.inputs[1])).map((n) => n.inputs[1]);
}

/** Each listed weight with a deterministic random half of its elements pruned. */
function randomHalfMask(g: Graph, names: string[], seed = 7): Mask {
  let x = seed;
  const bit = (): number => ((x = (x * 1664525 + 1013904223) >>> 0) >>> 31) & 1;
  return new Map(
    names.map((name) => {
      const dims = tensorDims(g.initializers.get(name)!);
      return [name, { dims, keep: Uint8Array.from({ length: dims[0] * dims[1] }, bit) }];
    }),
  );
}

/** An initializer's bytes, wherever they live. */
function weightBytes(g: Graph, name: string): Uint8Array {
  const t = g.initializers.get(name)!;
  return isExternal(t) ? readExternalBytes(t, g.source!.dir) : t.rawData!;
}

/** Asserts `pruned` holds zeros exactly where the mask prunes and `dense`'s bytes elsewhere. */
function assertZeroedAsMasked(dense: Graph, pruned: Graph, mask: Mask, elementBytes: number): void {
  for (const [name, m] of mask) {
    const a = weightBytes(dense, name);
    const b = weightBytes(pruned, name);
    let zeros = 0;
    for (let j = 0; j < m.keep.length; j++) {
      const got = b.subarray(j * elementBytes, (j + 1) * elementBytes);
      if (m.keep[j] === 0) {
        assert.ok(
          got.every((v) => v === 0),
          `${name}[${j}] is pruned but not zero`,
        );
        zeros++;
      } else {
        assert.deepEqual(got, a.subarray(j * elementBytes, (j + 1) * elementBytes), `${name}[${j}] is kept but changed`);
      }
    }
    assert.ok(zeros > m.keep.length / 4, `${name}: ${zeros} zeros`);
  }
  for (const name of dense.initializers.keys()) {
    if (!mask.has(name)) assert.deepEqual(weightBytes(pruned, name), weightBytes(dense, name), `${name} is not masked but changed`);
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

interface TjsModel {
  (inputs: unknown): Promise<{ logits: { data: Float32Array; dims: number[] } }>;
  dispose(): Promise<unknown>;
}

/** Logits of transformers.js running the folder, offline, and the prompt's token ids. */
async function transformersJsLogits(dir: string, prompt: string): Promise<{ ids: number[]; logits: Float32Array; dims: number[] }> {
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = '';
  const tokenizer = await t.AutoTokenizer.from_pretrained(dir);
  const model = (await t.AutoModelForCausalLM.from_pretrained(dir, {
    local_files_only: true,
    dtype: 'fp32',
    device: 'cpu',
  })) as unknown as TjsModel;
  try {
    const inputs = tokenizer(prompt) as { input_ids: { tolist(): bigint[][] } };
    const out = await model(inputs);
    return { ids: inputs.input_ids.tolist()[0].map(Number), logits: out.logits.data, dims: [...out.logits.dims] };
  } finally {
    await model.dispose();
  }
}

describe('pruned model export', function () {
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'lrp-export-'));
  });

  describe('stories260k', function () {
    let dense: Graph;
    let mask: Mask;
    before(function () {
      requireShared(this);
      dense = readModel(join(STORIES, 'onnx', 'model.onnx'));
      const weights = matmulWeights(dense);
      // q, k, v, o, gate, up, down of block 0 and the down projection of block 3.
      mask = randomHalfMask(dense, [...weights.slice(0, 7), weights[24]]);
    });

    it('zeroes exactly the masked weights, and transformers.js runs the folder with the logits of the masked graph', async () => {
      const report = await exportPrunedModel(STORIES, mask, join(work, 'pruned'));
      const exported = readModel(report.onnxPath);
      assertZeroedAsMasked(dense, exported, mask, 4);
      for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'])
        assert.equal(sha(join(report.dir, f)), sha(join(STORIES, f)), f);
      assert.deepEqual(readdirSync(join(report.dir, 'onnx')), ['model.onnx']);

      const tjs = await transformersJsLogits(report.dir, PROMPT);
      const masked = await forward(applyMaskToGraph(dense, mask), single(tjs.ids));
      const plain = await forward(dense, single(tjs.ids));
      assert.deepEqual(tjs.dims, masked.dims);
      const err = maxAbsDiff(tjs.logits, masked.data);
      const change = maxAbsDiff(plain.data, masked.data);
      console.log(
        `      transformers.js vs masked graph: max |Δlogit| ${err.toExponential(2)}; pruning changed logits by up to ${change.toFixed(3)}`,
      );
      assert.ok(err <= 1e-4, `transformers.js logits differ from the masked graph's by ${err}`);
      assert.ok(change > 0.05, `pruning half of 8 weights changed the logits by only ${change}`);

      const { folderBytes, maskedDenseBytes, bitmaskFolderBytes, csrFolderBytes, prunedElements, maskedElements } = report;
      console.log(
        `      folder ${folderBytes} B; masked weights ${maskedDenseBytes} B dense (${prunedElements}/${maskedElements} pruned); as bitmask+values ${bitmaskFolderBytes} B, as CSR ${csrFolderBytes} B`,
      );
      assert.equal(
        maskedElements,
        [...mask.values()].reduce((n, m) => n + m.keep.length, 0),
      );
      assert.equal(maskedDenseBytes, maskedElements * 4);
      const kept = maskedElements - prunedElements;
      assert.equal(
        bitmaskFolderBytes,
        folderBytes - maskedDenseBytes + kept * 4 + [...mask.values()].reduce((n, m) => n + Math.ceil(m.keep.length / 8), 0),
      );
      assert.ok(bitmaskFolderBytes < folderBytes && csrFolderBytes < folderBytes);
    });

    it('keeps weights in external data when the source did, and leaves the source files untouched', async () => {
      const src = join(work, 'stories-ext');
      mkdirSync(join(src, 'onnx'), { recursive: true });
      for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'])
        copyFileSync(join(STORIES, f), join(src, f));
      writeModelWithExternalData(dense, join(src, 'onnx', 'model.onnx'), 'model.onnx_data');
      const before = sha(join(src, 'onnx', 'model.onnx_data'));
      const report = await exportPrunedModel(src, mask, join(work, 'pruned-ext'));
      assert.equal(report.externalData, true);
      assert.deepEqual(readdirSync(join(report.dir, 'onnx')).sort(), ['model.onnx', 'model.onnx_data']);
      assert.equal(
        statSync(join(report.dir, 'onnx', 'model.onnx_data')).size,
        statSync(join(src, 'onnx', 'model.onnx_data')).size,
        'same layout',
      );
      assert.equal(sha(join(src, 'onnx', 'model.onnx_data')), before, 'the source data file is unchanged');
      const exported = readModel(report.onnxPath);
      for (const name of mask.keys()) assert.ok(isExternal(exported.initializers.get(name)!), `${name} stays external`);
      assertZeroedAsMasked(readModel(join(src, 'onnx', 'model.onnx')), exported, mask, 4);
      const tjs = await transformersJsLogits(report.dir, PROMPT);
      const masked = await forward(applyMaskToGraph(dense, mask), single(tjs.ids));
      assert.ok(maxAbsDiff(tjs.logits, masked.data) <= 1e-4);
    });

    it('refuses to replace an existing folder unless asked, and to export over its source', async () => {
      const out = join(work, 'pruned');
      await exportPrunedModel(STORIES, mask, out);
      await assert.rejects(
        exportPrunedModel(STORIES, mask, out),
        (e: unknown) => LrpLensError.is(e, 'bad-argument') && /already exists/.test(e.message),
      );
      const fewer = new Map([...mask].slice(0, 1));
      const report = await exportPrunedModel(STORIES, fewer, out, { overwrite: true });
      assert.equal(report.maskedElements, [...fewer.values()][0].keep.length);
      assert.ok(!readdirSync(work).some((f) => f.includes('.partial-')), 'no partial folder left');
      await assert.rejects(exportPrunedModel(STORIES, mask, STORIES, { overwrite: true }), /cannot overwrite its source/);
    });
  });

  describe('synthetic models', () => {
    const CFG = { layers: 2, hidden: 16, heads: 4, ffn: 32, vocab: 40, maxPositions: 32, dtype: 'float32' as const, seed: 3 };
    const IDS = [1, 5, 9, 13, 2];

    /** A model folder around `graph` (the tokenizer files only need to exist for export). */
    function folder(graph: Graph, name: string): string {
      const dir = join(work, name);
      mkdirSync(join(dir, 'onnx'), { recursive: true });
      writeModel(graph, join(dir, 'onnx', 'model.onnx'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
      writeFileSync(join(dir, 'tokenizer.json'), '{}');
      return dir;
    }

    it('fp16 weights: zeroed as masked, and the exported file computes what the masked graph does', async () => {
      const half = toHalf(buildLlamaLike(CFG));
      const dir = folder(half, 'half');
      const source = readModel(join(dir, 'onnx', 'model.onnx'));
      const mask = randomHalfMask(source, matmulWeights(source).slice(0, 3));
      const report = await exportPrunedModel(dir, mask, join(work, 'half-pruned'));
      const exported = readModel(report.onnxPath);
      assertZeroedAsMasked(source, exported, mask, 2);
      assert.equal(report.maskedDenseBytes, report.maskedElements * 2);
      const a: Values = await forward(exported, single(IDS));
      const b: Values = await forward(applyMaskToGraph(source, mask), single(IDS));
      assert.deepEqual(a.data, b.data);
      assert.notDeepEqual(a.data, (await forward(source, single(IDS))).data);
    });

    it('applyMaskToGraph leaves the original graph as it was', () => {
      const g = buildLlamaLike(CFG);
      const name = matmulWeights(g)[0];
      const before = Uint8Array.from(weightBytes(g, name));
      const masked = applyMaskToGraph(g, randomHalfMask(g, [name]));
      assert.deepEqual(weightBytes(g, name), before);
      assert.notDeepEqual(weightBytes(masked, name), before);
    });

    it('refuses a mask for initializers the model lacks or with other dims, and leaves no folder', async () => {
      const g = buildLlamaLike(CFG);
      const dir = folder(g, 'plain');
      const name = matmulWeights(g)[0];
      const dims = tensorDims(g.initializers.get(name)!);
      const wrong: Mask = new Map([[name, { dims: [dims[1], dims[0] + 1], keep: new Uint8Array(dims[1] * (dims[0] + 1)) }]]);
      assert.throws(
        () => applyMaskToGraph(g, wrong),
        (e: unknown) =>
          LrpLensError.is(e, 'bad-argument') &&
          e.message.includes(`The mask for ${name} is [${dims[1]}, ${dims[0] + 1}] but the model's initializer is [${dims.join(', ')}]`),
      );
      const missing: Mask = new Map([['nope', { dims: [2, 2], keep: new Uint8Array(4) }]]);
      await assert.rejects(exportPrunedModel(dir, missing, join(work, 'out')), /names initializer nope, which the model does not have/);
      assert.equal(existsSync(join(work, 'out')), false);
    });
  });
});
