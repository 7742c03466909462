/**
 * The worker's `prune`, `correct` and `applyMask` methods end to end: real child processes running the bundled
 * dist/worker.js on stories260k (run `node esbuild.mjs` before mocha alone), through EngineClient, with progress
 * and cancellation.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EngineClient, EngineError } from '../../src/worker/client';
import type { ProgressNotification, PruneParams } from '../../src/worker/protocol';
import { loadMask } from '../../src/engine/pruning/maskFile';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const WORKER = resolve(__dirname, '..', '..', 'dist', 'worker.js');
const GIRLS = [
  'Once upon a time, there was a little girl named',
  'One day, a little girl named',
  'There was a little girl named',
  'A little girl named',
];
const HELD_OUT = ['Once upon a time, there was a kind little girl named', 'One sunny day, a little girl named'];

function steps(): { list: ProgressNotification['params'][]; onProgress: (p: ProgressNotification['params']) => void } {
  const list: ProgressNotification['params'][] = [];
  return { list, onProgress: (p) => list.push(p) };
}

describe('worker prune / correct / applyMask', function () {
  let client: EngineClient;
  let work: string;
  let cache: string;
  let previousCache: string | undefined;

  before(function () {
    requireShared(this);
    assert.ok(existsSync(WORKER), `${WORKER} is missing: run \`node esbuild.mjs\` before mocha`);
    work = mkdtempSync(join(tmpdir(), 'lrp-worker-prune-'));
    cache = mkdtempSync(join(tmpdir(), 'lrp-worker-cache-'));
    const text = readFileSync(TINYSTORIES, 'utf8');
    writeFileSync(join(work, 'reference.txt'), text.slice(0, 4000));
    writeFileSync(join(work, 'eval.txt'), text.slice(-2500));
    writeFileSync(join(work, 'prompts.txt'), 'Once upon a time\nTom and Lily went to the park\n');
    writeFileSync(join(work, 'lily.prompts.jsonl'), GIRLS.map((prompt) => JSON.stringify({ prompt, target: ' Lily' })).join('\n'));
    writeFileSync(join(work, 'held.txt'), HELD_OUT.join('\n'));
    // The worker inherits the environment: keep its pruned-model cache out of the user's.
    previousCache = process.env.LRP_LENS_CACHE;
    process.env.LRP_LENS_CACHE = cache;
  });

  after(() => {
    if (previousCache === undefined) delete process.env.LRP_LENS_CACHE;
    else process.env.LRP_LENS_CACHE = previousCache;
  });

  beforeEach(() => {
    client = new EngineClient({ workerPath: WORKER, log: () => undefined });
  });

  afterEach(() => client.dispose());

  function pruneParams(overrides: Partial<PruneParams> = {}): PruneParams {
    return {
      model: STORIES,
      method: 'lrp',
      sparsity: [0.5],
      reference: join(work, 'reference.txt'),
      samples: 6,
      seqLen: 64,
      eval: join(work, 'eval.txt'),
      evalSeqLen: 64,
      prompts: join(work, 'prompts.txt'),
      generationTokens: 12,
      out: join(work, 'lrp', 'masks', 'lrp-50'),
      ...overrides,
    };
  }

  it('prune returns the lrp-lens/prune@1 report, writes a mask that loads, and reports progress by stage', async () => {
    const progress = steps();
    const r = await client.request('prune', pruneParams(), { onProgress: progress.onProgress });
    assert.equal(r.schema, 'lrp-lens/prune@1');
    assert.equal(r.method, 'lrp');
    assert.equal(r.points.length, 1);
    const p = r.points[0];
    assert.ok(Math.abs(p.achieved - 0.5) < 0.01, `achieved ${p.achieved}`);
    assert.ok(
      Object.values(p.perLayer).every((s) => Math.abs(s - 0.5) < 0.02),
      JSON.stringify(p.perLayer),
    );
    assert.ok(r.dense.perplexity! > 1 && p.perplexity! > r.dense.perplexity!, `dense ${r.dense.perplexity}, pruned ${p.perplexity}`);
    assert.equal(r.dense.generations!.length, 2);
    assert.equal(p.generations!.length, 2);
    assert.deepEqual(r.prompts, ['Once upon a time', 'Tom and Lily went to the park']);
    assert.equal(p.mask, join(work, 'lrp', 'masks', 'lrp-50.safetensors'));
    const loaded = loadMask(p.mask);
    assert.equal(loaded.manifest.method, 'lrp');
    assert.equal(loaded.mask.size, r.weights);
    const stages = new Set(progress.list.map((s) => s.stage));
    for (const s of ['load', 'collect', 'evaluate', 'generate']) assert.ok(stages.has(s), `no ${s} progress in ${[...stages].join(', ')}`);
    const collect = progress.list.filter((s) => s.stage === 'collect');
    assert.equal(collect.at(-1)!.done, collect.at(-1)!.total);
    console.log(
      `      lrp 50%: perplexity ${r.dense.perplexity!.toFixed(3)} → ${p.perplexity!.toFixed(3)}; ${progress.list.length} progress notifications`,
    );
  });

  it('prune refuses a missing reference with the fix named', async () => {
    const err = await client.request('prune', pruneParams({ reference: undefined })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof EngineError);
    assert.equal(err.reason, 'bad-argument');
    assert.match(err.message, /reference/);
  });

  it('prune, circuit and correct honour the memory limit of the request (lrpLens.memoryLimit): refused for memory, with the estimate', async () => {
    const err = await client.request('prune', pruneParams({ memoryLimit: '1MB' })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof EngineError, String(err));
    assert.ok(['insufficient-memory', 'out-of-memory'].includes(err.reason), `${err.reason}: ${err.message}`);
    assert.match(err.message, /1(\.0)? ?MB|limit/i);
    const ok = await client.request('prune', pruneParams({ memoryLimit: '16GB', out: join(work, 'limited', 'lrp-50') }));
    assert.equal(ok.points.length, 1, 'a limit that fits runs');
  });

  it('applyMask exports the pruned model once into the cache and attribute uses it', async () => {
    const r = await client.request(
      'prune',
      pruneParams({ method: 'magnitude', reference: undefined, prompts: undefined, eval: undefined, out: join(work, 'mag-50') }),
    );
    const mask = r.points[0].mask;
    const first = await client.request('applyMask', { model: STORIES, mask, offline: true });
    assert.equal(first.cached, false);
    assert.ok(first.dir.startsWith(join(cache, 'pruned')), first.dir);
    assert.ok(existsSync(join(first.dir, 'onnx', 'model.onnx')));
    assert.ok(Math.abs(first.sparsity - 0.5) < 0.01);
    const again = await client.request('applyMask', { model: STORIES, mask, offline: true });
    assert.equal(again.cached, true);
    assert.equal(again.dir, first.dir);
    const request = { prompt: 'Once upon a time, there was a little girl named', target: ' Lily' };
    const dense = await client.request('attribute', { model: STORIES, rule: 'attnlrp', device: 'cpu', offline: true, request });
    const pruned = await client.request('attribute', { model: STORIES, rule: 'attnlrp', device: 'cpu', offline: true, request, mask });
    assert.equal(pruned.model.ref, first.dir);
    assert.notDeepEqual(pruned.relevance.tokens, dense.relevance.tokens);
  });

  it('correct returns the lrp-lens/correct@1 report with continuations and writes the chosen mask', async () => {
    const progress = steps();
    const r = await client.request(
      'correct',
      {
        model: STORIES,
        undesired: join(work, 'lily.prompts.jsonl'),
        general: TINYSTORIES,
        heldOut: join(work, 'held.txt'),
        layers: 'gate,up',
        counts: [2, 4],
        metric: 'repetition',
        steps: 8,
        samples: 4,
        seqLen: 64,
        out: join(work, 'lrp', 'masks', 'lily'),
      },
      { onProgress: progress.onProgress },
    );
    assert.equal(r.schema, 'lrp-lens/correct@1');
    assert.deepEqual(
      r.points.map((p) => p.count),
      [2, 4],
    );
    assert.equal(r.dense.continuations!.length, HELD_OUT.length);
    assert.equal(r.points[0].continuations!.length, HELD_OUT.length);
    assert.deepEqual(r.prompts, HELD_OUT);
    assert.equal(r.pruned.length, r.chosen.count);
    assert.ok(r.pruned.every((c) => c.layer !== null && c.unit !== undefined));
    assert.deepEqual(r.examples.undesired.prompts, HELD_OUT);
    assert.equal(r.examples.undesired.after.length, HELD_OUT.length);
    assert.equal(r.examples.general.prompts.length, 3);
    assert.ok(r.examples.general.before.every((t) => t.length > 0));
    assert.ok(existsSync(r.chosen.mask));
    assert.equal(loadMask(r.chosen.mask).manifest.method, 'correct:lrp');
    assert.ok(progress.list.some((s) => s.stage === 'collect'));
  });

  it('cancelling a prune kills the worker and rejects with cancelled', async () => {
    const abort = new AbortController();
    const pending = client.request('prune', pruneParams({ out: join(work, 'cancelled'), samples: 40 }), {
      signal: abort.signal,
      onProgress: (p) => {
        if (p.stage === 'collect') abort.abort();
      },
    });
    const err = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof EngineError);
    assert.equal(err.reason, 'cancelled');
    assert.ok(!existsSync(join(work, 'cancelled.safetensors')));
  });
});
