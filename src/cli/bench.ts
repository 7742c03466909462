/**
 * `lrp-lens bench`: plain forward vs attribution, side by side in one run. Each measurement runs in its own
 * child process (same session options) so peak RSS belongs to that measurement alone.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LrpLensError } from '../engine/errors';
import { compileGraph } from '../engine/runtime/compile';
import { readModel, writeModel, writeModelReferencingSource } from '../engine/onnx/io';
import { resolveModel } from '../engine/runtime/model';
import { Session, int64Tensor, floatTensor } from '../engine/runtime/session';
import { causalLmFeeds, inputSpecs } from '../engine/runtime/feeds';
import { IO } from '../engine/relevance/compiler';
import type { Graph } from '../engine/onnx/graph';

interface BenchRow {
  model: string;
  params: number;
  seqLen: number;
  compileMs: number;
  forwardMs: number;
  attributionMs: number;
  timeRatio: number;
  forwardRssMB: number;
  attributionRssMB: number;
  rssRatio: number;
}

interface RunStats {
  medianMs: number;
  maxRssMB: number;
}

/** Child-process entry: load one model, run it `reps` times at the given length, report median and peak RSS. */
async function benchRun(o: { onnx: string; kind: 'forward' | 'attribution'; seq: number; reps: number }): Promise<void> {
  const session = await Session.create(o.onnx);
  const { Graph: G } = await import('../engine/onnx/graph');
  const { decodeModel } = await import('../engine/onnx/io');
  const { readFileSync } = await import('node:fs');
  const graph: Graph = new G(decodeModel(readFileSync(o.onnx)));
  const specs = inputSpecs(graph.inputs);
  const ids = Array.from({ length: o.seq }, (_, i) => 1 + ((i * 7) % 250));
  const feeds = causalLmFeeds(specs, { ids: [ids], mask: [ids.map(() => 1)] });
  if (o.kind === 'attribution') {
    const tw = ids.map((_, i) => (i === ids.length - 1 ? 1 : 0));
    feeds[IO.targetIds] = int64Tensor(ids.map(() => -1), [1, o.seq]);
    feeds[IO.targetWeights] = floatTensor('float32', tw, [1, o.seq]);
    feeds[IO.foilIds] = int64Tensor(ids.map(() => 0), [1, o.seq]);
    feeds[IO.foilWeights] = floatTensor('float32', ids.map(() => 0), [1, o.seq]);
  }
  const fetches = o.kind === 'forward' ? ['logits'] : undefined;
  await session.run(feeds, fetches);
  const times: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    const t0 = performance.now();
    await session.run(feeds, fetches);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const stats: RunStats = { medianMs: times[Math.floor(times.length / 2)], maxRssMB: process.resourceUsage().maxRSS / 1024 };
  process.stdout.write(JSON.stringify(stats));
}

function measure(onnx: string, kind: 'forward' | 'attribution', seq: number, reps: number): RunStats {
  const res = spawnSync(process.execPath, [process.argv[1], 'bench-run', '--onnx', onnx, '--kind', kind, '--seq', String(seq), '--reps', String(reps)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (res.status !== 0) throw new LrpLensError('runtime-failure', `Benchmark run failed (${kind}, seq ${seq}): ${res.stderr.trim()}`);
  return JSON.parse(res.stdout) as RunStats;
}

function paramCount(g: Graph): number {
  let n = 0;
  for (const t of g.initializers.values()) n += (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1);
  return n;
}

async function benchModel(name: string, graph: Graph, originalPath: string, seqLens: number[], reps: number, work: string): Promise<BenchRow[]> {
  const params = paramCount(graph);
  const t0 = performance.now();
  const { graph: compiled } = await compileGraph(graph, { mode: 'attnlrp' });
  const compileMs = performance.now() - t0;
  const compiledPath = writeModelReferencingSource(compiled, join(work, name.replace(/\W+/g, '_')), 'relevance.onnx');
  return seqLens.map((seqLen) => {
    const f = measure(originalPath, 'forward', seqLen, reps);
    const a = measure(compiledPath, 'attribution', seqLen, reps);
    return {
      model: name,
      params,
      seqLen,
      compileMs,
      forwardMs: f.medianMs,
      attributionMs: a.medianMs,
      timeRatio: a.medianMs / f.medianMs,
      forwardRssMB: f.maxRssMB,
      attributionRssMB: a.maxRssMB,
      rssRatio: a.maxRssMB / f.maxRssMB,
    };
  });
}

function table(rows: BenchRow[]): string {
  const head = ['model', 'params', 'seq', 'compile s', 'forward ms', 'attrib ms', 'time ×', 'fwd RSS MB', 'attr RSS MB', 'RSS ×'];
  const body = rows.map((r) => [
    r.model,
    `${(r.params / 1e6).toFixed(2)}M`,
    String(r.seqLen),
    (r.compileMs / 1000).toFixed(2),
    r.forwardMs.toFixed(1),
    r.attributionMs.toFixed(1),
    r.timeRatio.toFixed(2),
    r.forwardRssMB.toFixed(0),
    r.attributionRssMB.toFixed(0),
    r.rssRatio.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('plain forward vs attribution: time, peak RSS, compile time, and their ratios')
    .option('--model <folder|hub-id...>', 'models to measure (default: ../shared stories260k when present)')
    .option('--synthetic', 'also build and measure a ~124M-parameter GPT-2-shaped model', true)
    .option('--no-synthetic', 'skip the synthetic 124M model')
    .option('--seq-len <list>', 'sequence lengths', (v: string) => v.split(',').map(Number), [128, 512])
    .option('--reps <n>', 'timed runs per measurement (median reported)', Number, 3)
    .option('--json <out>', 'write the results as JSON')
    .action(async (o: { model?: string[]; synthetic: boolean; seqLen: number[]; reps: number; json?: string }) => {
      const work = mkdtempSync(join(tmpdir(), 'lrp-bench-'));
      const rows: BenchRow[] = [];
      try {
        const shared = resolve(__dirname, '..', '..', 'shared', 'models', 'stories260k');
        const models = o.model ?? (existsSync(shared) ? [shared] : []);
        for (const ref of models) {
          const m = await resolveModel(ref);
          rows.push(...(await benchModel(m.ref.split('/').pop() ?? m.ref, readModel(m.onnxPath), m.onnxPath, o.seqLen, o.reps, work)));
          console.log(table(rows));
        }
        if (o.synthetic) {
          const { buildGpt2Like, gpt2Small124M } = await import('../engine/onnx/synthetic');
          const graph = buildGpt2Like(gpt2Small124M());
          const path = join(work, 'gpt2-124m.onnx');
          writeModel(graph, path);
          rows.push(...(await benchModel('gpt2-shaped-124M', graph, path, o.seqLen, o.reps, work)));
        }
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      console.log(table(rows));
      if (o.json) {
        mkdirSync(dirname(resolve(o.json)), { recursive: true });
        writeFileSync(o.json, JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2) + '\n');
        console.log(`wrote ${o.json}`);
      }
    });

  program
    .command('bench-run', { hidden: true })
    .requiredOption('--onnx <file>')
    .addOption(new Option('--kind <kind>').choices(['forward', 'attribution']).makeOptionMandatory())
    .requiredOption('--seq <n>', 'sequence length', Number)
    .option('--reps <n>', 'timed runs', Number, 3)
    .action(benchRun);
}
