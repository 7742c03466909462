/** The engine on the real stories260k Llama: known outputs, budget, determinism, batching. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { LrpLensError } from '../../src/engine/errors';
import { STORIES, requireShared } from '../support/sharedFolder';

const PROMPT = 'Once upon a time, there was a little girl named';

describe('stories260k attribution', function () {
  let engine: AttributionEngine;

  before(async function () {
    requireShared(this);
    process.env.LRP_LENS_CACHE = mkdtempSync(join(tmpdir(), 'lrp-cache-'));
    engine = await AttributionEngine.load(STORIES, { offline: true });
  });

  after(async () => {
    await engine?.release();
  });

  it('tokenizes the reference prompt as documented in shared/README.md', () => {
    assert.deepEqual(engine.encode('Once upon a time, there was'), [1, 403, 407, 261, 378, 432, 383, 286]);
  });

  it('explains " Lily" after "...a little girl named" and prints the attribution', async () => {
    const r = await engine.attribute({ prompt: PROMPT });
    assert.equal(r.target.text, ' Lily');
    assert.equal(r.predictions[0].id, r.target.id);
    assert.ok(r.target.prob > 0.5, `p(Lily) = ${r.target.prob}`);
    assert.equal(r.relevance.tokens.length, r.tokens.length);
    assert.equal(r.tokens.map((t) => PROMPT.slice(t.start, t.end)).join(''), PROMPT, 'token offsets reproduce the prompt');
    assert.equal(r.tokens[0].text, '<s>');
    assert.equal(r.relevance.layers.length, 5);
    assert.deepEqual(
      r.relevance.heads.map((h) => h.length),
      [8, 8, 8, 8, 8],
    );
    assert.deepEqual(
      r.relevance.neurons.map((n) => n.length),
      [172, 172, 172, 172, 172],
    );
    // The block-0 residual stream is the embedding itself.
    r.relevance.layers[0].forEach((v, i) => assert.ok(Math.abs(v - r.relevance.tokens[i]) < 1e-5));
    // The most relevant token for predicting a name is "named".
    const top = r.relevance.tokens.indexOf(Math.max(...r.relevance.tokens));
    assert.equal(r.tokens[top].text, ' named');
    console.log('      ' + r.tokens.map((t, i) => `${JSON.stringify(t.text)}:${r.relevance.tokens[i].toFixed(3)}`).join(' '));
  });

  it('closes the relevance budget: tokens + absorbed = seed (1e-4 relative), and reports the token share', async () => {
    const r = await engine.attribute({ prompt: PROMPT, target: ' Lily' });
    const tokens = r.relevance.tokens.reduce((a, b) => a + b, 0);
    const absorbed = Object.values(r.relevance.absorbed).reduce((a, b) => a + b, 0);
    const err = Math.abs(tokens + absorbed - r.relevance.seed) / Math.abs(r.relevance.seed);
    console.log(
      `      seed ${r.relevance.seed.toFixed(5)}, tokens ${tokens.toFixed(5)} (share ${(tokens / r.relevance.seed).toFixed(3)}), absorbed ${JSON.stringify(r.relevance.absorbed)}, rel. error ${err.toExponential(2)}`,
    );
    assert.ok(err < 1e-4, `budget error ${err}`);
    assert.ok(r.relevance.absorbed.softmax > 0, 'the softmax rule absorbs relevance on a bias-free Llama');
    assert.ok(Math.abs(r.relevance.seed - r.target.logit) < 1e-4);
  });

  it('is deterministic: the same bits on a second run', async () => {
    const a = await engine.attribute({ prompt: PROMPT });
    const b = await engine.attribute({ prompt: PROMPT });
    assert.deepEqual(b.relevance, a.relevance);
  });

  it('batch runs equal single runs, left padding included', async () => {
    const prompts = [PROMPT, 'Once upon a time, there was a little boy named Tom. One day,', 'The cat'];
    const batch = await engine.attributeBatch(prompts.map((prompt) => ({ prompt })));
    for (let i = 0; i < prompts.length; i++) {
      const single = await engine.attribute({ prompt: prompts[i] });
      assert.equal(batch[i].target.id, single.target.id);
      const maxDiff = Math.max(...single.relevance.tokens.map((v, k) => Math.abs(v - batch[i].relevance.tokens[k])));
      assert.ok(maxDiff < 1e-4, `prompt ${i}: max |batch − single| = ${maxDiff}`);
      assert.ok(Math.abs(single.relevance.seed - batch[i].relevance.seed) < 1e-4);
    }
  });

  it('contrastive foil explains logit(target) − logit(foil)', async () => {
    const r = await engine.attribute({
      prompt: 'Once upon a time, there was a little boy named Tom. One day,',
      target: ' he',
      foil: ' she',
    });
    assert.ok(r.target.foil);
    assert.ok(Math.abs(r.relevance.seed - (r.target.logit - r.target.foil.logit)) < 1e-4);
    assert.ok(r.relevance.seed > 0, 'the model prefers " he" after a boy\'s name');
  });

  it('attributes a continuation as a target × source matrix, causal', async () => {
    const r = await engine.attribute({ prompt: 'Once upon a time', continuation: ', there was' });
    assert.ok(r.continuation);
    const m = r.continuation.matrix;
    assert.equal(m.length, r.continuation.targets.length);
    m.forEach((row, k) => {
      const pos = r.continuation!.targets[k].position;
      row.forEach((v, src) => {
        if (src > pos) assert.equal(v, 0, `target ${k} cannot depend on later token ${src}`);
      });
    });
    assert.deepEqual(
      r.continuation.targets.map((t) => t.text),
      [',', ' there', ' was'],
    );
  });

  it('refuses bad input with clear errors', async () => {
    await assert.rejects(
      engine.attribute({ prompt: PROMPT, target: ' Sue' }),
      (e: unknown) => LrpLensError.is(e, 'unknown-token') && /not a single token/.test(e.message),
    );
    await assert.rejects(
      engine.attribute({ prompt: PROMPT, targetId: 99999 }),
      (e: unknown) => LrpLensError.is(e, 'unknown-token') && /outside the vocabulary/.test(e.message),
    );
    await assert.rejects(
      engine.attribute({ prompt: 'a '.repeat(600) }),
      (e: unknown) => LrpLensError.is(e, 'prompt-too-long') && /context is 512/.test(e.message),
    );
    await assert.rejects(engine.attribute({ prompt: '' }), (e: unknown) => LrpLensError.is(e));
  });
});
