/**
 * Attribution-guided pruning on stories260k with the TinyStories sample (first 6 stories reference, last 3
 * evaluation): methods ranked by perplexity, row allocation, and the CLI's prune → mask → eval round trip.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PruningSession, sweep } from '../../src/engine/pruning/prune';
import type { ScoreMethod } from '../../src/engine/pruning/scores';
import { splitDocuments, tokenStream, windows } from '../../src/engine/eval/textData';
import { cliRunner } from '../support/bundledCli';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const work = mkdtempSync(join(tmpdir(), 'lrp-prune-'));
const cli = cliRunner(work);

interface TjsModel {
  (inputs: unknown): Promise<{ logits: { data: Float32Array; dims: number[] } }>;
  dispose(): Promise<unknown>;
}

/** Perplexity by transformers.js over the same windows: its own session, its own input handling; NLL in float64. */
async function transformersJsPerplexity(dir: string, windowsIds: number[][]): Promise<number> {
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = '';
  const model = (await t.AutoModelForCausalLM.from_pretrained(dir, {
    local_files_only: true,
    dtype: 'fp32',
    device: 'cpu',
  })) as unknown as TjsModel;
  let nll = 0;
  let count = 0;
  try {
    for (const ids of windowsIds) {
      const input = new t.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
      const mask = new t.Tensor('int64', BigInt64Array.from(ids.map(() => 1n)), [1, ids.length]);
      const { logits } = await model({ input_ids: input, attention_mask: mask });
      const V = logits.dims[2];
      for (let i = 0; i + 1 < ids.length; i++) {
        const row = logits.data.subarray(i * V, (i + 1) * V);
        let max = -Infinity;
        for (const x of row) max = Math.max(max, x);
        let z = 0;
        for (const x of row) z += Math.exp(x - max);
        nll += max + Math.log(z) - row[ids[i + 1]];
        count++;
      }
    }
  } finally {
    await model.dispose();
  }
  return Math.exp(nll / count);
}

