/** Task generators: seeded, distinct, well-formed; and stories260k really does the generated pronoun task. */
import assert from 'node:assert/strict';
import { LrpLensError } from '../../src/engine/errors';
import { readModel } from '../../src/engine/onnx/io';
import { leftPad } from '../../src/engine/runtime/feeds';
import { loadTokenizer, resolveModel } from '../../src/engine/runtime/model';
import type { TokenizerLike } from '../../src/engine/runtime/model';
import { generateTask, ioiTask, PRONOUN_TEMPLATES, pronounTask } from '../../src/engine/tasks/generators';
import { finalRows, taskMetric } from '../../src/engine/tasks/metrics';
import { formatTaskFile, parseTaskFile, tokenizeTask } from '../../src/engine/tasks/taskFile';
import type { TaskFile, TokenizedSample } from '../../src/engine/tasks/taskFile';
import { forward } from '../support/relevanceHarness';
import { STORIES, requireShared } from '../support/sharedFolder';

const isBad = (re: RegExp) => (e: unknown) => LrpLensError.is(e, 'bad-argument') && re.test(e.message);

describe('task generators', () => {
  it('are deterministic per seed and write valid task files', () => {
    for (const kind of ['pronoun', 'ioi'] as const) {
      const a = generateTask(kind, { n: 40, seed: 3 });
      assert.deepEqual(generateTask(kind, { n: 40, seed: 3 }), a);
      assert.notDeepEqual(generateTask(kind, { n: 40, seed: 4 }).samples, a.samples);
      assert.deepEqual(parseTaskFile(formatTaskFile(a)), a, `${kind}: the written file parses back to the same task, lines included`);
      assert.equal(new Set(a.samples.map((s) => s.prompt)).size, 40, 'prompts are distinct');
      assert.equal(a.header.kind, kind);
    }
  });

  it('pronoun: balanced, the target agrees with the child, the foil is the other pronoun', () => {
    const t = pronounTask({ n: 30, seed: 1 });
    console.log(
      `      e.g. ${JSON.stringify(t.samples[0].prompt)} → ${JSON.stringify(t.samples[0].target)} (foil ${JSON.stringify(t.samples[0].foil)})`,
    );
    assert.equal(t.samples.filter((s) => s.target === ' she').length, 15);
    for (const s of t.samples) {
      const girl = s.meta?.gender === 'girl';
      assert.equal(s.target, girl ? ' she' : ' he');
      assert.equal(s.foil, girl ? ' he' : ' she');
      assert.ok(s.prompt.includes(String(s.meta?.name)) && new RegExp(girl ? '\\b(girl|her)\\b' : '\\b(boy|his)\\b').test(s.prompt));
    }
  });

  it('ioi: the target is the name that does not repeat, the foil the one that does, both orders', () => {
    const t = ioiTask({ n: 50, seed: 2 });
    console.log(
      `      e.g. ${JSON.stringify(t.samples[0].prompt)} → ${JSON.stringify(t.samples[0].target)} (foil ${JSON.stringify(t.samples[0].foil)})`,
    );
    for (const s of t.samples) {
      const io = s.target.trim();
      const subject = s.foil!.trim();
      assert.notEqual(io, subject);
      const count = (name: string) => s.prompt.split(/\W+/).filter((w) => w === name).length;
      assert.equal(count(io), 1, s.prompt);
      assert.equal(count(subject), 2, s.prompt);
    }
    assert.deepEqual(new Set(t.samples.map((s) => s.meta?.order)), new Set(['ABBA', 'BABA']));
  });

  it('draws 640 samples by default: the whole pronoun space (20 templates × 32 names), as many for IOI', () => {
    const pronoun = pronounTask({ seed: 2 });
    assert.equal(pronoun.samples.length, 640);
    assert.equal(new Set(pronoun.samples.map((s) => s.prompt)).size, 640, 'every distinct prompt once');
    assert.equal(new Set(pronoun.samples.map((s) => s.meta?.template)).size, 20);
    assert.equal(generateTask('ioi', { seed: 2 }).samples.length, 640);
  });

  it('refuses impossible requests', () => {
    assert.throws(() => pronounTask({ n: 0 }), isBad(/positive integer/));
    assert.throws(() => pronounTask({ n: 1000 }), isBad(/only 640 distinct samples/));
    assert.throws(() => generateTask('nope' as 'ioi', { n: 3 }), isBad(/Unknown task kind 'nope'; use one of ioi, pronoun/));
  });
});

