/** `lrp-lens` end to end (the bundled dist/cli.js, as users run it) on stories260k. */
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { ATTRIBUTION_SCHEMA } from '../../src/engine/attribution/result';
import type { AttributionResult } from '../../src/engine/attribution/result';
import { readModel, writeModel } from '../../src/engine/onnx/io';
import { Session } from '../../src/engine/runtime/session';
import { CLI, cliRunner } from '../support/bundledCli';
import { STORIES, requireShared } from '../support/sharedFolder';

const work = mkdtempSync(join(tmpdir(), 'lrp-cli-'));
const cli = cliRunner(work);

/** A copy of stories260k with its ONNX file replaced. */
function modelCopy(name: string, onnx?: (path: string) => void): string {
  const dir = join(work, name);
  cpSync(STORIES, dir, { recursive: true });
  if (onnx) onnx(join(dir, 'onnx', 'model.onnx'));
  return dir;
}

describe('lrp-lens CLI', function () {
  before(function () {
    requireShared(this);
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  });

  it('attribute writes JSON that validates against the documented schema', () => {
    const out = join(work, 'lily.json');
    const r = cli('attribute', '--model', STORIES, '--prompt', 'Once upon a time, there was a little girl named', '--json', out);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /target " Lily"/);
    assert.match(r.out, /top predictions:/);
    const json = JSON.parse(readFileSync(out, 'utf8')) as AttributionResult;
    const validate = new Ajv({ strict: false }).compile(ATTRIBUTION_SCHEMA);
    assert.ok(validate(json), JSON.stringify(validate.errors));
    assert.equal(json.target.text, ' Lily');
    assert.equal(json.tokens.length, 14);
  });

  it('--ids, --target-id, --foil-id and --continuation work together with --json -', () => {
    const r = cli('attribute', '--model', STORIES, '--ids', '1,403,407,261,378', '--target-id', '432', '--foil-id', '383', '--json', '-');
    assert.equal(r.code, 0, r.err);
    const json = JSON.parse(r.out) as AttributionResult;
    assert.equal(json.target.id, 432);
    assert.equal(json.target.foil?.id, 383);
    const c = cli('attribute', '--model', STORIES, '--prompt', 'Once upon a time', '--continuation', ', there was', '--json', '-');
    assert.equal(c.code, 0, c.err);
    assert.equal((JSON.parse(c.out) as AttributionResult).continuation?.matrix.length, 3);
  });

  it('compile writes a relevance graph that onnxruntime loads', async () => {
    const out = join(work, 'relevance.onnx');
    const r = cli('compile', '--model', STORIES, '--out', out);
    assert.equal(r.code, 0, r.err);
    const s = await Session.create(out);
    assert.ok(s.outputNames.includes('lrp_tokens') && s.outputNames.includes('lrp_heads'));
    await s.release();
  });

  const failures: [string, () => string[], RegExp][] = [
    ['a missing model folder', () => ['--model', join(work, 'nope'), '--prompt', 'hi'], /Model folder not found/],
    [
      'a folder without an ONNX file',
      () => {
        const dir = join(work, 'no-onnx');
        mkdirSync(dir, { recursive: true });
        for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(STORIES, f), join(dir, f));
        return ['--model', dir, '--prompt', 'hi'];
      },
      /has no ONNX file/,
    ],
    [
      'a corrupt ONNX file',
      () => ['--model', modelCopy('corrupt', (p) => writeFileSync(p, Buffer.from('not a protobuf at all'))), '--prompt', 'hi'],
      /not a valid ONNX file|holds no ONNX graph/,
    ],
    [
      'a folder that is not a causal LM',
      () => {
        const dir = modelCopy('bert');
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert', architectures: ['BertForMaskedLM'] }));
        return ['--model', dir, '--prompt', 'hi'];
      },
      /not a causal language model/,
    ],
    ['an op with no relevance rule', () => ['--model', modelCopy('sin', insertSin), '--prompt', 'hi'], /op Sin, node 'inserted\/Sin'/],
    ['a prompt longer than the context', () => ['--model', STORIES, '--prompt', 'a '.repeat(600)], /context is 512/],
    [
      'an unknown target token',
      () => ['--model', STORIES, '--prompt', 'Once upon a time', '--target', ' Supercalifragilistic'],
      /not a single token/,
    ],
    ['two prompt sources', () => ['--model', STORIES, '--prompt', 'a', '--ids', '1,2'], /exactly one of/],
  ];
  for (const [what, args, message] of failures) {
    it(`fails with a clear message and non-zero exit on ${what}`, () => {
      const r = cli('attribute', '--no-cache', ...args());
      assert.notEqual(r.code, 0);
      assert.match(r.err, message);
      assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    });
  }
});

/** Inserts y = Sin(x) after the token embedding: an op the rule table does not know. */
function insertSin(path: string): void {
  const g = readModel(path);
  const gather = g.nodes.find((n) => n.opType === 'Gather' && n.inputs[1] === 'input_ids')!;
  const emb = gather.outputs[0];
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === emb ? 'inserted/sin_out' : i));
  g.nodes.push({ name: 'inserted/Sin', opType: 'Sin', domain: '', inputs: [emb], outputs: ['inserted/sin_out'], attributes: [] });
  g.sortTopologically();
  writeModel(g, path);
}
