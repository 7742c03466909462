/** Weights stay where they are: external data files and the model file itself are linked, never copied. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildGpt2Like } from '../fixtures/torchExports';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { readModel, writeModelWithExternalData } from '../../src/engine/onnx/io';
import { isExternal } from '../../src/engine/onnx/externalData';
import { compileModelFile } from '../../src/engine/runtime/compile';
import { STORIES, requireShared } from '../support/sharedFolder';

const PROMPT = 'Once upon a time, there was a little girl named';

describe('external data', function () {
  let work: string;

  before(function () {
    requireShared(this);
    work = mkdtempSync(join(tmpdir(), 'lrp-ext-'));
    process.env.LRP_LENS_CACHE = join(work, 'cache');
  });

  /** stories260k re-saved as model.onnx + model.onnx_data, as exporters do past 2 GB. */
  function externalCopy(): string {
    const dir = join(work, 'stories-ext');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(STORIES, f), join(dir, f));
    writeModelWithExternalData(readModel(join(STORIES, 'onnx', 'model.onnx')), join(dir, 'onnx', 'model.onnx'), 'model.onnx_data');
    return dir;
  }

  it('attributes a model whose weights live in model.onnx_data, identically to the embedded file', async () => {
    const dir = externalCopy();
    const g = readModel(join(dir, 'onnx', 'model.onnx'));
    const external = [...g.initializers.values()].filter(isExternal).length;
    assert.ok(external > 30, `${external} initializers are external`);
    const a = await AttributionEngine.load(dir, { offline: true });
    const b = await AttributionEngine.load(STORIES, { offline: true });
    try {
      const ra = await a.attribute({ prompt: PROMPT });
      const rb = await b.attribute({ prompt: PROMPT });
      assert.equal(ra.target.text, ' Lily');
      ra.relevance.tokens.forEach((v, i) =>
        assert.ok(Math.abs(v - rb.relevance.tokens[i]) < 1e-5, `token ${i}: ${v} vs ${rb.relevance.tokens[i]}`),
      );
    } finally {
      await a.release();
      await b.release();
    }
  });

  it('the cached relevance graph links the data file (same inode) and holds no weights itself', async () => {
    const dir = externalCopy();
    const data = join(dir, 'onnx', 'model.onnx_data');
    const compiled = await compileModelFile(join(dir, 'onnx', 'model.onnx'), {}, true);
    const linked = join(compiled.path, '..', 'model.onnx_data');
    assert.equal(statSync(linked).ino, statSync(data).ino, 'hard link, not a copy');
    assert.ok(
      statSync(compiled.path).size < statSync(data).size / 4,
      `relevance graph ${statSync(compiled.path).size} B vs data ${statSync(data).size} B`,
    );
  });

  it('the cache key covers the data file: new weights in model.onnx_data mean a new compile', async () => {
    const dir = externalCopy();
    const model = join(dir, 'onnx', 'model.onnx');
    const first = await compileModelFile(model, {}, true);
    assert.equal((await compileModelFile(model, {}, true)).fromCache, true);
    const data = join(dir, 'onnx', 'model.onnx_data');
    utimesSync(data, new Date(), new Date(Date.now() + 5000));
    const again = await compileModelFile(model, {}, true);
    assert.equal(again.fromCache, false);
    assert.notEqual(again.path, first.path);
  });

  it('a model with embedded weights is referenced in place: the relevance graph points into a link to model.onnx', async () => {
    const compiled = await compileModelFile(join(STORIES, 'onnx', 'model.onnx'), {}, false);
    const folder = join(compiled.path, '..');
    const original = statSync(join(STORIES, 'onnx', 'model.onnx'));
    assert.ok(
      statSync(compiled.path).size < original.size / 4,
      `relevance graph ${statSync(compiled.path).size} B vs model ${original.size} B`,
    );
    const links = readdirSync(folder).filter((f) => statSync(join(folder, f)).ino === original.ino);
    assert.equal(links.length, 1, 'one link to the original file');
  });
});

describe('external data at scale', function () {
  this.timeout(300000);

  it('compiles a model whose weights live in model.onnx_data with peak RSS far below the weights', async function () {
    requireShared(this);
    const dir = mkdtempSync(join(tmpdir(), 'lrp-ext-big-'));
    mkdirSync(join(dir, 'onnx'));
    // Most of the 640 MB is a large vocabulary (as in multilingual models): cheap to build, large to hold.
    const cfg = { layers: 2, hidden: 1024, heads: 16, ffn: 4096, vocab: 150000, maxPositions: 256, dtype: 'float32' as const, seed: 5 };
    writeModelWithExternalData(buildGpt2Like(cfg), join(dir, 'onnx', 'model.onnx'), 'model.onnx_data');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));
    copyFileSync(join(STORIES, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const weights = statSync(join(dir, 'onnx', 'model.onnx_data')).size;
    const cli = resolve(__dirname, '..', '..', 'dist', 'cli.js');
    const r = spawnSync(process.execPath, [cli, 'compile', '--model', dir, '--out', join(dir, 'out', 'relevance.onnx')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const rss = Number(/peak RSS (\d+) MB/.exec(r.stdout)?.[1]) * 2 ** 20;
    console.log(`      weights ${(weights / 2 ** 20).toFixed(0)} MB, compile peak RSS ${(rss / 2 ** 20).toFixed(0)} MB`);
    assert.ok(rss < weights / 2, `peak RSS ${rss} vs weights ${weights}`);
    assert.equal(
      statSync(join(dir, 'out', 'model.onnx_data')).ino,
      statSync(join(dir, 'onnx', 'model.onnx_data')).ino,
      'weights linked, not copied',
    );
  });
});
