/**
 * `npm run bench` (pruning part): weight-relevance collection vs Wanda's statistics on the same samples, each in
 * its own child process so time and peak RSS belong to that collection alone.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { readFileSync } from 'node:fs';
import { readModel } from '../src/engine/onnx/io';
import { compileModelFile } from '../src/engine/runtime/compile';
import { findLinearWeights, selectWeights } from '../src/engine/pruning/prunable';
import { collectStatistics, DEFAULT_AGGREGATION } from '../src/engine/pruning/scores';
import { peakRssMB } from '../src/cli/peakRss';
import { markdownTable } from '../src/cli/common';
import { runBenchChild } from './child';

export interface CollectionRow {
  model: string;
  samples: number;
  seqLen: number;
  lrpMs: number;
  wandaMs: number;
  timeRatio: number;
  lrpRssMB: number;
  wandaRssMB: number;
  rssRatio: number;
  lrpSamplesPerSec: number;
}

interface CollectStats {
  ms: number;
  maxRssMB: number;
}

/** Child-process entry: one collection over samples from a token file (JSON number[][]). */
async function benchCollect(o: { onnx: string; method: 'lrp' | 'wanda'; samples: string }): Promise<void> {
  const samples = JSON.parse(readFileSync(o.samples, 'utf8')) as number[][];
  const weights = selectWeights(findLinearWeights(readModel(o.onnx)));
  if (o.method === 'lrp')
    await compileModelFile(o.onnx, { mode: 'attnlrp', weightRelevance: weights.map((w) => w.name), weightAggregation: 'absolute' });
  const t0 = performance.now();
  await collectStatistics(o.onnx, weights, o.method, samples, { aggregation: DEFAULT_AGGREGATION });
  const stats: CollectStats = { ms: performance.now() - t0, maxRssMB: peakRssMB() };
  process.stdout.write(JSON.stringify(stats));
}

function measureCollect(onnx: string, method: 'lrp' | 'wanda', samplesFile: string): CollectStats {
  return runBenchChild<CollectStats>(
    ['collect', '--onnx', onnx, '--method', method, '--samples', samplesFile],
    `Collection benchmark failed (${method})`,
  );
}

export function benchCollection(model: string, onnx: string, samplesFile: string, samples: number[][]): CollectionRow {
  const lrp = measureCollect(onnx, 'lrp', samplesFile);
  const wanda = measureCollect(onnx, 'wanda', samplesFile);
  return {
    model,
    samples: samples.length,
    seqLen: samples[0]?.length ?? 0,
    lrpMs: lrp.ms,
    wandaMs: wanda.ms,
    timeRatio: lrp.ms / wanda.ms,
    lrpRssMB: lrp.maxRssMB,
    wandaRssMB: wanda.maxRssMB,
    rssRatio: lrp.maxRssMB / wanda.maxRssMB,
    lrpSamplesPerSec: samples.length / (lrp.ms / 1000),
  };
}

export function collectionTable(rows: CollectionRow[]): string {
  const head = ['model', 'samples × len', 'lrp s', 'wanda s', 'time ×', 'lrp RSS MB', 'wanda RSS MB', 'RSS ×', 'lrp samples/s'];
  const body = rows.map((r) => [
    r.model,
    `${r.samples} × ${r.seqLen}`,
    (r.lrpMs / 1000).toFixed(2),
    (r.wandaMs / 1000).toFixed(2),
    r.timeRatio.toFixed(2),
    r.lrpRssMB.toFixed(0),
    r.wandaRssMB.toFixed(0),
    r.rssRatio.toFixed(2),
    r.lrpSamplesPerSec.toFixed(2),
  ]);
  return markdownTable(head, body);
}

export function registerBenchCollect(program: Command): void {
  program
    .command('collect', { hidden: true })
    .requiredOption('--onnx <file>')
    .addOption(new Option('--method <m>').choices(['lrp', 'wanda']).makeOptionMandatory())
    .requiredOption('--samples <file>', 'JSON array of token-id arrays')
    .action(benchCollect);
}

export interface CircuitBenchRow {
  task: string;
  samples: number;
  sparsities: number;
  collectMs: number;
  evalPerSparsityMs: number;
  totalMs: number;
}

