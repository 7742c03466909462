/**
 * `node dist/bench.js blockwise` (and a section of `npm run bench`): long prompts on a Qwen2-0.5B-shaped model (hidden 896, 24 layers, 14 heads / 2 kv
 * heads, MLP 4864, vocab 32000, tied embeddings, external data, random weights). For each length, a plain
 * onnxruntime forward, the block-wise attribution and (where asked) the monolithic attribution each run in their
 * own child process — load, compile and run, whole-process peak RSS — under a watchdog that kills a child past
 * the memory limit and reports the limit instead of letting it take the machine down.
 */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LrpLensError } from '../src/engine/errors';
import { markdownTable } from '../src/cli/common';
import { peakRssMB } from '../src/cli/peakRss';

export const QWEN_SHAPED = {
  layers: 24,
  hidden: 896,
  heads: 14,
  kvHeads: 2,
  ffn: 4864,
  vocab: 32000,
  maxPositions: 8192,
  dtype: 'float32' as const,
  seed: 3,
  tiedEmbeddings: true,
  initStd: 0.02,
};

type Subject = 'forward' | 'blockwise' | 'monolithic';

export interface ChildResult {
  /** The fastest of the runs (the first one pays page faults and lazily read weights on both sides). */
  runMs: number;
  runsMs: number[];
  /** CPU time of each run, user and system (page faults show as system time), all threads. */
  cpuMs: { user: number; system: number }[];
  loadMs: number;
  peakRssMB: number;
}

export interface BlockwiseBenchRow {
  subject: Subject;
  seqLen: number;
  /** Absent when the watchdog killed the child. */
  runMs?: number;
  runsMs?: number[];
  cpuMs?: ChildResult['cpuMs'];
  loadMs?: number;
  peakRssMB?: number;
  killedAtMB?: number;
  error?: string;
  /** The machine's 1-minute load average when the child finished. */
  load?: number;
}

/**
 * Timed runs per process by default: the relevance graphs reach their steady state on the third (the first run
 * reads weights and touches fresh pages, the second still grows onnxruntime's arena: monolithic graph at 512 tokens
 * 12.8 / 8.1 / 5.4 s against the plain forward's 3.9 / 2.7 / 2.8 s).
 */
export const BLOCKWISE_RUNS = 3;

/** Child entry: load (and compile), then `runs` timed runs. */
async function benchChild(o: { onnx: string; subject: Subject; seq: number; runs: number }): Promise<void> {
  const { Session } = await import('../src/engine/runtime/session');
  const { causalLmFeeds, inputSpecs, seedFeeds } = await import('../src/engine/runtime/feeds');
  const { readModel } = await import('../src/engine/onnx/io');
  const ids = Array.from({ length: o.seq }, (_, i) => 1 + ((i * 7919) % 31000));
  const batch = { ids: [ids], mask: [ids.map(() => 1)] };
  const seed = seedFeeds('float32', [1, o.seq], {
    targetIds: ids.map(() => -1),
    targetWeights: ids.map((_, i) => (i === o.seq - 1 ? 1 : 0)),
  });
  const t0 = performance.now();
  let run: () => Promise<unknown>;
  if (o.subject === 'forward') {
    const graph = readModel(o.onnx);
    const session = await Session.create(o.onnx);
    const feeds = causalLmFeeds(inputSpecs(graph.inputs), batch);
    run = () => session.run(feeds, ['logits']);
  } else if (o.subject === 'blockwise') {
    const { BlockwiseRunner, compileBlockwise } = await import('../src/engine/runtime/blockwise');
    const compiled = await compileBlockwise(readModel(o.onnx), { mode: 'attnlrp' });
    if (!compiled.ok) throw new Error(compiled.reason);
    const runner = await BlockwiseRunner.create(compiled);
    const feeds = { ...causalLmFeeds(compiled.info.inputs, batch), ...seed };
    run = () => runner.run(feeds);
  } else {
    const { compileModelFile } = await import('../src/engine/runtime/compile');
    const compiled = await compileModelFile(o.onnx, { mode: 'attnlrp' }, false);
    const session = await Session.create(compiled.path);
    const feeds = { ...causalLmFeeds(compiled.info.inputs, batch), ...seed };
    run = () => session.run(feeds);
  }
  const loadMs = performance.now() - t0;
  const runsMs: number[] = [];
  const cpuMs: ChildResult['cpuMs'] = [];
  for (let i = 0; i < o.runs; i++) {
    const t1 = performance.now();
    const c1 = process.cpuUsage();
    await run();
    runsMs.push(performance.now() - t1);
    const c = process.cpuUsage(c1);
    cpuMs.push({ user: Math.round(c.user / 1000), system: Math.round(c.system / 1000) });
  }
  const result: ChildResult = { runMs: Math.min(...runsMs), runsMs, cpuMs, loadMs, peakRssMB: peakRssMB() };
  process.stdout.write(JSON.stringify(result));
}

