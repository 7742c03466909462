/**
 * Circuit discovery on stories260k's gendered-pronoun task, split by template and name: circuits found on some
 * templates are measured on held-out templates and on hand-written prompts of other templates and names
 * (test/fixtures/pronoun-other-templates.task.jsonl, a task file without a header), and the `circuit` CLI's files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PruningSession } from '../../src/engine/pruning/prune';
import { generateTask } from '../../src/engine/tasks/generators';
import { readTaskFile, tokenizeTask, writeTaskFile } from '../../src/engine/tasks/taskFile';
import { evaluateAccuracy } from '../../src/engine/circuits/search';
import { biasedWeights, pruneDeadWeights } from '../../src/engine/circuits/deadWeights';
import { achievedSparsity, allocateMask } from '../../src/engine/pruning/allocation';
import { discoverCircuit } from '../../src/engine/circuits/discover';
import { cliRunner } from '../support/bundledCli';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const work = mkdtempSync(join(tmpdir(), 'lrp-circuit-'));
const cli = cliRunner(work);

const OTHER_TEMPLATES = join(__dirname, '..', 'fixtures', 'pronoun-other-templates.task.jsonl');

describe('circuit discovery on stories260k (pronoun task, split by template)', function () {
  let session: PruningSession;
  let taskFile: string;

  before(async function () {
    requireShared(this);
    session = await PruningSession.open({ model: STORIES });
    taskFile = join(work, 'pronoun.task.jsonl');
    writeTaskFile(taskFile, generateTask('pronoun', { n: 120, seed: 1, tokenizer: session.tokenizer }));
  });

  after(async () => {
    await session?.close();
  });

  it('the hand-written prompts of other templates and names are a task stories260k does (accuracy well above chance)', async () => {
    const samples = tokenizeTask(readTaskFile(OTHER_TEMPLATES, session.tokenizer), session.tokenizer);
    const acc = await evaluateAccuracy(session, samples);
    assert.ok(!acc.atChance && acc.value >= 0.8, `accuracy ${acc.value}`);
    assert.ok(new Set(samples.map((s) => s.prompt.split(' ')[0])).size > 1);
  });

  it('a neuron circuit found on some templates keeps ≥ 80% of the logit difference on held-out templates (≥ 70% on other prompts)', async () => {
    const record = await discoverCircuit({
      model: STORIES,
      task: taskFile,
      method: 'lrp',
      granularity: 'neurons',
      ranking: 'global',
      threshold: 0.8,
      seed: 1,
      resamples: 10,
      heldOutTask: OTHER_TEMPLATES,
      out: join(work, 'neurons'),
    });
    const f = record.faithfulness!;
    console.log(
      `      neurons: ${(record.circuit.sparsity * 100).toFixed(1)}% pruned; kept in-template ${pct(f.inTemplate!.retained)}, out-of-template ${pct(f.outOfTemplate!.retained)}, other prompts ${pct(f.heldOutTask!.retained)}; stability ${pct(record.stability!.consistent)} consistent`,
    );
    assert.equal(record.task.split?.by, 'template');
    assert.equal(record.samples.length, f.outOfTemplate!.samples, 'the samples listed are the held-out templates');
    assert.ok(record.circuit.sparsity > 0);
    assert.ok(f.inTemplate!.retained >= 0.8 && f.outOfTemplate!.retained >= 0.8, JSON.stringify(f));
    // Chosen on the held-out templates; prompts never used to find or choose it keep less (printed above).
    assert.ok(f.heldOutTask!.retained >= 0.7, JSON.stringify(f.heldOutTask));
    assert.ok(record.stability!.resamples === 10 && record.stability!.kept > 0 && record.stability!.meanFrequency > 0.5);
  });

  it("a weight circuit found on the generator's whole sample space keeps ≥ 80% on held-out templates at ≥ 90% sparsity", async () => {
    // Seed 2: the 17-point grid with dead weights counted as kept found no circuit above 30% here (nor on seed 4).
    const full = join(work, 'pronoun-640.task.jsonl');
    writeTaskFile(full, generateTask('pronoun', { n: 640, seed: 2, tokenizer: session.tokenizer }));
    const record = await discoverCircuit({
      model: STORIES,
      task: full,
      method: 'lrp',
      granularity: 'weights',
      ranking: 'global',
      threshold: 0.8,
      seed: 2,
      resamples: 10,
      heldOutTask: OTHER_TEMPLATES,
      out: join(work, 'weights-640'),
    });
    const f = record.faithfulness!;
    console.log(
      `      weights: ${(record.circuit.sparsity * 100).toFixed(1)}% pruned; kept in-template ${pct(f.inTemplate!.retained)}, out-of-template ${pct(f.outOfTemplate!.retained)}, other prompts ${pct(f.heldOutTask!.retained)}`,
    );
    assert.ok(record.circuit.sparsity >= 0.9, `sparsity ${record.circuit.sparsity}`);
    assert.ok(f.inTemplate!.retained >= 0.8 && f.outOfTemplate!.retained >= 0.8, JSON.stringify(f));
    assert.ok(f.heldOutTask!.retained >= 0.75, JSON.stringify(f.heldOutTask)); // 84% measured (2026-12-03)
  });

  it('pruning the weights a mask leaves dead changes no logit and raises the sparsity; sparser masks stay nested', async () => {
    const scores = session.scores(await session.statistics('magnitude', []));
    const biased = biasedWeights(session.graph, session.weights);
    const mask = allocateMask(scores, session.weights, 0.95, { allocation: 'global' });
    const cleaned = pruneDeadWeights(mask, session.weights, 8, biased);
    const denser = pruneDeadWeights(allocateMask(scores, session.weights, 0.9, { allocation: 'global' }), session.weights, 8, biased);
    for (const [name, m] of cleaned)
      assert.ok(
        m.keep.every((k, i) => k <= denser.get(name)!.keep[i]),
        `${name}: not nested`,
      );
    const before = achievedSparsity(mask, session.weights).overall;
    const after = achievedSparsity(cleaned, session.weights).overall;
    assert.ok(after > before + 0.005, `${before} → ${after}`);
    const prompts = ['Once upon a time, there was a little girl named Lily. One day,', 'Tom was a brave boy. Then'].map((p) =>
      session.tokenizer.encode(p),
    );
    session.forward.setMask(mask);
    const a = await session.forward.lastLogits(prompts);
    session.forward.setMask(cleaned);
    const b = await session.forward.lastLogits(prompts);
    for (let i = 0; i < a.length; i++)
      for (let j = 0; j < a[i].length; j++) assert.ok(Math.abs(a[i][j] - b[i][j]) < 1e-4, `logit ${i},${j}`);
  });

  it('CLI: task make + circuit (weights) report in- and out-of-template faithfulness side by side, and a loadable mask', () => {
    const made = join(work, 'made.task.jsonl');
    const make = cli('task', 'make', '--kind', 'pronoun', '--n', '120', '--seed', '1', '--model', STORIES, '--out', made);
    assert.equal(make.code, 0, make.err);
    const out = join(work, 'circuit');
    const r = cli(
      'circuit',
      '--model',
      STORIES,
      '--task',
      made,
      '--granularity',
      'weights',
      '--threshold',
      '0.8',
      '--seed',
      '1',
      '--resamples',
      '10',
      '--held-out-task',
      OTHER_TEMPLATES,
      '--general',
      TINYSTORIES,
      '--out',
      out,
    );
    assert.equal(r.code, 0, r.err);
    console.log(r.out.replace(/^/gm, '      '));
    assert.match(r.out, /\| method \| circuit sparsity \| in-template kept \| out-of-template kept \|/);
    const record = JSON.parse(readFileSync(join(out, 'circuit.json'), 'utf8'));
    assert.equal(record.schema, 'lrp-lens/circuit@1');
    const f = record.faithfulness;
    assert.ok(f.inTemplate.retained >= 0.8 && f.outOfTemplate.retained >= 0.8, JSON.stringify(f));
    assert.ok(f.heldOutTask.retained >= 0.8 && f.heldOutTask.samples === 60, JSON.stringify(f.heldOutTask));
    assert.ok(record.curves[0].points.every((p: { inTemplateRetained?: number }) => typeof p.inTemplateRetained === 'number'));
    assert.ok(record.graph.nodes.length > 0 && record.graph.edges.length <= 50);
    assert.match(readFileSync(join(out, 'circuit.svg'), 'utf8'), /^<svg/);
    const ev = cli('task', 'eval', '--model', STORIES, '--task', OTHER_TEMPLATES, '--mask', join(out, 'mask.json'), '--json', '-');
    assert.equal(ev.code, 0, ev.err);
    const evaluated = JSON.parse(ev.out);
    assert.ok(evaluated.mean > 0 && evaluated.accuracy.kind === 'target-above-foil', 'the circuit still does the task on other prompts');
    assert.ok(existsSync(join(out, 'mask.safetensors')));
  });

  it('CLI: a circuit whose --json would overwrite its own mask manifest is refused before anything runs', () => {
    const out = join(work, 'clash');
    const r = cli('circuit', '--model', STORIES, '--task', taskFile, '--out', out, '--json', join(out, 'mask.json'));
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--json and --out \(mask manifest\) would both write .*mask\.json/);
    assert.ok(!existsSync(out), 'nothing written');
  });

  it('CLI: a task file with a bad line is reported with its line number', () => {
    const bad = join(work, 'bad.task.jsonl');
    writeFileSync(bad, '{"task":{"name":"t","metric":"logit_diff"}}\n{"prompt":"a","target":" he","foil":" she"}\n{oops\n');
    const r = cli('task', 'eval', '--model', STORIES, '--task', bad);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad\.task\.jsonl:3: not valid JSON/);
  });
});

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
