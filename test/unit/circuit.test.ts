/**
 * Circuit discovery on stories260k's gendered-pronoun task (generated, held-out split): a task-specific circuit
 * that keeps ≥ 90% of the dense logit difference, LRP against Wanda, and the `circuit` CLI's files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PruningSession } from '../../src/engine/pruning/prune';
import { generateTask } from '../../src/engine/tasks/generators';
import { splitTask, tokenizeTask } from '../../src/engine/tasks/taskFile';
import type { TokenizedSample } from '../../src/engine/tasks/taskFile';
import { circuitCurve, evaluateTask } from '../../src/engine/circuits/search';
import { splitDocuments, tokenStream, windows } from '../../src/engine/eval/textData';
import { cliRunner } from '../support/bundledCli';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const work = mkdtempSync(join(tmpdir(), 'lrp-circuit-'));
const cli = cliRunner(work);

describe('circuit discovery on stories260k (pronoun task)', function () {
  let session: PruningSession;
  let train: TokenizedSample[];
  let heldOut: TokenizedSample[];
  let general: number[][];
  let dense: number;

  before(async function () {
    requireShared(this);
    session = await PruningSession.open({ model: STORIES });
    const task = generateTask('pronoun', { n: 120, seed: 1, tokenizer: session.tokenizer });
    ({ train, heldOut } = splitTask(tokenizeTask(task, session.tokenizer), { seed: 1 }));
    general = windows(tokenStream(splitDocuments(readFileSync(TINYSTORIES, 'utf8')), session.tokenizer), 128);
    dense = (await evaluateTask(session, heldOut, 'logit_diff')).mean;
  });

  after(async () => {
    await session?.close();
  });

  it('finds a neuron circuit keeping ≥ 90% of the held-out logit difference that wrecks general text, sparser with LRP than with Wanda', async () => {
    const opts = { metric: 'logit_diff' as const, granularity: 'neurons' as const, ranking: 'global' as const, threshold: 0.9 };
    const lrp = await circuitCurve(session, 'lrp', train, heldOut, dense, opts);
    const wanda = await circuitCurve(session, 'wanda', train, heldOut, dense, opts);
    assert.ok(lrp.chosen, 'LRP finds a circuit');
    const mask = lrp.masks.get(lrp.chosen.sparsity)!;
    const denseMetric = dense;
    const circuitMetric = (await evaluateTask(session, heldOut, 'logit_diff', mask)).mean;
    const densePpl = (await session.perplexity(general)).perplexity;
    const circuitPpl = (await session.perplexity(general, mask)).perplexity;
    const wandaSparsity = wanda.chosen?.achieved ?? 0;
    console.log(
      `      dense logit diff ${denseMetric.toFixed(3)}; LRP circuit: ${(lrp.chosen.achieved * 100).toFixed(1)}% of block weights pruned, logit diff ${circuitMetric.toFixed(3)} (${(lrp.chosen.retained * 100).toFixed(1)}%)`,
    );
    console.log(
      `      general perplexity ${densePpl.toFixed(2)} → ${circuitPpl.toExponential(2)}; Wanda circuit: ${wanda.chosen ? `${(wandaSparsity * 100).toFixed(1)}%` : 'none at ≥ 90%'}`,
    );
    assert.ok(circuitMetric >= 0.9 * denseMetric);
    assert.ok(lrp.chosen.achieved > 0.5, `a sparse circuit: ${lrp.chosen.achieved}`);
    assert.ok(
      circuitPpl / densePpl > 10 * (denseMetric / circuitMetric),
      'task-specific: general perplexity degrades far more than the task metric',
    );
    assert.ok(lrp.chosen.achieved >= wandaSparsity, `LRP ${lrp.chosen.achieved} vs Wanda ${wandaSparsity}`);
  });

  it('CLI: task make + circuit write the task, circuit.json with curves and graph, circuit.svg and a loadable mask', () => {
    const taskFile = join(work, 'pronoun.task.jsonl');
    const make = cli('task', 'make', '--kind', 'pronoun', '--n', '120', '--seed', '1', '--model', STORIES, '--out', taskFile);
    assert.equal(make.code, 0, make.err);
    const out = join(work, 'circuit');
    const r = cli(
      'circuit',
      '--model',
      STORIES,
      '--task',
      taskFile,
      '--granularity',
      'neurons',
      '--compare',
      'wanda',
      '--general',
      TINYSTORIES,
      '--out',
      out,
    );
    assert.equal(r.code, 0, r.err);
    const record = JSON.parse(readFileSync(join(out, 'circuit.json'), 'utf8'));
    assert.equal(record.schema, 'lrp-lens/circuit@1');
    assert.deepEqual(
      record.curves.map((c: { method: string }) => c.method),
      ['lrp', 'wanda'],
    );
    assert.ok(record.circuit.retained >= 0.9);
    assert.ok(record.graph.nodes.length > 0 && record.graph.edges.length <= 50);
    assert.match(readFileSync(join(out, 'circuit.svg'), 'utf8'), /^<svg/);
    const ev = cli('task', 'eval', '--model', STORIES, '--task', taskFile, '--mask', join(out, 'mask.json'), '--json', '-');
    assert.equal(ev.code, 0, ev.err);
    assert.ok(JSON.parse(ev.out).mean > 0, 'the circuit still does the task on the whole file');
    assert.ok(existsSync(join(out, 'mask.safetensors')));
  });

  it('CLI: a task file with a bad line is reported with its line number', () => {
    const bad = join(work, 'bad.task.jsonl');
    writeFileSync(bad, '{"task":{"name":"t","metric":"logit_diff"}}\n{"prompt":"a","target":" he","foil":" she"}\n{oops\n');
    const r = cli('task', 'eval', '--model', STORIES, '--task', bad);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad\.task\.jsonl:3: not valid JSON/);
  });
});