/** Resident memory of a process and its peak so far (VmRSS, VmHWM), MB (0 once it is gone). */
function memoryMB(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/** A finished child: its output, wall time and the highest VmHWM sampled (every 50 ms; its last instants unseen). */
export type Watched =
  { stdout: string; stderr: string; wallMs: number; sampledPeakMB: number } | { killedAtMB: number } | { error: string };

/**
 * Runs `script` (default: this benchmark script) with `args` in a child process; SIGKILL past `limitMB` of
 * resident memory.
 */
export function underWatchdog(args: string[], limitMB: number, script = process.argv[1]): Promise<Watched> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--max-old-space-size=8192', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killed = false;
    let sampledPeakMB = 0;
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setInterval(() => {
      if (!child.pid) return;
      const m = memoryMB(child.pid);
      sampledPeakMB = Math.max(sampledPeakMB, m.peak);
      if (m.rss > limitMB) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, 50);
    child.on('close', (code) => {
      clearInterval(timer);
      if (killed) done({ killedAtMB: limitMB });
      else if (code !== 0) done({ error: err.trim().split('\n').slice(-3).join(' ') || `exit ${code}` });
      else done({ stdout: out, stderr: err, wallMs: performance.now() - t0, sampledPeakMB });
    });
  });
}

/** Child entry: the model folder (config, onnx/model.onnx + model.onnx_data), built once. */
async function buildModel(o: { out: string }): Promise<void> {
  const { buildLlamaLike } = await import('../test/fixtures/torchExports');
  const { writeModelWithExternalData } = await import('../src/engine/onnx/io');
  mkdirSync(join(o.out, 'onnx'), { recursive: true });
  writeModelWithExternalData(buildLlamaLike(QWEN_SHAPED), join(o.out, 'onnx', 'model.onnx'), 'model.onnx_data');
  writeFileSync(
    join(o.out, 'config.json'),
    JSON.stringify({ model_type: 'qwen2', num_hidden_layers: 24, hidden_size: 896, max_position_embeddings: 8192 }),
  );
}

export async function benchBlockwise(o: {
  seqLen: number[];
  limitMb: number;
  monolithic: number[];
  dir: string;
  runs: number;
}): Promise<BlockwiseBenchRow[]> {
  const onnx = join(o.dir, 'onnx', 'model.onnx');
  if (!existsSync(onnx) || !existsSync(`${onnx}_data`)) {
    const built = await underWatchdog(['blockwise-build', '--out', o.dir], o.limitMb);
    if (!('stdout' in built)) throw new LrpLensError('runtime-failure', `Building the benchmark model failed: ${JSON.stringify(built)}`);
  }
  const rows: BlockwiseBenchRow[] = [];
  for (const seq of o.seqLen) {
    const subjects: Subject[] = ['forward', 'blockwise', ...(o.monolithic.includes(seq) ? (['monolithic'] as const) : [])];
    for (const subject of subjects) {
      const w = await underWatchdog(
        ['blockwise-run', '--onnx', onnx, '--subject', subject, '--seq', String(seq), '--runs', String(o.runs)],
        o.limitMb,
      );
      const r = 'stdout' in w ? (JSON.parse(w.stdout) as ChildResult) : w;
      rows.push({ subject, seqLen: seq, ...r, load: Number(loadavg()[0].toFixed(1)) });
      console.error(`${subject} @ ${seq}: ${JSON.stringify(r)}`);
    }
  }
  return rows;
}