describe('task generators on stories260k', function () {
  let tok: TokenizerLike;
  before(async function () {
    requireShared(this);
    tok = await loadTokenizer(await resolveModel(STORIES, { offline: true }));
  });

  async function evaluate(task: TaskFile): Promise<{ samples: TokenizedSample[]; diffs: number[]; accuracy: number; meanDiff: number }> {
    const samples = tokenizeTask(task, tok);
    const out = await forward(
      readModel(`${STORIES}/onnx/model.onnx`),
      leftPad(
        samples.map((s) => s.promptIds),
        0,
      ),
    );
    const rows = finalRows(Float32Array.from(out.data), out.dims);
    const diff = taskMetric('logit_diff', rows, samples);
    return { samples, diffs: diff.perSample, accuracy: taskMetric('accuracy', rows, samples).mean, meanDiff: diff.mean };
  }

  it('the pronoun targets " he" and " she" are single tokens of its tokenizer', () => {
    const samples = tokenizeTask(pronounTask({ n: 120, seed: 0, tokenizer: tok }), tok);
    assert.deepEqual(new Set(samples.map((s) => tok.decode([s.targetId]))), new Set(['he', 'she']));
  });

  it('the model ranks the agreeing pronoun above the other on generated samples, every template', async () => {
    const task = pronounTask({ n: 120, seed: 0, tokenizer: tok });
    const r = await evaluate(task);
    const byGender = (g: string) => r.diffs.filter((_, i) => r.samples[i].meta?.gender === g);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `      pronoun, all 120 samples: accuracy ${r.accuracy.toFixed(3)}, mean logit diff ${r.meanDiff.toFixed(2)} (boys ${mean(byGender('boy')).toFixed(2)}, girls ${mean(byGender('girl')).toFixed(2)})`,
    );
    PRONOUN_TEMPLATES.forEach((t, k) => {
      const d = r.diffs.filter((_, i) => r.samples[i].meta?.template === k);
      const acc = d.filter((x) => x > 0).length / d.length;
      console.log(`        template ${k}: accuracy ${acc.toFixed(2)}, mean diff ${mean(d).toFixed(2)}  ${JSON.stringify(t)}`);
      assert.ok(acc >= 0.8, `template ${k} accuracy ${acc}`);
    });
    assert.ok(r.accuracy >= 0.9, `accuracy ${r.accuracy}`);
    assert.ok(mean(byGender('boy')) > 0 && mean(byGender('girl')) > 0, 'both genders right on average');
  });

  it('ioi with the tokenizer uses single-token names only, and stories260k is near chance on it (accuracy in [0.2, 0.8])', async () => {
    const task = ioiTask({ n: 60, seed: 0, tokenizer: tok });
    const names = new Set(task.samples.flatMap((s) => [s.target, s.foil!]));
    assert.doesNotThrow(() => tokenizeTask(task, tok));
    assert.ok(!names.has(' Mary') && names.size >= 2, 'multi-token names (" Mary" is 3 tokens here) are left out');
    const r = await evaluate(task);
    console.log(`      ioi names ${[...names].join(',')}: accuracy ${r.accuracy.toFixed(3)}, mean logit diff ${r.meanDiff.toFixed(2)}`);
    assert.equal(r.accuracy, r.diffs.filter((d) => d > 0).length / r.diffs.length, 'accuracy = fraction of samples with target above foil');
    // Why the circuit docs and tests use the pronoun task: this 260k-parameter model does not do IOI (it does the pronoun task at 1.0).
    assert.ok(r.accuracy >= 0.2 && r.accuracy <= 0.8, `ioi accuracy ${r.accuracy} is not near chance`);
  });
});
