/**
 * `node dist/bench.js long-collect` (and a section of `npm run bench`): pruning statistics on long windows of the
 * Qwen2-0.5B-shaped model of bench/blockwise.ts — LRP weight relevance (the execution `auto` picks, under the
 * watchdog's limit) against Wanda's activation norms on the same windows. Each collection runs in its own child
 * process (load, compile and collection: whole-process peak RSS) under the memory watchdog.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LrpLensError } from '../src/engine/errors';
import { markdownTable } from '../src/cli/common';
import { peakRssMB } from '../src/cli/peakRss';
import { QWEN_SHAPED, underWatchdog } from './blockwise';
import { EXECUTION_CHOICES } from '../src/engine/runtime/execution';
import type { ExecutionChoice } from '../src/engine/runtime/execution';

type Method = 'lrp' | 'wanda';

interface ChildResult {
  collectMs: number;
  /** CPU time of the collection (user + system, every thread): comparable where the machine is shared. */
  collectCpuMs: number;
  peakRssMB: number;
  execution?: string;
  reason?: string;
}

export interface LongCollectionRow {
  method: Method;
  seqLen: number;
  windows: number;
  /** Spawn to exit (load, compile, collection). */
  wallMs?: number;
  collectMs?: number;
  collectCpuMs?: number;
  peakRssMB?: number;
  execution?: string;
  reason?: string;
  killedAtMB?: number;
  error?: string;
}

/** Child entry: the windows (deterministic ids), then one collection with the default aggregation. */
async function collectChild(o: {
  onnx: string;
  method: Method;
  seq: number;
  windows: number;
  limitMb: number;
  execution: ExecutionChoice;
}): Promise<void> {
  const { setMemoryGuard } = await import('../src/engine/memory/memoryGuard');
  const { readModel } = await import('../src/engine/onnx/io');
  const { findLinearWeights, selectWeights } = await import('../src/engine/pruning/prunable');
  const { collectStatistics } = await import('../src/engine/pruning/scores');
  // `auto` decides against the watchdog's limit, not the machine's free memory.
  setMemoryGuard({ limit: o.limitMb * 2 ** 20 });
  const samples = Array.from({ length: o.windows }, (_, w) =>
    Array.from({ length: o.seq }, (_, i) => 1 + ((i * 7919 + w * 104729) % 31000)),
  );
  const weights = selectWeights(findLinearWeights(readModel(o.onnx)));
  let decision: { execution: string; reason: string } | undefined;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await collectStatistics(o.onnx, weights, o.method, samples, { cache: false, execution: o.execution, onExecution: (d) => (decision = d) });
  const cpu = process.cpuUsage(cpu0);
  const result: ChildResult = {
    collectMs: performance.now() - t0,
    collectCpuMs: (cpu.user + cpu.system) / 1000,
    peakRssMB: peakRssMB(),
    ...decision,
  };
  process.stdout.write(JSON.stringify(result));
}

export async function benchLongCollection(o: {
  seqLen: number[];
  windows: number;
  limitMb: number;
  dir: string;
  execution?: ExecutionChoice;
}): Promise<LongCollectionRow[]> {
  const onnx = join(o.dir, 'onnx', 'model.onnx');
  if (!existsSync(onnx) || !existsSync(`${onnx}_data`)) {
    const built = await underWatchdog(['blockwise-build', '--out', o.dir], o.limitMb);
    if (!('stdout' in built)) throw new LrpLensError('runtime-failure', `Building the benchmark model failed: ${JSON.stringify(built)}`);
  }
  const rows: LongCollectionRow[] = [];
  for (const seq of o.seqLen) {
    for (const method of ['wanda', 'lrp'] as const) {
      const args = ['long-collect-run', '--onnx', onnx, '--method', method, '--seq', String(seq)];
      const w = await underWatchdog(
        [...args, '--windows', String(o.windows), '--limit-mb', String(o.limitMb), '--execution', o.execution ?? 'auto'],
        o.limitMb,
      );
      const row: LongCollectionRow =
        'stdout' in w
          ? { method, seqLen: seq, windows: o.windows, wallMs: w.wallMs, ...(JSON.parse(w.stdout) as ChildResult) }
          : { method, seqLen: seq, windows: o.windows, ...w };
      rows.push(row);
      console.error(`long-collect ${method} @ ${seq}: ${JSON.stringify(row)}`);
    }
  }
  return rows;
}