/** Circuit search on the generated pronoun task: collection once, then one masked evaluation per sparsity. */
export async function benchCircuit(model: string): Promise<CircuitBenchRow> {
  const { PruningSession } = await import('../src/engine/pruning/prune');
  const { generateTask } = await import('../src/engine/tasks/generators');
  const { splitTask, tokenizeTask } = await import('../src/engine/tasks/taskFile');
  const { circuitCurve, evaluateTask } = await import('../src/engine/circuits/search');
  const session = await PruningSession.open({ model });
  try {
    const t0 = performance.now();
    const task = generateTask('pronoun', { n: 120, seed: 1, tokenizer: session.tokenizer });
    const { train, heldOut } = splitTask(tokenizeTask(task, session.tokenizer), { seed: 1 });
    const dense = (await evaluateTask(session, heldOut, 'logit_diff')).mean;
    const curve = await circuitCurve(session, 'lrp', train, heldOut, dense, {
      metric: 'logit_diff',
      granularity: 'neurons',
      ranking: 'global',
      threshold: 0.9,
    });
    const totalMs = performance.now() - t0;
    return {
      task: 'pronoun',
      samples: task.samples.length,
      sparsities: curve.points.length,
      collectMs: curve.collectMs,
      evalPerSparsityMs: (totalMs - curve.collectMs) / curve.points.length,
      totalMs,
    };
  } finally {
    await session.close();
  }
}

export function circuitTable(rows: CircuitBenchRow[]): string {
  return markdownTable(
    ['task', 'samples', 'sparsities', 'collect s', 'eval per sparsity ms', 'total s'],
    rows.map((r) => [
      r.task,
      String(r.samples),
      String(r.sparsities),
      (r.collectMs / 1000).toFixed(2),
      r.evalPerSparsityMs.toFixed(0),
      (r.totalMs / 1000).toFixed(2),
    ]),
  );
}

export interface QualityRow {
  method: string;
  perplexity: Record<string, number>;
}

export interface QualityBench {
  dense: number;
  sparsities: number[];
  rows: QualityRow[];
  /** LRP (default aggregation) ÷ Wanda perplexity at 50% row-wise: the quality target is ≤ 1.0. */
  lrpOverWandaAt50: number;
}

/**
 * Perplexity by method × sparsity on stories260k: reference = the first 6 stories of the TinyStories sample,
 * evaluation = the last 3, 128-token windows, row-wise; LRP with each aggregation.
 */
export async function benchQuality(model: string, textFile: string): Promise<QualityBench> {
  const { PruningSession, sweep } = await import('../src/engine/pruning/prune');
  const { splitDocuments, tokenStream, windows } = await import('../src/engine/eval/textData');
  const { LRP_AGGREGATIONS } = await import('../src/engine/pruning/scores');
  const session = await PruningSession.open({ model });
  try {
    const docs = splitDocuments(readFileSync(textFile, 'utf8'));
    const reference = windows(tokenStream(docs.slice(0, 6), session.tokenizer), 128);
    const evaluation = windows(tokenStream(docs.slice(6), session.tokenizer), 128);
    const sparsities = [0.3, 0.5, 0.6, 0.7];
    const dense = (await session.perplexity(evaluation)).perplexity;
    const specs: [string, 'lrp' | 'wanda' | 'magnitude' | 'gradient' | 'random', string?][] = [
      ...LRP_AGGREGATIONS.map((a) => [`lrp:${a}`, 'lrp', a] as [string, 'lrp', string]),
      ['wanda', 'wanda'],
      ['magnitude', 'magnitude'],
      ['gradient', 'gradient'],
      ['random', 'random'],
    ];
    const rows: QualityRow[] = [];
    for (const [label, method, aggregation] of specs) {
      const stats = await session.statistics(method, reference, { aggregation: aggregation as never });
      const points = await sweep(session, session.scores(stats), sparsities, { allocation: 'row', evalWindows: evaluation });
      rows.push({ method: label, perplexity: Object.fromEntries(points.map((p) => [String(p.sparsity), p.perplexity!])) });
    }
    const at50 = (m: string) => rows.find((r) => r.method === m)!.perplexity['0.5'];
    return { dense, sparsities, rows, lrpOverWandaAt50: at50('lrp:abs-tokens') / at50('wanda') };
  } finally {
    await session.close();
  }
}

export function qualityTable(q: QualityBench): string {
  return markdownTable(
    ['method', ...q.sparsities.map((s) => `${s * 100}%`)],
    q.rows.map((r) => [r.method, ...q.sparsities.map((s) => r.perplexity[String(s)].toFixed(2))]),
  );
}