describe('pruning stories260k', function () {
  let session: PruningSession;
  let reference: number[][];
  let evaluation: number[][];
  const perplexities: Record<string, number[]> = {};

  before(async function () {
    requireShared(this);
    session = await PruningSession.open({ model: STORIES });
    const docs = splitDocuments(readFileSync(TINYSTORIES, 'utf8'));
    reference = windows(tokenStream(docs.slice(0, 6), session.tokenizer), 128);
    evaluation = windows(tokenStream(docs.slice(6), session.tokenizer), 128);
    writeFileSync(join(work, 'reference.txt'), docs.slice(0, 6).join('\n'));
    writeFileSync(join(work, 'evaluation.txt'), docs.slice(6).join('\n'));
  });

  after(async () => {
    await session?.close();
  });

  for (const method of ['lrp', 'wanda', 'magnitude', 'random'] as ScoreMethod[]) {
    it(`${method}: masks at exactly 30% and 50% of every row, evaluated`, async () => {
      const stats = await session.statistics(method, reference);
      const points = await sweep(session, session.scores(stats), [0.3, 0.5], { allocation: 'row', evalWindows: evaluation });
      for (const p of points) {
        for (const w of session.weights) {
          const rows = w.dims[w.outAxis];
          const inputs = w.dims[1 - w.outAxis];
          const pruned = p.mask.get(w.name)!.keep.reduce((n, k) => n + (k ? 0 : 1), 0);
          assert.ok(Math.abs(pruned - rows * Math.round(p.sparsity * inputs)) <= rows, `${w.name}: ${pruned} pruned`);
        }
      }
      perplexities[method] = points.map((p) => p.perplexity!);
      console.log(`      ${method}: perplexity at 30% ${perplexities[method][0].toFixed(2)}, at 50% ${perplexities[method][1].toFixed(2)}`);
    });
  }

  it('LRP and Wanda both beat magnitude and random at 30% and 50% row-wise', function () {
    if (Object.keys(perplexities).length < 4) this.skip();
    for (const good of ['lrp', 'wanda']) {
      for (const bad of ['magnitude', 'random']) {
        [0, 1].forEach((i) =>
          assert.ok(
            perplexities[good][i] < perplexities[bad][i],
            `${good} ${perplexities[good][i]} vs ${bad} ${perplexities[bad][i]} at ${i ? 50 : 30}%`,
          ),
        );
      }
    }
  });

  it("the signed sum of relevance (the paper's literal mean) ranks negative-relevance weights lowest and is far worse", async () => {
    const signed = await session.statistics('lrp', reference, { aggregation: 'signed' });
    const [p] = await sweep(session, session.scores(signed), [0.5], { allocation: 'row', evalWindows: evaluation });
    console.log(`      lrp signed at 50%: ${p.perplexity!.toFixed(2)}`);
    assert.ok(p.perplexity! > 3 * perplexities.lrp[1]);
  });

  it('CLI: prune writes a mask pair and a report; eval with the mask reproduces the reported perplexity', () => {
    const mask = join(work, 'masks', 'lrp50');
    const report = join(work, 'prune.json');
    const r = cli(
      'prune',
      '--model',
      STORIES,
      '--method',
      'lrp',
      '--sparsity',
      '0.5',
      '--reference',
      join(work, 'reference.txt'),
      '--eval',
      join(work, 'evaluation.txt'),
      '--out',
      mask,
      '--json',
      report,
    );
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(`${mask}.safetensors`) && existsSync(`${mask}.json`));
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    assert.equal(rep.schema, 'lrp-lens/prune@1');
    assert.equal(rep.points[0].achieved, 0.5);
    const e = cli('eval', '--model', STORIES, '--mask', `${mask}.safetensors`, '--text', join(work, 'evaluation.txt'), '--json', '-');
    assert.equal(e.code, 0, e.err);
    const ev = JSON.parse(e.out);
    assert.ok(Math.abs(ev.perplexity - rep.points[0].perplexity) < 1e-6 * ev.perplexity, `${ev.perplexity} vs ${rep.points[0].perplexity}`);
    assert.ok(ev.tokens > 500);
  });

  it('the exported pruned folder has, in transformers.js, the perplexity the engine reports for the mask', async () => {
    const out = join(work, 'exported');
    const r = cli('export', '--model', STORIES, '--mask', join(work, 'masks', 'lrp50.json'), '--out', out, '--json', '-');
    assert.equal(r.code, 0, r.err);
    const engine = JSON.parse(readFileSync(join(work, 'prune.json'), 'utf8')).points[0].perplexity as number;
    const tjs = await transformersJsPerplexity(out, evaluation);
    console.log(`      perplexity of the 50% LRP mask: engine ${engine.toFixed(4)}, transformers.js on the export ${tjs.toFixed(4)}`);
    assert.ok(Math.abs(tjs - engine) < 1e-3 * engine, `${tjs} vs ${engine}`);
  });

  it('CLI: a mask is refused for a model with other weights, naming both models', () => {
    const other = join(work, 'other-model');
    cpSync(STORIES, other, { recursive: true });
    const onnx = join(other, 'onnx', 'model.onnx');
    const bytes = readFileSync(onnx);
    bytes[bytes.length - 5] ^= 1;
    writeFileSync(onnx, bytes);
    const e = cli('eval', '--model', other, '--mask', join(work, 'masks', 'lrp50.json'), '--text', join(work, 'evaluation.txt'));
    assert.equal(e.code, 2);
    assert.match(e.err, /was made for model .*stories260k.*not for .*other-model/);
  });

  it('CLI: statistics of 3 reference shards, merged, give the mask of the whole reference set; a shard merged twice is refused', () => {
    const ref = join(work, 'reference.txt');
    for (const i of [0, 1, 2]) {
      const r = cli(
        'prune',
        '--model',
        STORIES,
        '--method',
        'lrp',
        '--reference',
        ref,
        '--shard',
        `${i}/3`,
        '--stats-out',
        join(work, 'stats', `s${i}.safetensors`),
      );
      assert.equal(r.code, 0, r.err);
    }
    const shards = [0, 1, 2].map((i) => join(work, 'stats', `s${i}.safetensors`));
    const m = cli('merge', '--stats', ...shards, '--out', join(work, 'stats', 'all.safetensors'));
    assert.equal(m.code, 0, m.err);
    const report = join(work, 'from-shards.json');
    const p = cli(
      'prune',
      '--model',
      STORIES,
      '--method',
      'lrp',
      '--stats',
      join(work, 'stats', 'all.safetensors'),
      '--sparsity',
      '0.5',
      '--eval',
      join(work, 'evaluation.txt'),
      '--out',
      join(work, 'masks', 'sharded'),
      '--json',
      report,
    );
    assert.equal(p.code, 0, p.err);
    const whole = JSON.parse(readFileSync(join(work, 'prune.json'), 'utf8')).points[0].perplexity as number;
    const sharded = JSON.parse(readFileSync(report, 'utf8')).points[0].perplexity as number;
    assert.ok(Math.abs(sharded - whole) < 1e-3 * whole, `sharded ${sharded} vs whole ${whole}`);
    const twice = cli('merge', '--stats', shards[0], shards[0], '--out', join(work, 'stats', 'x.safetensors'));
    assert.equal(twice.code, 2);
    assert.match(twice.err, /Shard 0\/3 appears twice/);
  });

  it('CLI: methods needing data ask for --reference; bad sparsities are refused', () => {
    const a = cli('prune', '--model', STORIES, '--method', 'wanda', '--sparsity', '0.5', '--out', join(work, 'x'));
    assert.equal(a.code, 2);
    assert.match(a.err, /needs reference text: pass --reference FILE/);
    const b = cli('prune', '--model', STORIES, '--method', 'magnitude', '--sparsity', '1.5', '--out', join(work, 'x'));
    assert.notEqual(b.code, 0);
    assert.match(b.err, /sparsities are numbers in \[0, 1\)/);
  });
});
