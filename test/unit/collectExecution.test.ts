/**
 * Weight-relevance statistics (pruning, circuits, correction) run either execution: block-wise, each block's
 * weight relevance goes into the running sums as its block finishes; `auto` is the attribution's chooser, the
 * run log says which ran and why, and the CLI commands take --execution.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLlamaLike } from '../fixtures/torchExports';
import { BlockwiseRunner, compileBlockwise } from '../../src/engine/runtime/blockwise';
import { causalLmFeeds, seedFeeds } from '../../src/engine/runtime/feeds';
import { Session, tensorNumbers } from '../../src/engine/runtime/session';
import type { HostTensor } from '../../src/engine/runtime/session';
import { collectStatistics } from '../../src/engine/pruning/scores';
import { findLinearWeights } from '../../src/engine/pruning/prunable';
import { readModel } from '../../src/engine/onnx/io';
import { compileModelFile } from '../../src/engine/runtime/compile';
import { RelevanceRunners } from '../../src/engine/runtime/runners';
import type { ExecutionDecision } from '../../src/engine/runtime/execution';
import { setMemoryGuard } from '../../src/engine/memory/memoryGuard';
import { PruningSession } from '../../src/engine/pruning/prune';
import { cliRunner } from '../support/bundledCli';
import { STORIES, requireShared } from '../support/sharedFolder';

const SAMPLES = [
  [1, 403, 407, 261, 378, 247, 260, 306, 5, 181],
  [1, 320, 285, 450, 265, 310, 270],
];

describe('weight relevance block-wise', () => {
  it('the runner hands each block’s weight relevance to a sink as that block finishes (deepest first), not at the end', async () => {
    const graph = buildLlamaLike({
      layers: 3,
      hidden: 16,
      heads: 4,
      ffn: 32,
      vocab: 40,
      maxPositions: 32,
      seed: 9,
      kvHeads: 2,
      dtype: 'float32',
    });
    const compiled = await compileBlockwise(graph, { mode: 'attnlrp', weightRelevance: true });
    if (!compiled.ok) throw new Error(compiled.reason);
    const runner = await BlockwiseRunner.create(compiled);
    const ids = [5, 17, 3, 26, 11, 38, 2, 9];
    const feeds = {
      ...causalLmFeeds(compiled.info.inputs, { ids: [ids], mask: [ids.map(() => 1)] }),
      ...seedFeeds('float32', [1, ids.length], { targetIds: ids.map((t) => t), targetWeights: ids.map(() => 1) }),
    };
    const run = Session.prototype.run;
    let graphsRun = 0;
    Session.prototype.run = function (this: Session, ...args: Parameters<Session['run']>) {
      graphsRun++;
      return run.apply(this, args);
    };
    try {
      const whole = await runner.run(feeds);
      const graphsPerRun = graphsRun;
      graphsRun = 0;
      const taken: { name: string; at: number; value: HostTensor }[] = [];
      const isWeight = (n: string) => n.startsWith('lrp_weight/model.layers.');
      const rest = await runner.run(feeds, { takes: isWeight, take: (name, value) => taken.push({ name, at: graphsRun, value }) });
      const layerOf = (n: string) => Number(/layers\.(\d+)\./.exec(n)![1]);
      assert.equal(taken.length, 3 * 7, 'every block weight, once');
      assert.deepEqual(
        taken.map((t) => layerOf(t.name)),
        [...taken.map((t) => layerOf(t.name))].sort((a, b) => b - a),
        'deepest block first',
      );
      assert.ok(taken[0].at < graphsPerRun - 2, `the last block's pieces arrive after ${taken[0].at} of ${graphsPerRun} graphs`);
      assert.ok(taken.every((t) => !(t.name in rest)) && 'lrp_tokens' in rest, 'taken outputs leave the result; the rest stay');
      for (const t of taken) assert.deepEqual(tensorNumbers(t.value), tensorNumbers(whole[t.name]), t.name);
    } finally {
      Session.prototype.run = run;
      await runner.release();
    }
  });

  describe('on stories260k', function () {
    let work: string;
    before(function () {
      requireShared(this);
      work = mkdtempSync(join(tmpdir(), 'lrp-collect-'));
    });
    after(() => work && rmSync(work, { recursive: true, force: true }));
    afterEach(() => setMemoryGuard({}));

    const onnx = () => join(STORIES, 'onnx', 'model.onnx');

    it('auto picks block-wise when the monolithic estimate exceeds the limit, says why, and gives the monolithic sums', async () => {
      const weights = findLinearWeights(readModel(onnx()));
      const options = { mode: 'attnlrp' as const, weightRelevance: weights.map((w) => w.name), weightAggregation: 'absolute' as const };
      const probe = await RelevanceRunners.create({ onnxPath: onnx() }, await compileModelFile(onnx(), options, false), options);
      const { monolithicBytes, blockwiseBytes } = probe.decide(2, 10).estimate;
      await probe.release();
      assert.ok(blockwiseBytes < monolithicBytes);
      setMemoryGuard({ limit: (monolithicBytes + blockwiseBytes) / 2 });
      const decisions: ExecutionDecision[] = [];
      const auto = await collectStatistics(onnx(), weights, 'lrp', SAMPLES, { cache: false, onExecution: (d) => decisions.push(d) });
      setMemoryGuard({});
      assert.deepEqual(
        decisions.map((d) => d.execution),
        ['blockwise'],
      );
      assert.match(decisions[0].reason, /monolithic graph's estimate .* exceeds the limit/);
      const mono = await collectStatistics(onnx(), weights, 'lrp', SAMPLES, { execution: 'monolithic', cache: false });
      for (const w of weights) {
        const [a, e] = [auto.sums.get(w.name)!, mono.sums.get(w.name)!];
        const scale = e.reduce((m, x) => Math.max(m, Math.abs(x)), 1e-30);
        assert.ok(
          a.every((x, i) => Math.abs(x - e[i]) <= 1e-5 * scale),
          w.name,
        );
      }
    });

    it('long windows: a collection batches as many samples as fit the limit, with the same sums', async () => {
      const weights = findLinearWeights(readModel(onnx()));
      const samples = [SAMPLES[0], SAMPLES[0].slice(1), SAMPLES[0].slice(2)];
      const options = { mode: 'attnlrp' as const, weightRelevance: weights.map((w) => w.name), weightAggregation: 'absolute' as const };
      const probe = await RelevanceRunners.create({ onnxPath: onnx() }, await compileModelFile(onnx(), options, false), options);
      const limit = (probe.decide(1, 10).estimate.blockwiseBytes + probe.decide(2, 10).estimate.blockwiseBytes) / 2;
      await probe.release();
      const batches = async (limitBytes?: number) => {
        setMemoryGuard({ limit: limitBytes });
        let total = 0;
        const stats = await collectStatistics(onnx(), weights, 'lrp', samples, { cache: false, onProgress: (_, t) => (total = t) });
        return { total, stats };
      };
      const [small, whole] = [await batches(limit), await batches(undefined)];
      assert.equal(whole.total, 1, 'one batch of 3 where memory allows');
      assert.equal(small.total, 3, 'one sample a batch under the limit');
      for (const w of weights) {
        const [a, e] = [small.stats.sums.get(w.name)!, whole.stats.sums.get(w.name)!];
        const scale = e.reduce((m, x) => Math.max(m, Math.abs(x)), 1e-30);
        assert.ok(
          a.every((x, i) => Math.abs(x - e[i]) <= 1e-5 * scale),
          w.name,
        );
      }
    });

    it('a runner set told the batch it will run starts that execution only (no monolithic session first)', async () => {
      const options = { mode: 'attnlrp' as const };
      const compiled = await compileModelFile(onnx(), options, false);
      const runners = await RelevanceRunners.create({ onnxPath: onnx() }, compiled, options, {
        memoryLimitBytes: 1,
        expect: { batch: 1, seq: 8 },
      }).catch((e: unknown) => e);
      assert.match(String((runners as Error).message), /needs about/, 'refused before any session starts');
      const created: string[] = [];
      const create = Session.create;
      Session.create = (model, opts) => {
        created.push(typeof model === 'string' ? 'monolithic' : 'segment');
        return create.call(Session, model, opts);
      };
      try {
        const r = await RelevanceRunners.create({ onnxPath: onnx() }, compiled, options, {
          execution: 'blockwise',
          expect: { batch: 1, seq: 8 },
        });
        await r.release();
        assert.ok(created.length > 0 && created.every((c) => c === 'segment'), created.join(', '));
      } finally {
        Session.create = create;
      }
    });

    it('a pruning session that collects block-wise never compiles the monolithic graph (decided from config.json first)', async () => {
      const cache = mkdtempSync(join(tmpdir(), 'lrp-collect-cache-'));
      const previous = process.env.LRP_LENS_CACHE;
      process.env.LRP_LENS_CACHE = cache;
      const session = await PruningSession.open({ model: STORIES, execution: 'blockwise' });
      try {
        const stats = await session.statistics('lrp', SAMPLES);
        assert.equal(stats.samples, 2);
        assert.ok(!existsSync(join(cache, 'compiled')), 'no relevance graph was compiled into the cache');
      } finally {
        await session.close();
        if (previous === undefined) delete process.env.LRP_LENS_CACHE;
        else process.env.LRP_LENS_CACHE = previous;
        rmSync(cache, { recursive: true, force: true });
      }
    });

    it('a pruning session (prune, circuit, correct) collects with the execution it is given and says which', async () => {
      const decisions: ExecutionDecision[] = [];
      const session = await PruningSession.open({ model: STORIES, execution: 'blockwise', onExecution: (d) => decisions.push(d) });
      try {
        const stats = await session.statistics('gradient', SAMPLES);
        assert.equal(stats.samples, 2);
        assert.deepEqual(
          decisions.map((d) => [d.execution, d.reason.split(';')[0]]),
          [['blockwise', 'forced (--execution blockwise)']],
        );
      } finally {
        await session.close();
      }
    });

    it('CLI: prune --execution blockwise collects block-wise and the run log says so; a bad choice is refused', () => {
      const cli = cliRunner(work);
      const ref = join(work, 'reference.txt');
      writeFileSync(ref, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.\n'.repeat(3));
      const args = ['prune', '--model', STORIES, '--method', 'lrp', '--reference', ref, '--samples', '2', '--seq-len', '16'];
      const r = cli(...args, '--execution', 'blockwise', '--stats-out', join(work, 'b.safetensors'));
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /execution: blockwise \(forced \(--execution blockwise\)/);
      const bad = cli(...args, '--execution', 'sideways', '--stats-out', join(work, 'x.safetensors'));
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, /Allowed choices are auto, monolithic, blockwise/);
      for (const command of ['circuit', 'correct', 'compare']) {
        const r = cli(command, '--execution', 'sideways');
        assert.match(
          r.err,
          /option '--execution <how>' argument 'sideways' is invalid\. Allowed choices are auto, monolithic, blockwise/,
          command,
        );
      }
    });
  });
});
