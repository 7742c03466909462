/** Batches are padded the way the model's attention masks padding: genai (GroupQueryAttention) exports on the right. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import type { Graph } from '../../src/engine/onnx/graph';
import { buildGenaiLlama } from '../fixtures/ortFusedExports';
import { buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { padBatch } from '../../src/engine/runtime/feeds';
import { STORIES, requireShared } from '../support/sharedFolder';
import { modelFolder } from '../support/relevanceHarness';

const CFG: SyntheticConfig = {
  layers: 2,
  hidden: 64,
  heads: 4,
  kvHeads: 2,
  ffn: 96,
  vocab: 40,
  maxPositions: 64,
  dtype: 'float32',
  seed: 12,
};

describe('batch padding', function () {
  let work: string;
  before(function () {
    requireShared(this);
    work = mkdtempSync(join(tmpdir(), 'lrp-pad-'));
    process.env.LRP_LENS_CACHE = join(work, 'cache');
  });

  it('pads on either side with the mask following the tokens', () => {
    assert.deepEqual(padBatch([[5, 6], [7]], 0, 'left'), {
      ids: [
        [5, 6],
        [0, 7],
      ],
      mask: [
        [1, 1],
        [0, 1],
      ],
    });
    assert.deepEqual(padBatch([[5, 6], [7]], 0, 'right'), {
      ids: [
        [5, 6],
        [7, 0],
      ],
      mask: [
        [1, 1],
        [1, 0],
      ],
    });
  });

  const models: [string, () => Graph, 'left' | 'right'][] = [
    ['onnxruntime-genai Llama (GroupQueryAttention): right', () => buildGenaiLlama(CFG, { fusedNorms: true }), 'right'],
    ['torch-style Llama: left', () => buildLlamaLike(CFG), 'left'],
  ];
  for (const [name, build, side] of models) {
    it(`${name}-padded batches equal single runs`, async () => {
      const engine = await AttributionEngine.load(
        modelFolder(
          work,
          side,
          build(),
          { model_type: 'llama', architectures: ['LlamaForCausalLM'], max_position_embeddings: 64 },
          STORIES,
        ),
        { offline: true },
      );
      try {
        assert.equal(engine.info.padding, side);
        const rows = [
          [1, 5, 17, 3, 26, 11, 9],
          [1, 21, 30],
          [1, 8, 2, 33, 14],
        ];
        const batch = await engine.attributeBatch(rows.map((ids) => ({ ids, targetId: 7 })));
        for (let i = 0; i < rows.length; i++) {
          const single = await engine.attribute({ ids: rows[i], targetId: 7 });
          assert.equal(batch[i].relevance.tokens.length, rows[i].length);
          const diff = Math.max(...single.relevance.tokens.map((v, k) => Math.abs(v - batch[i].relevance.tokens[k])));
          assert.ok(diff <= 1e-4 * Math.max(1, ...single.relevance.tokens.map(Math.abs)), `row ${i}: max |batch − single| = ${diff}`);
          assert.ok(Math.abs(single.target.logit - batch[i].target.logit) < 1e-4);
        }
      } finally {
        await engine.release();
      }
    });
  }
});
