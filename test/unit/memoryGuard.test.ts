import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { LrpLensError } from '../../src/engine/errors';
import { dimsFromConfig, estimateMemory, parameterCounts } from '../../src/engine/memory/memoryEstimate';
import { checkMemory, parseMemorySize, setMemoryGuard } from '../../src/engine/memory/memoryGuard';
import { cliRunner } from '../support/bundledCli';
import { STORIES, requireShared } from '../support/sharedFolder';

const LLAMA_1B = {
  model_type: 'llama',
  num_hidden_layers: 16,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  tie_word_embeddings: true,
};

describe('memory guard', () => {
  afterEach(() => setMemoryGuard({}));

  it('counts the linear and embedding parameters from the config (Llama-3.2-1B: 1.2357 B without its norms) and grows activations with T and T²', () => {
    const d = dimsFromConfig(LLAMA_1B)!;
    assert.equal(parameterCounts(d).total, 1_235_746_816);
    const a128 = estimateMemory(d, { tokens: 128, batch: 1 });
    const a512 = estimateMemory(d, { tokens: 512, batch: 1 });
    assert.equal(a128.parts.weights, a512.parts.weights);
    assert.ok(a512.parts.activations > 4 * a128.parts.activations, 'attention grows with T²');
    assert.equal(a512.parts.statistics, 0);
    assert.equal(estimateMemory(d, { tokens: 128, batch: 4, statistics: true }).parts.statistics, parameterCounts(d).prunable * 8);
    assert.equal(dimsFromConfig({ model_type: 'llama' }), undefined, 'no estimate without sizes');
  });

  it('parses sizes', () => {
    assert.equal(parseMemorySize('512MB'), 512 * 2 ** 20);
    assert.equal(parseMemorySize('1.5GiB'), 1.5 * 2 ** 30);
    assert.equal(parseMemorySize('4096'), 4096);
    assert.throws(() => parseMemorySize('lots'), /not a memory size/);
  });

  it('refuses a run above the limit with the estimate and the ways out; --force runs it', () => {
    setMemoryGuard({ limit: 2 * 2 ** 30 });
    const err = (() => {
      try {
        checkMemory(LLAMA_1B, { tokens: 512, batch: 1 }, 'Attributing');
      } catch (e) {
        return e;
      }
    })();
    assert.ok(LrpLensError.is(err, 'insufficient-memory'));
    assert.match(err.message, /needs about \d+(\.\d)? GB at peak \(weights [\d.]+ GB, relevance-graph activations/);
    assert.match(err.message, /more than the memory limit .* \(2\.0 GB\)/);
    assert.match(err.message, /--dtype.*fewer tokens.*--samples.*--shard.*--force/);
    setMemoryGuard({ limit: 2 * 2 ** 30, force: true });
    assert.ok(checkMemory(LLAMA_1B, { tokens: 512, batch: 1 }, 'Attributing'));
  });

  describe('on stories260k', function () {
    let work: string;
    before(function () {
      requireShared(this);
      work = mkdtempSync(join(tmpdir(), 'lrp-mem-'));
    });
    after(() => work && rmSync(work, { recursive: true, force: true }));

    it('the engine refuses to load under a small limit, before loading', async () => {
      setMemoryGuard({ limit: 20 * 2 ** 20 });
      await assert.rejects(AttributionEngine.load(STORIES, { offline: true }), (e: unknown) => {
        assert.ok(LrpLensError.is(e, 'insufficient-memory'));
        assert.match(e.message, /^Loading .*stories260k needs about \d+ MB at peak/);
        return true;
      });
    });

    it('the CLI: --memory-limit refuses with the estimate (exit 1), --force runs', () => {
      const run = cliRunner(work);
      const refused = run('attribute', '--model', STORIES, '--prompt', 'Once upon a time', '--memory-limit', '20MB');
      assert.equal(refused.code, 1);
      assert.match(refused.err, /^error: Loading .* needs about \d+ MB at peak .* more than the memory limit .*\(20 MB\)/);
      const forced = run(
        'attribute',
        '--model',
        STORIES,
        '--prompt',
        'Once upon a time',
        '--memory-limit',
        '20MB',
        '--force',
        '--json',
        '-',
      );
      assert.equal(forced.code, 0, forced.err);
      const pruned = run(
        'prune',
        '--model',
        STORIES,
        '--method',
        'magnitude',
        '--sparsity',
        '0.5',
        '--out',
        join(work, 'm'),
        '--memory-limit',
        '20MB',
      );
      assert.equal(pruned.code, 1);
      assert.match(pruned.err, /Pruning .* needs about .*pruning statistics/);
    });
  });
});
