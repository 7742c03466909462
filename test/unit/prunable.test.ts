/** Which weights are prunable and how they are classified, on the synthetic exports and stories260k. */
import assert from 'node:assert/strict';
import { buildGpt2Like, buildLlamaLike, buildOptLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { readModel } from '../../src/engine/onnx/io';
import { findLinearWeights, parseWeightSelection, selectWeights } from '../../src/engine/pruning/prunable';
import { LrpLensError } from '../../src/engine/errors';
import { STORIES, requireShared } from '../support/sharedFolder';
import { join } from 'node:path';

const CFG: SyntheticConfig = { layers: 2, hidden: 8, heads: 2, ffn: 16, vocab: 20, maxPositions: 32, dtype: 'float32', seed: 1 };
const describeKinds = (ws: ReturnType<typeof findLinearWeights>) => ws.map((w) => `${w.kind}@${w.layer ?? '-'}:${w.outAxis}`).join(' ');

describe('prunable weights', () => {
  it('classifies GPT-2 (Conv1D as Gemm), OPT and Llama linear layers by block and kind', () => {
    assert.equal(describeKinds(findLinearWeights(buildGpt2Like(CFG))), 'qkv@0:1 o@0:1 fc1@0:1 fc2@0:1 qkv@1:1 o@1:1 fc1@1:1 fc2@1:1');
    assert.equal(
      describeKinds(findLinearWeights(buildOptLike(CFG))),
      'q@0:1 k@0:1 v@0:1 o@0:1 fc1@0:1 fc2@0:1 q@1:1 k@1:1 v@1:1 o@1:1 fc1@1:1 fc2@1:1',
    );
    const llama = findLinearWeights(buildLlamaLike(CFG));
    assert.equal(
      describeKinds(llama),
      'q@0:1 k@0:1 v@0:1 o@0:1 gate@0:1 up@0:1 down@0:1 q@1:1 k@1:1 v@1:1 o@1:1 gate@1:1 up@1:1 down@1:1 lm_head@-:1',
    );
  });

  it("finds stories260k's 35 block weights from node names (its initializers are onnx::MatMul_N) and its LM head", function () {
    requireShared(this);
    const all = findLinearWeights(readModel(join(STORIES, 'onnx', 'model.onnx')));
    const blocks = selectWeights(all);
    assert.equal(blocks.length, 35);
    assert.deepEqual(
      blocks.slice(0, 7).map((w) => w.kind),
      ['q', 'k', 'v', 'o', 'gate', 'up', 'down'],
    );
    assert.deepEqual(blocks.find((w) => w.kind === 'k')!.dims, [64, 32]);
    assert.equal(all.at(-1)!.kind, 'lm_head');
    assert.equal(selectWeights(all, { lmHead: true }).length, 36);
  });

  it('selects by kind and block range, and says what exists when nothing matches', () => {
    const all = findLinearWeights(buildLlamaLike(CFG));
    assert.equal(describeKinds(selectWeights(all, parseWeightSelection('gate,up:1'))), 'gate@1:1 up@1:1');
    assert.throws(
      () => selectWeights(all, parseWeightSelection('fc1')),
      (e: unknown) => LrpLensError.is(e, 'bad-argument') && /found: q@0/.test((e as Error).message),
    );
    assert.throws(() => parseWeightSelection('attn'), /Unknown layer selector 'attn'/);
  });
});
