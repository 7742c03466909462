/**
 * The product path reaches weights read per block: an fp16 model with external data whose monolithic graph
 * would not fit the memory limit is attributed block-wise with its weights streamed, decided before anything is
 * compiled (the monolithic graph, which widens every weight, is never made), with the monolithic relevance.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import type { AttributionResult } from '../../src/engine/attribution/result';
import { LrpLensError } from '../../src/engine/errors';
import { setMemoryGuard } from '../../src/engine/memory/memoryGuard';
import { writeModelWithExternalData } from '../../src/engine/onnx/io';
import { inspectModel } from '../../src/engine/runtime/inspect';
import { buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { toHalf } from '../fixtures/exportVariants';
import { modelFolder } from '../support/relevanceHarness';
import { STORIES, requireShared } from '../support/sharedFolder';

// 116 MB of float32 weights (58 MB of fp16): past half of a limit the streamed block-wise run fits in.
const CFG: SyntheticConfig = {
  layers: 4,
  hidden: 768,
  heads: 4,
  kvHeads: 2,
  ffn: 2048,
  vocab: 512,
  maxPositions: 64,
  seed: 3,
  dtype: 'float32',
};
const CONFIG = {
  model_type: 'llama',
  num_hidden_layers: CFG.layers,
  hidden_size: CFG.hidden,
  num_attention_heads: CFG.heads,
  num_key_value_heads: CFG.kvHeads,
  intermediate_size: CFG.ffn,
  vocab_size: CFG.vocab,
  max_position_embeddings: CFG.maxPositions,
  tie_word_embeddings: false,
};
const MiB = 2 ** 20;
const IDS = [1, 45, 300, 17, 260, 99, 7, 402];

const relErr = (a: number[], b: number[]) => {
  const scale = Math.max(...b.map(Math.abs), 1e-30);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]))) / scale;
};

describe('attribution with weights read per block through the engine (fp16, external data)', function () {
  let work: string;
  let dir: string;
  before(function () {
    requireShared(this);
    work = mkdtempSync(join(tmpdir(), 'lrp-reach-'));
    dir = modelFolder(work, 'fp16-llama', buildLlamaLike(CFG), CONFIG, STORIES);
    // The folder's embedded model replaced by the fp16 one with external data.
    writeModelWithExternalData(toHalf(buildLlamaLike(CFG)), join(dir, 'onnx', 'model.onnx'), 'model.onnx_data');
  });
  after(() => {
    setMemoryGuard({});
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function attribute(limit?: number): Promise<AttributionResult> {
    setMemoryGuard({ limit });
    const engine = await AttributionEngine.load(dir, { cache: false });
    try {
      return await engine.attribute({ ids: IDS, targetId: 33 });
    } finally {
      await engine.release();
    }
  }

  it('where only streamed block-wise fits the limit: runs block-wise, weights streamed, with the monolithic relevance', async () => {
    const reference = await attribute();
    assert.equal(reference.execution?.kind, 'monolithic');
    const streamed = await attribute(200 * MiB);
    assert.equal(streamed.execution?.kind, 'blockwise');
    assert.match(streamed.execution!.reason, /exceeds the limit .*weights streamed per block/);
    for (const key of ['tokens', 'layers', 'heads', 'neurons'] as const) {
      const [a, b] = [streamed.relevance[key].flat(), reference.relevance[key].flat()];
      assert.equal(a.length, b.length, key);
      assert.ok(relErr(a, b) <= 1e-5, `${key}: relative error ${relErr(a, b)}`);
    }
  });

  it('inspect counts the fp16 weights as the float32 they are held as, and says they would be streamed', async () => {
    setMemoryGuard({ limit: 200 * MiB });
    const report = await inspectModel(dir);
    assert.equal(report.attribution.supported, true, report.attribution.reason ?? '');
    const first = report.execution!.choices[0];
    assert.equal(first.execution, 'blockwise');
    assert.match(first.reason, /weights streamed per block: the weights' 0\.1 GB as float32/);
  });

  it('a limit nothing fits is refused before anything is compiled or read', async () => {
    const data = join(dir, 'onnx', 'model.onnx_data');
    renameSync(data, `${data}.away`);
    try {
      setMemoryGuard({ limit: 120 * MiB });
      await assert.rejects(AttributionEngine.load(dir, { cache: false }), (e: unknown) => {
        assert.ok(LrpLensError.is(e, 'insufficient-memory') || LrpLensError.is(e, 'out-of-memory'), String(e));
        assert.match((e as Error).message, /needs about .*block-wise/);
        return true;
      });
    } finally {
      renameSync(`${data}.away`, data);
    }
  });
});
