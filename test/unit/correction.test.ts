/**
 * Targeted correction on stories260k: (a) repetition loops in greedy story continuations, (b) the overused name
 * " Lily". Relevance R̄_general − R̄_undesired on the MLP gate/up neurons; general text is the first 6 TinyStories
 * sample stories, perplexity the whole sample. LRP must meet the issue's bars; Wanda-difference is printed.
 * Plus input validation and the CLI's correct → mask + report.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PruningSession } from '../../src/engine/pruning/prune';
import { splitDocuments, tokenStream, windows } from '../../src/engine/eval/textData';
import {
  availableComponents,
  checkGranularity,
  checkTokenizerFit,
  correctionMask,
  differentialScores,
  generalSamples,
  rankComponents,
  readPromptSet,
  undesiredSamples,
  unknownTokenIds,
} from '../../src/engine/correction/correct';
import type { CorrectionMethod, ReferenceSamples, UndesiredPrompt } from '../../src/engine/correction/correct';
import { measureBehaviour } from '../../src/engine/correction/sweep';
import type { BehaviourProbe } from '../../src/engine/correction/sweep';
import type { PrunableWeight } from '../../src/engine/weights/types';
import { cliRunner } from '../support/bundledCli';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const work = mkdtempSync(join(tmpdir(), 'lrp-correct-'));
const cli = cliRunner(work);

const OPENINGS = [
  'Once upon a time, there was a little boy',
  'One day, a cat',
  'Tom and Sam went to the park',
  'The sun was hot. A dog',
  'Once upon a time, there was a big tree',
  'There was a bird',
  'The car was red',
  'Ben had a toy',
  'A frog sat on a log',
  'Max liked to run',
  'The girl had a ball',
  'One day, a dog',
];
const HELD_OUT_OPENINGS = [
  'Once upon a time, there was a small bear',
  'The boy saw a cat',
  'Sue went to the shop',
  'One day, a big fish',
  'A duck lived by the pond',
  'The man had a hat',
  'Once upon a time, there was a red car',
  'The kids played in the park',
];
const GIRLS = [
  'Once upon a time, there was a little girl named',
  'One day, a little girl named',
  'There was a little girl named',
  'In the park, a little girl named',
  'A little girl named',
  'Once there was a happy little girl named',
  'Once upon a time, in a big house, there lived a little girl named',
  'Every day, a little girl named',
];
const HELD_OUT_GIRLS = [
  'Once upon a time, there was a kind little girl named',
  'One sunny day, a little girl named',
  'In a small town, there was a little girl named',
  'Long ago, a little girl named',
  'Once upon a time, a little girl named',
  'At the beach, a little girl named',
];
const COUNT = 5;
const LAYERS = ['gate', 'up'] as const;

describe('targeted correction on stories260k', function () {
  let session: PruningSession;
  let general: ReferenceSamples;
  let evaluation: number[][];
  let densePerplexity: number;

  before(async function () {
    requireShared(this);
    session = await PruningSession.open({ model: STORIES, selection: { kinds: [...LAYERS] } });
    const docs = splitDocuments(readFileSync(TINYSTORIES, 'utf8'));
    general = generalSamples(windows(tokenStream(docs.slice(0, 6), session.tokenizer), 64));
    evaluation = windows(tokenStream(docs, session.tokenizer), 128);
    densePerplexity = (await session.perplexity(evaluation)).perplexity;
  });

  after(async () => {
    await session?.close();
  });

  async function corrected(method: CorrectionMethod, undesired: UndesiredPrompt[], probe: BehaviourProbe) {
    const U = await undesiredSamples(session, undesired);
    const ranked = rankComponents(await differentialScores(session, method, general, U), session.weights, 'neurons');
    const mask = correctionMask(ranked, session.weights, COUNT, 'neurons');
    const behaviour = (await measureBehaviour(session, probe, mask)).value;
    const rise = (await session.perplexity(evaluation, mask)).perplexity / densePerplexity - 1;
    return { behaviour, rise };
  }

  it('(a) repetition: held-out uniqueness rises, perplexity rises < 10% (LRP; Wanda-difference printed)', async () => {
    const probe: BehaviourProbe = { spec: { kind: 'repetition' }, prompts: HELD_OUT_OPENINGS.map((prompt) => ({ prompt })) };
    const dense = (await measureBehaviour(session, probe, undefined)).value;
    assert.ok(dense < 0.7, `dense continuations should loop (uniqueness ${dense})`);
    const undesired = OPENINGS.map((prompt) => ({ prompt }));
    const lrp = await corrected('lrp', undesired, probe);
    const wanda = await corrected('wanda', undesired, probe);
    console.log(
      `      repetition, ${COUNT} gate/up neurons: uniqueness dense ${dense.toFixed(3)} → LRP ${lrp.behaviour.toFixed(3)} (perplexity ${pct(lrp.rise)}), Wanda-diff ${wanda.behaviour.toFixed(3)} (perplexity ${pct(wanda.rise)}); dense perplexity ${densePerplexity.toFixed(3)}`,
    );
    assert.ok(lrp.behaviour > dense + 0.05, `uniqueness ${dense} → ${lrp.behaviour}`);
    assert.ok(lrp.rise < 0.1, `perplexity rose ${pct(lrp.rise)}`);
  });

  it('(b) overused " Lily": held-out probability at least halves, perplexity rises < 10% (LRP; Wanda-difference printed)', async () => {
    const probe: BehaviourProbe = { spec: { kind: 'word-rate' }, prompts: HELD_OUT_GIRLS.map((prompt) => ({ prompt })), words: ['Lily'] };
    const dense = (await measureBehaviour(session, probe, undefined)).value;
    assert.ok(dense > 0.5, `the model should favour Lily (p ${dense})`);
    const undesired = GIRLS.map((prompt) => ({ prompt, continuation: ' Lily' }));
    const lrp = await corrected('lrp', undesired, probe);
    const wanda = await corrected('wanda', undesired, probe);
    console.log(
      `      Lily, ${COUNT} gate/up neurons: p(" Lily") dense ${dense.toFixed(3)} → LRP ${lrp.behaviour.toFixed(3)} (perplexity ${pct(lrp.rise)}), Wanda-diff ${wanda.behaviour.toFixed(3)} (perplexity ${pct(wanda.rise)})`,
    );
    assert.ok(lrp.behaviour <= dense / 2, `p(Lily) ${dense} → ${lrp.behaviour}`);
    assert.ok(lrp.rise < 0.1, `perplexity rose ${pct(lrp.rise)}`);
  });

  it('(c) untargeted word-rate:Lily on three "girl named" prompts halves p(" Lily") on other ones, perplexity < +10%', async () => {
    const probe: BehaviourProbe = { spec: { kind: 'word-rate' }, prompts: HELD_OUT_GIRLS.map((prompt) => ({ prompt })), words: ['Lily'] };
    const dense = (await measureBehaviour(session, probe, undefined)).value;
    const undesired = GIRLS.slice(0, 3).map((prompt) => ({ prompt }));
    const U = await undesiredSamples(session, undesired, 50, { spec: { kind: 'word-rate', words: ['Lily'] }, words: ['Lily'] });
    for (const [i, seeds] of U.seeds!.entries())
      for (const s of [seeds].flat())
        assert.equal(session.tokenizer.decode([U.samples[i][s.position + 1]]), 'Lily', 'seeded where Lily is produced');
    const ranked = rankComponents(await differentialScores(session, 'lrp', general, U), session.weights, 'neurons');
    const mask = correctionMask(ranked, session.weights, COUNT, 'neurons');
    const after = (await measureBehaviour(session, probe, mask)).value;
    const rise = (await session.perplexity(evaluation, mask)).perplexity / densePerplexity - 1;
    console.log(
      `      untargeted Lily, ${COUNT} gate/up neurons, ${U.positions} seeded positions: p(" Lily") ${dense.toFixed(3)} → ${after.toFixed(3)}, perplexity ${pct(rise)}`,
    );
    assert.ok(after <= dense / 2, `p(Lily) ${dense} → ${after}`);
    assert.ok(rise < 0.1, `perplexity rose ${pct(rise)}`);
  });

  it('seeds the undesired set at its continuation tokens only', async () => {
    const U = await undesiredSamples(session, [{ prompt: GIRLS[0], continuation: ' Lily' }, { prompt: OPENINGS[0] }], 7);
    const promptLength = session.tokenizer.encode(GIRLS[0]).length;
    assert.deepEqual(U.seeds![0], [{ position: promptLength - 1, target: U.samples[0][promptLength] }]);
    assert.equal(session.tokenizer.decode([U.samples[0][promptLength]]).trim(), 'Lily');
    assert.equal(U.seeds![1].length, 7);
    assert.equal(U.positions, 8);
  });

  it('several seeds in one sample sum the relevance of each (signed LRP is linear in the seed)', async () => {
    const ids = session.tokenizer.encode('Tom had a red ball. He liked it.');
    const seeds = [2, 5].map((t) => ({ position: t, target: ids[t + 1] }));
    const both = await session.statistics('lrp', [ids], { aggregation: 'signed', seeds: [seeds] });
    const a = await session.statistics('lrp', [ids], { aggregation: 'signed', seeds: [seeds[0]] });
    const b = await session.statistics('lrp', [ids], { aggregation: 'signed', seeds: [seeds[1]] });
    const name = session.weights[0].name;
    const [s, x, y] = [both, a, b].map((st) => st.sums.get(name)!);
    const err = s.reduce((m, v, i) => Math.max(m, Math.abs(v - x[i] - y[i])), 0);
    const scale = s.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(err <= 1e-3 * scale, `max error ${err} vs scale ${scale}`);
  });

  it('refuses sets from another tokenizer, too large counts, and heads without output projections', () => {
    const unknown = unknownTokenIds(join(STORIES));
    assert.ok(unknown.size > 200, 'unk and byte-fallback tokens');
    const foreign = ['Жила-была маленькая девочка по имени Маша.', '从前有一个小女孩。'].map((t) => session.tokenizer.encode(t));
    assert.throws(
      () => checkTokenizerFit(foreign, unknown, 'undesired', 'ru.txt'),
      /undesired set ru\.txt is \d+% tokens this model's tokenizer does not know.*another model/,
    );
    checkTokenizerFit(general.samples, unknown, 'general', 'tinystories');
    const ranked = rankComponents(
      new Map(session.weights.map((w) => [w.name, new Float32Array(w.dims[0] * w.dims[1])])),
      session.weights,
      'neurons',
    );
    assert.equal(ranked.length, 5 * 2 * 172);
    assert.throws(
      () => correctionMask(ranked, session.weights, 5000, 'neurons'),
      /Cannot prune 5000 neurons: the selected layers have only 1720\. Lower --count/,
    );
    assert.throws(() => rankComponents(new Map(), session.weights, 'heads', 8), /none is selected\. Include o in --layers/);
    assert.throws(() => checkGranularity('blocks'), /Unknown granularity 'blocks'\. Use neurons, weights or heads/);
  });

  it('heads: ranked by the score through their slice of the output projection, pruned by zeroing it', () => {
    const o: PrunableWeight = { name: 'o', dims: [4, 3], outAxis: 1, layer: 0, kind: 'o' }; // [in = 2 heads × 2, out = 3]
    const scores = new Map([['o', Float32Array.from([5, 5, 5, 5, 5, 5, 1, 1, 1, 1, 1, 1])]]);
    const ranked = rankComponents(scores, [o], 'heads', 2);
    assert.deepEqual(
      ranked.map((c) => [c.index, c.score]),
      [
        [1, 6],
        [0, 30],
      ],
    );
    assert.deepEqual([...correctionMask(ranked, [o], 1, 'heads', 2).get('o')!.keep], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert.equal(availableComponents([o], 'heads', 2), 2);
  });

  it('refuses empty prompt sets', () => {
    writeFileSync(join(work, 'empty.txt'), '\n\n');
    writeFileSync(join(work, 'empty.prompts.jsonl'), '');
    assert.throws(() => readPromptSet(join(work, 'empty.txt'), 'undesired'), /undesired file .*empty/);
    assert.throws(() => readPromptSet(join(work, 'empty.prompts.jsonl'), 'undesired'), /empty/);
  });

  describe('CLI', () => {
    before(function () {
      writeFileSync(join(work, 'lily.prompts.jsonl'), GIRLS.map((prompt) => JSON.stringify({ prompt, target: ' Lily' })).join('\n'));
      writeFileSync(join(work, 'held.txt'), HELD_OUT_GIRLS.join('\n'));
      writeFileSync(join(work, 'foreign.txt'), 'Жила-была маленькая девочка по имени Маша.\nОна любила играть.\n');
    });

    it('correct --counts writes the chosen mask with the curve, and a lrp-lens/correct@1 report', () => {
      const out = join(work, 'lily-mask');
      const r = cli(
        'correct',
        '--model',
        STORIES,
        '--undesired',
        join(work, 'lily.prompts.jsonl'),
        '--held-out',
        join(work, 'held.txt'),
        '--general',
        TINYSTORIES,
        '--layers',
        'gate,up',
        '--counts',
        '2,5',
        '--metric',
        'word-rate',
        '--out',
        out,
        '--json',
        join(work, 'report.json'),
      );
      assert.equal(r.code, 0, r.err);
      const report = JSON.parse(readFileSync(join(work, 'report.json'), 'utf8'));
      assert.equal(report.schema, 'lrp-lens/correct@1');
      assert.deepEqual(report.metric.words, ['Lily']);
      assert.deepEqual(
        report.points.map((p: { count: number }) => p.count),
        [2, 5],
      );
      assert.equal(report.pruned.length, report.chosen.count);
      assert.ok(report.points.every((p: { behaviour: number }) => p.behaviour < report.dense.behaviour));
      const manifest = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
      assert.equal(manifest.metrics.curve.length, 2);
      assert.equal(manifest.extra.count, report.chosen.count);
      assert.equal(manifest.method, 'correct:lrp');
    });

    it('refuses a --json report that would overwrite the mask manifest, before loading anything', () => {
      const u = join(work, 'u.txt');
      writeFileSync(u, GIRLS.slice(0, 3).join('\n'));
      const r = cli(
        'correct',
        '--model',
        STORIES,
        '--undesired',
        u,
        '--general',
        TINYSTORIES,
        '--out',
        join(work, 'fix.safetensors'),
        '--json',
        join(work, 'fix.json'),
      );
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /--json and --out \(mask manifest\) would both write .*fix\.json/);
      const input = cli(
        'correct',
        '--model',
        STORIES,
        '--undesired',
        u,
        '--general',
        TINYSTORIES,
        '--out',
        join(work, 'fix2'),
        '--json',
        u,
      );
      assert.equal(input.code, 2, input.err);
      assert.match(input.err, /--json would write .*u\.txt, which is the --undesired input/);
    });

    it('exits non-zero with one clear line for a foreign set and for a count too large', () => {
      const base = ['correct', '--model', STORIES, '--general', TINYSTORIES, '--out', join(work, 'x')];
      const foreign = cli(...base, '--undesired', join(work, 'foreign.txt'), '--count', '5');
      assert.notEqual(foreign.code, 0);
      assert.match(foreign.err, /tokens this model's tokenizer does not know/);
      const big = cli(...base, '--undesired', join(work, 'held.txt'), '--layers', 'up:0-1', '--count', '400');
      assert.notEqual(big.code, 0);
      assert.match(big.err, /Cannot prune 400 neurons: the selected layers have only 344/);
    });
  });
});

function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
}