export function blockwiseTable(rows: BlockwiseBenchRow[]): string {
  const seqs = [...new Set(rows.map((r) => r.seqLen))];
  const cell = (r: BlockwiseBenchRow | undefined, f: (r: BlockwiseBenchRow) => string) =>
    !r ? '—' : r.killedAtMB ? `killed at ${(r.killedAtMB / 1024).toFixed(0)} GB` : r.error ? 'failed' : f(r);
  const body = seqs.map((seq) => {
    const get = (s: Subject) => rows.find((r) => r.seqLen === seq && r.subject === s);
    const f = get('forward');
    const b = get('blockwise');
    const m = get('monolithic');
    const ratio = (x: number | undefined, y: number | undefined) => (x && y ? (x / y).toFixed(2) : '—');
    return [
      String(seq),
      cell(f, (r) => `${(r.peakRssMB! / 1024).toFixed(2)} GB`),
      cell(b, (r) => `${(r.peakRssMB! / 1024).toFixed(2)} GB`),
      ratio(b?.peakRssMB, f?.peakRssMB),
      cell(f, (r) => `${(r.runMs! / 1000).toFixed(1)} s`),
      cell(b, (r) => `${(r.runMs! / 1000).toFixed(1)} s`),
      ratio(b?.runMs, f?.runMs),
      rows
        .filter((r) => r.seqLen === seq && r.load !== undefined)
        .map((r) => r.load!.toFixed(1))
        .join(' / '),
      cell(m, (r) => `${(r.peakRssMB! / 1024).toFixed(2)} GB, ${(r.runMs! / 1000).toFixed(1)} s (${ratio(r.runMs, f?.runMs)}×)`),
    ];
  });
  return markdownTable(
    ['tokens', 'forward RSS', 'block-wise RSS', 'RSS ×', 'forward run', 'block-wise run', 'time ×', 'load', 'monolithic'],
    body,
  );
}

export function registerBenchBlockwise(program: Command): void {
  program
    .command('blockwise')
    .description('long prompts on a Qwen2-0.5B-shaped model: block-wise attribution vs a plain forward (peak RSS, time)')
    .option('--seq-len <list>', 'sequence lengths', (v: string) => v.split(',').map(Number), [512, 1024, 2048, 4096])
    .option('--monolithic <list>', 'lengths at which the monolithic graph runs too', (v: string) => v.split(',').map(Number), [512])
    .option('--limit-mb <n>', 'kill a measured process past this resident memory', Number, 16384)
    .option('--dir <folder>', 'where the model is built (reused when present)', join(tmpdir(), 'lrp-bench-qwen-shaped'))
    .option(
      '--runs <n>',
      'timed runs per process; the fastest is reported (the first two grow the arenas, the first reads the weights)',
      Number,
      BLOCKWISE_RUNS,
    )
    .option('--json <out>', 'write the results as JSON')
    .action(async (o: { seqLen: number[]; monolithic: number[]; limitMb: number; dir: string; runs: number; json?: string }) => {
      const rows = await benchBlockwise(o);
      console.log(blockwiseTable(rows));
      if (o.json) {
        mkdirSync(dirname(resolve(o.json)), { recursive: true });
        writeFileSync(
          o.json,
          JSON.stringify(
            { date: new Date().toISOString(), model: QWEN_SHAPED, limitMB: o.limitMb, runs: o.runs, loadAverage: loadavg(), rows },
            null,
            2,
          ) + '\n',
        );
      }
    });
  program.command('blockwise-build', { hidden: true }).requiredOption('--out <dir>').action(buildModel);
  program
    .command('blockwise-run', { hidden: true })
    .requiredOption('--onnx <file>')
    .requiredOption('--subject <subject>')
    .requiredOption('--seq <n>', 'sequence length', Number)
    .option('--runs <n>', 'timed runs', Number, 1)
    .action(benchChild);
}
