/** Device choice: CUDA where its provider is installed, otherwise a CPU fallback with a warning, or an error. */
import assert from 'node:assert/strict';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { chooseDevice, cudaStatus } from '../../src/engine/runtime/device';
import { LrpLensError } from '../../src/engine/errors';
import { STORIES, requireShared } from '../support/sharedFolder';

const PROMPT = 'Once upon a time, there was a little girl named';

describe('device choice', () => {
  const cuda = cudaStatus();

  it('cpu is always available', () => {
    assert.deepEqual(chooseDevice('cpu', true), { device: 'cpu' });
  });

  it('without the CUDA provider: --device cuda falls back to the CPU with a warning naming the fix; strict fails', function () {
    if (cuda.installed) {
      console.warn('    skipped: the CUDA provider is installed here (the GPU path is tested below)');
      this.skip();
    }
    const choice = chooseDevice('cuda', false);
    assert.equal(choice.device, 'cpu');
    assert.match(choice.warning ?? '', /libonnxruntime_providers_cuda\.so.*--onnxruntime-node-install=cuda12/s);
    assert.throws(
      () => chooseDevice('cuda', true),
      (e: unknown) => LrpLensError.is(e, 'bad-argument') && /onnxruntime-node-install=cuda12/.test(e.message),
    );
  });

  it('an engine asked for cuda without the provider runs on the CPU and reports why', async function () {
    requireShared(this);
    if (cuda.installed) this.skip();
    const engine = await AttributionEngine.load(STORIES, { device: 'cuda', offline: true });
    try {
      const r = await engine.attribute({ prompt: PROMPT });
      assert.equal(r.model.device, 'cpu');
      assert.ok(r.warnings.some((w) => /CUDA execution provider is not installed/.test(w)));
    } finally {
      await engine.release();
    }
  });

  it('on a GPU: attribution on cuda equals the CPU (1e-4)', async function () {
    requireShared(this);
    if (!cuda.installed) {
      console.warn(`    skipped: no CUDA provider in ${cuda.dir} (this machine has no GPU set-up)`);
      this.skip();
    }
    const gpu = await AttributionEngine.load(STORIES, { device: 'cuda', strictDevice: true, offline: true });
    const cpu = await AttributionEngine.load(STORIES, { device: 'cpu', offline: true });
    try {
      const [a, b] = [await gpu.attribute({ prompt: PROMPT }), await cpu.attribute({ prompt: PROMPT })];
      assert.equal(a.model.device, 'cuda');
      a.relevance.tokens.forEach((v, i) =>
        assert.ok(Math.abs(v - b.relevance.tokens[i]) <= 1e-4 * Math.max(1, Math.abs(b.relevance.tokens[i]))),
      );
    } finally {
      await gpu.release();
      await cpu.release();
    }
  });
});
