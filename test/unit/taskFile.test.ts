/** Task files: header, samples, the errors with line numbers, token checks on stories260k, writing, splits. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LrpLensError } from '../../src/engine/errors';
import { loadTokenizer, resolveModel } from '../../src/engine/runtime/model';
import type { TokenizerLike } from '../../src/engine/runtime/model';
import {
  formatTaskFile,
  isTaskFile,
  parseTaskFile,
  readTaskFile,
  singleTokenId,
  splitByTemplate,
  splitTask,
  tokenizeTask,
  writeTaskFile,
} from '../../src/engine/tasks/taskFile';
import { STORIES, requireShared } from '../support/sharedFolder';

const isBad = (re: RegExp) => (e: unknown) => LrpLensError.is(e, 'bad-argument') && re.test(e.message);
const HEADER = '{"task": {"name": "pronoun", "metric": "logit_diff", "kind": "pronoun"}}';
const BOY = '{"prompt": "Once upon a time, there was a little boy named Tom. One day,", "target": " he", "foil": " she"}';
const GIRL =
  '{"prompt": "Once upon a time, there was a little girl named Lily. One day,", "target": " she", "foil": " he", "meta": {"gender": "girl"}}';

describe('task files', () => {
  it('recognises *.task.jsonl', () => {
    assert.ok(isTaskFile('x/pronoun.task.jsonl') && isTaskFile('A.TASK.JSONL') && !isTaskFile('x.prompts.jsonl'));
  });

  it('reads the header and the samples with their lines, skipping blank lines', () => {
    const t = parseTaskFile(`${HEADER}\n${BOY}\n\n${GIRL}\n`);
    assert.deepEqual(t.header, { name: 'pronoun', metric: 'logit_diff', kind: 'pronoun' });
    assert.deepEqual(
      t.samples.map((s) => [s.line, s.target, s.foil]),
      [
        [2, ' he', ' she'],
        [4, ' she', ' he'],
      ],
    );
    assert.deepEqual(t.samples[1].meta, { gender: 'girl' });
    assert.equal(t.samples[0].meta, undefined);
  });

  it('names file and line for bad JSON, missing fields, a bad header, an empty file, no samples', () => {
    assert.throws(
      () => parseTaskFile(`${HEADER}\n${BOY}\n{"prompt": "x",`, 'p.task.jsonl'),
      isBad(/^p\.task\.jsonl:3: not valid JSON \(.+\)/),
    );
    assert.throws(
      () => parseTaskFile(`${HEADER}\n{"target": " he", "foil": " she"}`, 'p.task.jsonl'),
      isBad(/^p\.task\.jsonl:2: each sample needs a non-empty "prompt"/),
    );
    assert.throws(() => parseTaskFile(`${HEADER}\n{"prompt": "hi", "foil": " she"}`), isBad(/:2: each sample needs a non-empty "target"/));
    assert.throws(
      () => parseTaskFile(`${HEADER}\n{"prompt": "hi", "target": " he", "foi": " she"}`),
      isBad(/:2: unknown key "foi"; a sample takes prompt, target, foil, meta/),
    );
    assert.throws(() => parseTaskFile(`${HEADER}\n{"prompt": "hi", "target": " he", "foil": " he"}`), isBad(/:2: "foil" equals "target"/));
    assert.throws(() => parseTaskFile(`${HEADER}\n[1, 2]`), isBad(/:2: expected a JSON object/));
    assert.throws(
      () => parseTaskFile(`{"task": {"name": "x", "metric": "prob"}, "prompt": "a"}\n${BOY}`),
      isBad(/:1: the first line must be the task header/),
    );
    assert.throws(
      () => parseTaskFile(`{"task": {"name": "x", "metric": "f1"}}\n${BOY}`),
      isBad(/:1: "metric" must be one of logit_diff, accuracy, prob \(got "f1"\)/),
    );
    assert.throws(() => parseTaskFile(`{"task": {"metric": "prob"}}\n${BOY}`), isBad(/:1: the header needs a non-empty "name"/));
    assert.throws(() => parseTaskFile(`${HEADER}\n${BOY}\n${HEADER}`), isBad(/:3: a second task header/));
    assert.throws(
      () => parseTaskFile('\n \n', 'e.task.jsonl'),
      isBad(/^e\.task\.jsonl is empty; write one \{"prompt", "target", "foil"\} object per line/),
    );
    assert.throws(() => parseTaskFile(`${HEADER}\n`, 'h.task.jsonl'), isBad(/^h\.task\.jsonl has a header but no samples/));
  });

  it('accepts a file without a header: the metric from its lines, the name from the file', () => {
    const noFoil = '{"prompt": "Once upon a time", "target": ","}';
    const withFoils = parseTaskFile(`${BOY}\n\n${GIRL}\n`, 'dir/jake.prompts.jsonl');
    assert.deepEqual(withFoils.header, { name: 'jake', metric: 'logit_diff' });
    assert.deepEqual(
      withFoils.samples.map((s) => s.line),
      [1, 3],
    );
    assert.deepEqual(parseTaskFile(`${noFoil}\n${noFoil}`, 'x/story.task.jsonl').header, { name: 'story', metric: 'prob' });
    assert.throws(
      () => parseTaskFile(`${BOY}\n${noFoil}`, 'mixed.jsonl'),
      isBad(/^mixed\.jsonl:2: this sample has no "foil" but line 1 has one.*write a header line/),
    );
    assert.throws(() => parseTaskFile(`${BOY}\n{"prompt": "x",`, 'b.jsonl'), isBad(/^b\.jsonl:2: not valid JSON/));
  });

  it('requires a foil for logit_diff and accuracy, not for prob', () => {
    const noFoil = '{"prompt": "Once upon a time", "target": ","}';
    for (const metric of ['logit_diff', 'accuracy']) {
      assert.throws(
        () => parseTaskFile(`{"task": {"name": "t", "metric": "${metric}"}}\n${BOY}\n${noFoil}`, 't.task.jsonl'),
        isBad(new RegExp(`^t\\.task\\.jsonl:3: the metric "${metric}" compares target and foil.*set "metric": "prob"`)),
      );
    }
    assert.equal(parseTaskFile(`{"task": {"name": "t", "metric": "prob"}}\n${noFoil}`).samples[0].foil, undefined);
  });

  it('writes what it reads (header, samples, meta)', () => {
    const text = `${HEADER}\n${BOY}\n${GIRL}\n`;
    const t = parseTaskFile(text);
    const again = parseTaskFile(formatTaskFile(t));
    assert.deepEqual(again, t);
    const path = join(mkdtempSync(join(tmpdir(), 'lrp-task-')), 'p.task.jsonl');
    writeTaskFile(path, t);
    assert.deepEqual(readTaskFile(path), t);
    assert.throws(() => readTaskFile(join(tmpdir(), 'no-such-dir-xyz', 'a.task.jsonl')), isBad(/Cannot read task file/));
  });

  it('splits deterministically by seed, stratified by target, without overlap', () => {
    const samples = Array.from({ length: 20 }, (_, i) => ({ prompt: `p${i}`, target: i % 4 === 0 ? ' she' : ' he', line: i + 2 }));
    const a = splitTask(samples, { seed: 7, heldOut: 0.25 });
    assert.deepEqual(splitTask(samples, { seed: 7, heldOut: 0.25 }), a, 'same seed, same split');
    assert.notDeepEqual(splitTask(samples, { seed: 8, heldOut: 0.25 }).heldOut, a.heldOut, 'another seed, another split');
    assert.equal(a.heldOut.length, 5);
    assert.equal(a.train.length + a.heldOut.length, 20);
    assert.equal(new Set([...a.train, ...a.heldOut].map((s) => s.prompt)).size, 20);
    assert.equal(a.heldOut.filter((s) => s.target === ' she').length, 1, 'held-out keeps the 1:3 proportion of targets');
    assert.ok(
      a.train.every((s, i) => i === 0 || s.line > a.train[i - 1].line),
      'file order kept',
    );
    assert.equal(splitTask(samples.slice(0, 2), { heldOut: 0.01 }).heldOut.length, 1, 'both parts non-empty');
    assert.throws(() => splitTask(samples.slice(0, 1)), isBad(/at least 2 samples/));
    assert.throws(() => splitTask(samples, { heldOut: 1 }), isBad(/strictly between 0 and 1/));
  });

  it('splits by template and name: held-out templates are never seen by discovery, in-template samples have unseen names', () => {
    const names = { ' he': ['Tom', 'Ben', 'Sam', 'Max'], ' she': ['Lily', 'Sue', 'Amy', 'Mia'] };
    const samples = [];
    for (let template = 0; template < 10; template++)
      for (const [target, list] of Object.entries(names))
        for (const name of list)
          samples.push({ prompt: `${template} ${name}`, target, line: samples.length + 1, meta: { template, name } });
    const a = splitByTemplate(samples, { seed: 3, heldOut: 0.3 });
    assert.deepEqual(splitByTemplate(samples, { seed: 3, heldOut: 0.3 }), a, 'seeded');
    assert.equal(a.by, 'template');
    assert.equal(a.heldOutTemplates.length, 3);
    assert.deepEqual(new Set(a.outOfTemplate.map((s) => String(s.meta.template))), new Set(a.heldOutTemplates));
    const trainTemplates = new Set(a.train.map((s) => String(s.meta.template)));
    assert.ok(
      a.heldOutTemplates.every((t) => !trainTemplates.has(t)),
      'no held-out template in discovery',
    );
    assert.deepEqual(a.heldOutNames.length, 2, 'one name of each gender (30% of 4, rounded)');
    assert.ok(
      a.train.every((s) => !a.heldOutNames.includes(s.meta.name)),
      'no held-out name in discovery',
    );
    assert.ok(a.inTemplate.every((s) => a.heldOutNames.includes(s.meta.name) && trainTemplates.has(String(s.meta.template))));
    assert.equal(a.train.length + a.inTemplate.length + a.outOfTemplate.length, samples.length);
    const plain = splitByTemplate(
      samples.map(({ meta: _meta, ...s }) => s),
      { seed: 3 },
    );
    assert.equal(plain.by, 'sample', 'no templates: split by sample');
    assert.equal(plain.outOfTemplate.length, 0);
    assert.equal(plain.inTemplate.length, 24);
  });
});

describe('task files on the stories260k tokenizer', function () {
  let tok: TokenizerLike;
  before(async function () {
    requireShared(this);
    tok = await loadTokenizer(await resolveModel(STORIES, { offline: true }));
  });

  it('resolves " he" / " she" as one token after the prompt (SentencePiece splits them when alone)', () => {
    const [boy] = tokenizeTask(parseTaskFile(`${HEADER}\n${BOY}`), tok);
    assert.equal(tok.decode([boy.targetId]), 'he');
    assert.equal(tok.decode([boy.foilId!]), 'she');
    assert.deepEqual(boy.promptIds, tok.encode(JSON.parse(BOY).prompt));
    assert.ok(tok.encode(' he', { add_special_tokens: false }).length > 1, 'alone, " he" is more than one token');
    assert.equal(singleTokenId(tok, 'Once upon a time, there was a little girl named', ' Lily'), 317);
    assert.equal(singleTokenId(tok, 'Once upon a time, there was a little girl named', ' Sue'), undefined);
  });

  it('refuses a target that is not one token, showing its pieces and the fix', () => {
    const text = `${HEADER}\n${BOY}\n{"prompt": "When Tom and Ben went to the park, Ben gave a ball to", "target": " Mary", "foil": " Tom"}`;
    assert.throws(
      () => parseTaskFile(text, 'ioi.task.jsonl', tok),
      isBad(
        /^ioi\.task\.jsonl:3: target " Mary" is not a single token after the prompt: it tokenizes as \[.+\] \(ids [\d, ]+\); use one token, e\.g\. its first piece/,
      ),
    );
    const foil = `${HEADER}\n{"prompt": "A boy named Tim. Then", "target": " he", "foil": " Sue"}`;
    assert.throws(() => parseTaskFile(foil, 'f.task.jsonl', tok), isBad(/^f\.task\.jsonl:2: foil " Sue" is not a single token/));
  });
});