export function longCollectionTable(rows: LongCollectionRow[]): string {
  const gb = (mb: number | undefined) => (mb ? `${(mb / 1024).toFixed(2)} GB` : '—');
  const s = (ms: number | undefined) => (ms ? `${(ms / 1000).toFixed(1)} s` : '—');
  const ratio = (x: number | undefined, y: number | undefined) => (x && y ? (x / y).toFixed(2) : '—');
  const body = [...new Set(rows.map((r) => r.seqLen))].map((seq) => {
    const get = (m: Method) => rows.find((r) => r.seqLen === seq && r.method === m);
    const [l, w] = [get('lrp'), get('wanda')];
    const failed = (r: LongCollectionRow | undefined) =>
      r?.killedAtMB ? `killed at ${(r.killedAtMB / 1024).toFixed(0)} GB` : r?.error ? `failed: ${r.error}` : undefined;
    return [
      `${l?.windows ?? w?.windows} × ${seq}`,
      l?.execution ?? '—',
      failed(w) ?? gb(w?.peakRssMB),
      failed(l) ?? gb(l?.peakRssMB),
      ratio(l?.peakRssMB, w?.peakRssMB),
      s(w?.collectMs),
      s(l?.collectMs),
      ratio(l?.collectMs, w?.collectMs),
      `${s(w?.collectCpuMs)} / ${s(l?.collectCpuMs)}`,
      ratio(l?.collectCpuMs, w?.collectCpuMs),
      `${s(w?.wallMs)} / ${s(l?.wallMs)}`,
    ];
  });
  return markdownTable(
    [
      'windows × tokens',
      'lrp execution',
      'wanda RSS',
      'lrp RSS',
      'RSS ×',
      'wanda collect',
      'lrp collect',
      'time ×',
      'CPU (wanda / lrp)',
      'CPU ×',
      'whole process (wanda / lrp)',
    ],
    body,
  );
}

export function registerBenchLongCollection(program: Command): void {
  program
    .command('long-collect')
    .description('pruning statistics on long windows of a Qwen2-0.5B-shaped model: LRP weight relevance vs Wanda (peak RSS, time)')
    .option('--seq-len <list>', 'window lengths', (v: string) => v.split(',').map(Number), [2048])
    .option('--windows <n>', 'windows per collection', Number, 1)
    .option('--limit-mb <n>', 'kill a measured process past this resident memory (and the limit auto decides against)', Number, 10240)
    .option('--dir <folder>', 'where the model is built (reused when present)', join(tmpdir(), 'lrp-bench-qwen-shaped'))
    .addOption(new Option('--execution <how>', 'the LRP relevance pass').choices(EXECUTION_CHOICES).default('auto'))
    .option('--json <out>', 'write the results as JSON')
    .action(async (o: { seqLen: number[]; windows: number; limitMb: number; dir: string; execution: ExecutionChoice; json?: string }) => {
      const rows = await benchLongCollection(o);
      console.log(longCollectionTable(rows));
      if (o.json) {
        mkdirSync(dirname(resolve(o.json)), { recursive: true });
        writeFileSync(
          o.json,
          JSON.stringify({ date: new Date().toISOString(), model: QWEN_SHAPED, limitMB: o.limitMb, rows }, null, 2) + '\n',
        );
      }
    });
  program
    .command('long-collect-run', { hidden: true })
    .requiredOption('--onnx <file>')
    .addOption(new Option('--method <m>').choices(['lrp', 'wanda']).makeOptionMandatory())
    .requiredOption('--seq <n>', 'window length', Number)
    .requiredOption('--windows <n>', 'windows', Number)
    .requiredOption('--limit-mb <n>', 'memory limit', Number)
    .option('--execution <how>', 'the relevance pass', 'auto')
    .action(collectChild);
}
