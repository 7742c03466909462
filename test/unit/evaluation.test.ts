/** Perplexity, masked evaluation and greedy generation on stories260k, against independent code paths. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { ForwardModel } from '../../src/engine/eval/forward';
import { perplexity } from '../../src/engine/eval/perplexity';
import { greedyContinuations } from '../../src/engine/eval/generate';
import { splitDocuments, tokenStream, windows } from '../../src/engine/eval/textData';
import { readModel } from '../../src/engine/onnx/io';
import { makeRawTensor } from '../../src/engine/onnx/tensor';
import { encodeModel } from '../../src/engine/onnx/io';
import { Session } from '../../src/engine/runtime/session';
import { causalLmFeeds, inputSpecs, leftPad } from '../../src/engine/runtime/feeds';
import { loadTokenizer, resolveModel } from '../../src/engine/runtime/model';
import type { TokenizerLike } from '../../src/engine/runtime/model';
import { findLinearWeights, selectWeights } from '../../src/engine/pruning/prunable';
import { weightValues } from '../../src/engine/weights/weightValues';
import type { Mask, PrunableWeight } from '../../src/engine/weights/types';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const ONNX = join(STORIES, 'onnx', 'model.onnx');

/** log-softmax in float64 over plain logits from a plain onnxruntime session of the unmodified file. */
async function directNll(model: string | Uint8Array, rows: number[][]): Promise<{ sum: number; tokens: number }> {
  const session = await Session.create(model);
  try {
    let sum = 0;
    let tokens = 0;
    for (const ids of rows) {
      const specs = inputSpecs(readModel(ONNX).inputs);
      const out = await session.run(causalLmFeeds(specs, leftPad([ids], 0)));
      const logits = out.logits.data as Float32Array;
      const V = out.logits.dims[2];
      for (let t = 0; t + 1 < ids.length; t++) {
        const row = Array.from(logits.subarray(t * V, (t + 1) * V));
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
        sum += lse - row[ids[t + 1]];
        tokens++;
      }
    }
    return { sum, tokens };
  } finally {
    await session.release();
  }
}

function everyOtherMask(ws: PrunableWeight[]): Mask {
  return new Map(
    ws.map((w) => [
      w.name,
      { dims: w.dims, keep: Uint8Array.from({ length: w.dims[0] * w.dims[1] }, (_, i) => ((i * 7919) % 10 < 6 ? 1 : 0)) },
    ]),
  );
}

describe('evaluation on stories260k', function () {
  let tokenizer: TokenizerLike;
  let evalWindows: number[][];
  let weights: PrunableWeight[];

  before(async function () {
    requireShared(this);
    tokenizer = await loadTokenizer(await resolveModel(STORIES));
    const docs = splitDocuments(readFileSync(TINYSTORIES, 'utf8'));
    evalWindows = windows(tokenStream(docs.slice(6), tokenizer), 96);
    weights = selectWeights(findLinearWeights(readModel(ONNX)));
  });

  it('splits the sample into its 9 stories, each starting with BOS', () => {
    const docs = splitDocuments(readFileSync(TINYSTORIES, 'utf8'));
    assert.equal(docs.length, 9);
    assert.equal(tokenizer.encode(docs[0])[0], 1);
  });

  it('dense perplexity equals exp(mean NLL) computed directly from the logits of the unmodified model', async () => {
    const model = await ForwardModel.load(ONNX, { prunable: weights });
    try {
      const ppl = await perplexity(model, evalWindows);
      const direct = await directNll(ONNX, evalWindows);
      assert.equal(ppl.tokens, direct.tokens);
      assert.ok(
        Math.abs(ppl.perplexity - Math.exp(direct.sum / direct.tokens)) < 1e-3 * ppl.perplexity,
        `${ppl.perplexity} vs ${Math.exp(direct.sum / direct.tokens)}`,
      );
      assert.ok(ppl.perplexity > 2 && ppl.perplexity < 20, `a trained model: ${ppl.perplexity}`);
    } finally {
      await model.release();
    }
  });

  it('a mask fed to the forward model gives the perplexity of a model file with those weights zeroed', async () => {
    const mask = everyOtherMask(weights);
    const graph = readModel(ONNX);
    for (const w of weights) {
      const values = weightValues(graph, w.name);
      const keep = mask.get(w.name)!.keep;
      const zeroed = values.map((v, i) => (keep[i] ? v : 0));
      graph.initializers.set(w.name, makeRawTensor(w.name, 'float32', w.dims, new Uint8Array(zeroed.buffer)));
    }
    const model = await ForwardModel.load(ONNX, { prunable: weights });
    try {
      const dense = await perplexity(model, evalWindows);
      model.setMask(mask);
      const masked = await perplexity(model, evalWindows);
      const direct = await directNll(encodeModel(graph), evalWindows);
      assert.ok(
        Math.abs(masked.perplexity - Math.exp(direct.sum / direct.tokens)) < 1e-3 * masked.perplexity,
        `${masked.perplexity} vs direct`,
      );
      assert.ok(masked.perplexity > 2 * dense.perplexity, `pruning 40% at random hurts: ${dense.perplexity} → ${masked.perplexity}`);
      model.setMask(undefined);
      assert.equal((await perplexity(model, evalWindows)).perplexity, dense.perplexity, 'clearing the mask restores the dense model');
    } finally {
      await model.release();
    }
  });

  it('greedy generation continues "…a little girl named" with " Lily", batched rows agreeing with single rows', async () => {
    const model = await ForwardModel.load(ONNX);
    try {
      const a = tokenizer.encode('Once upon a time, there was a little girl named');
      const b = tokenizer.encode('One day, a boy');
      const both = await greedyContinuations(model, [a, b], 8);
      assert.match(tokenizer.decode(both[0]), /^ ?Lily/);
      assert.deepEqual(both[1], (await greedyContinuations(model, [b], 8))[0]);
    } finally {
      await model.release();
    }
  });
});
