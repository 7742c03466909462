/**
 * The engine process's `circuit` method end to end through EngineClient (dist/worker.js, so build first): the
 * pronoun task generated for stories260k (120 samples, seed 1), heads granularity, LRP compared with Wanda.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EngineClient, EngineError } from '../../src/worker/client';
import type { ProgressNotification } from '../../src/worker/protocol';
import type { CircuitRecord } from '../../src/engine/circuits/discover';
import { generateTask } from '../../src/engine/tasks/generators';
import { writeTaskFile } from '../../src/engine/tasks/taskFile';
import { loadTokenizer, resolveModel } from '../../src/engine/runtime/model';
import { MASK_FORMAT } from '../../src/engine/pruning/maskBits';
import { STORIES, requireShared } from '../support/sharedFolder';

const WORKER = resolve(__dirname, '..', '..', 'dist', 'worker.js');
const work = mkdtempSync(join(tmpdir(), 'lrp-circuit-worker-'));
const env = { ...process.env, LRP_LENS_CACHE: join(work, 'cache'), LRP_LENS_OFFLINE: '1' };

describe('worker: circuit (stories260k, pronoun task, heads)', function () {
  let client: EngineClient;
  let taskPath: string;

  before(async function () {
    requireShared(this);
    assert.ok(existsSync(WORKER), `${WORKER} is missing: run \`node esbuild.mjs\` first`);
    const tokenizer = await loadTokenizer(await resolveModel(STORIES));
    taskPath = join(work, 'pronoun.task.jsonl');
    writeTaskFile(taskPath, generateTask('pronoun', { n: 120, seed: 1, tokenizer }));
    client = new EngineClient({ workerPath: WORKER, env });
  });

  after(() => client?.dispose());

  it('writes circuit.json, circuit.svg and the mask, reports progress by stage, returns the record', async () => {
    const out = join(work, 'circuits', 'pronoun-lrp-heads');
    const progress: ProgressNotification['params'][] = [];
    const record: CircuitRecord = await client.request(
      'circuit',
      {
        model: STORIES,
        task: taskPath,
        method: 'lrp',
        compare: ['wanda'],
        granularity: 'heads',
        ranking: 'global',
        threshold: 0.9,
        seed: 1,
        out,
        offline: true,
      },
      { onProgress: (p) => progress.push(p) },
    );
    for (const f of ['circuit.json', 'circuit.svg', 'mask.safetensors', 'mask.json']) assert.ok(existsSync(join(out, f)), `${f} written`);
    const onDisk = JSON.parse(readFileSync(join(out, 'circuit.json'), 'utf8')) as CircuitRecord;
    assert.deepEqual(onDisk, JSON.parse(JSON.stringify(record)));
    assert.equal(record.schema, 'lrp-lens/circuit@1');
    assert.equal(record.granularity, 'heads');
    assert.equal(record.task.train + record.task.heldOut + (record.task.split?.inTemplate ?? 0), 120);
    assert.deepEqual(
      record.curves.map((c) => c.method),
      ['lrp', 'wanda'],
    );
    assert.ok(record.circuit.retained >= 0.9, `retained ${record.circuit.retained}`);
    assert.ok(record.circuit.sparsity > 0, `sparsity ${record.circuit.sparsity}`);
    assert.equal(record.samples.length, record.task.heldOut);
    assert.ok(record.samples.every((s) => typeof s.prompt === 'string' && Number.isFinite(s.dense) && Number.isFinite(s.circuit)));
    const meanCircuit = record.samples.reduce((a, s) => a + s.circuit, 0) / record.samples.length;
    assert.ok(
      Math.abs(meanCircuit - record.circuit.metric) < 1e-3,
      `per-sample circuit metrics average to the circuit metric (${meanCircuit} vs ${record.circuit.metric})`,
    );
    assert.ok((record.graph.nodes as unknown[]).length > 0, 'graph has nodes');
    const manifest = JSON.parse(readFileSync(join(out, 'mask.json'), 'utf8')) as { format: string; method: string };
    assert.equal(manifest.format, MASK_FORMAT);
    assert.equal(manifest.method, 'circuit:lrp');
    const stages = new Set(progress.map((p) => p.stage));
    for (const s of ['load', 'collect', 'sweep', 'write'])
      assert.ok(stages.has(s as never), `stage ${s} reported (got ${[...stages].join(', ')})`);
    const sweep = progress.filter((p) => p.stage === 'sweep');
    assert.equal(sweep.at(-1)!.done, sweep.at(-1)!.total, 'the sweep reaches its total');
    assert.equal(sweep.at(-1)!.total, 42, '(17 sparsities + 4 bisection steps) × 2 methods');
    console.log(
      `      LRP heads circuit: ${(record.circuit.sparsity * 100).toFixed(1)}% of heads pruned, ${(record.circuit.retained * 100).toFixed(1)}% kept; Wanda: ${record.curves[1].chosen ? `${(record.curves[1].chosen.achieved * 100).toFixed(1)}%` : 'none'}; ${progress.length} progress messages`,
    );
  });

  it('a bad task file is refused with its line number, and cancelling stops the run', async () => {
    const bad = join(work, 'bad.task.jsonl');
    writeFileSync(bad, '{"task": {"name": "t", "metric": "logit_diff"}}\n{"prompt": "a", \n');
    const err = await client
      .request('circuit', {
        model: STORIES,
        task: bad,
        method: 'lrp',
        granularity: 'heads',
        ranking: 'global',
        threshold: 0.9,
        out: join(work, 'bad'),
        offline: true,
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof EngineError);
    assert.equal(err.reason, 'bad-argument');
    assert.match(err.message, /bad\.task\.jsonl:2/);
    const abort = new AbortController();
    const run = client.request(
      'circuit',
      {
        model: STORIES,
        task: taskPath,
        method: 'lrp',
        granularity: 'heads',
        ranking: 'global',
        threshold: 0.9,
        out: join(work, 'cancelled'),
        offline: true,
      },
      {
        signal: abort.signal,
        onProgress: (p) => p.stage === 'collect' && abort.abort(),
      },
    );
    const cancelled = await run.catch((e: unknown) => e);
    assert.ok(cancelled instanceof EngineError);
    assert.equal(cancelled.reason, 'cancelled');
    assert.ok(!existsSync(join(work, 'cancelled', 'circuit.json')));
  });
});
