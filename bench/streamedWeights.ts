/**
 * `node dist/bench.js streamed` (and a section of `npm run bench` with `--streamed`): weights read per block on a
 * ~3B Llama-shaped fp16 model with external data (the openllama-3B shape: hidden 3200, 26 layers, 32 heads, MLP
 * 8640, vocab 32000; random weights), whose float32 weights (≈ 12.8 GB) are more than this benchmark lets a
 * process hold. Per length: a plain onnxruntime forward of the fp16 model and the block-wise attribution with
 * streamed weights, each in its own child process under the memory watchdog (load, compile and one run,
 * whole-process peak RSS). The model is built into a temporary folder (≈ 6.4 GB) and deleted afterwards.
 */
import type { Command } from 'commander';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LrpLensError } from '../src/engine/errors';
import { markdownTable } from '../src/cli/common';
import { peakRssMB } from '../src/cli/peakRss';
import { underWatchdog } from './blockwise';

export const LLAMA_3B_SHAPED = {
  layers: 26,
  hidden: 3200,
  heads: 32,
  ffn: 8640,
  vocab: 32000,
  maxPositions: 2048,
  dtype: 'float32' as const,
  seed: 11,
  tiedEmbeddings: false,
  initStd: 0.02,
};

type Subject = 'forward' | 'streamed';

interface StreamedChild {
  runMs: number;
  loadMs: number;
  peakRssMB: number;
  /** Streamed subject: the store's figures (float32 bytes). */
  weightBytes?: number;
  maxHeldBytes?: number;
  largestSegmentBytes?: number;
  /** Of the run: reading and converting weights. */
  readMs?: number;
  streaming?: string;
}

export interface StreamedRow extends Partial<StreamedChild> {
  subject: Subject;
  seqLen: number;
  killedAtMB?: number;
  error?: string;
}

const FLOAT16 = 10;

/** Child entry: the fp16 model, each weight converted and appended to model.onnx_data as it is made. */
async function buildModel(o: { out: string }): Promise<void> {
  const { buildLlamaLike } = await import('../test/fixtures/torchExports');
  const { float32ToFloat16, toHalf } = await import('../test/fixtures/exportVariants');
  const { externalTensor } = await import('../src/engine/onnx/externalData');
  const { writeModel } = await import('../src/engine/onnx/io');
  mkdirSync(o.out, { recursive: true });
  const fd = openSync(join(o.out, 'model.onnx_data'), 'w');
  let offset = 0;
  try {
    const graph = buildLlamaLike({
      ...LLAMA_3B_SHAPED,
      weightSink: (name, dims, data) => {
        const half = new Uint16Array(data.length);
        for (let i = 0; i < data.length; i++) half[i] = float32ToFloat16(data[i]);
        const bytes = new Uint8Array(half.buffer);
        writeSync(fd, bytes, 0, bytes.length, offset);
        const t = externalTensor({ name, dims, dataType: FLOAT16 }, 'model.onnx_data', offset, bytes.length);
        offset += bytes.length;
        return t;
      },
    });
    // The small float constants, Casts, inputs and outputs: fp16 as an fp16 export has them (weights already are).
    writeModel(toHalf(graph), join(o.out, 'model.onnx'));
  } finally {
    closeSync(fd);
  }
  process.stdout.write(String(offset));
}

/** Child entry: load (and compile), then one timed run. */
async function runChild(o: { onnx: string; subject: Subject; seq: number }): Promise<void> {
  const { Session } = await import('../src/engine/runtime/session');
  const { causalLmFeeds, inputSpecs, seedFeeds } = await import('../src/engine/runtime/feeds');
  const { readModel } = await import('../src/engine/onnx/io');
  const ids = Array.from({ length: o.seq }, (_, i) => 1 + ((i * 7919) % 31000));
  const batch = { ids: [ids], mask: [ids.map(() => 1)] };
  const t0 = performance.now();
  let result: Omit<StreamedChild, 'runMs' | 'loadMs' | 'peakRssMB'> = {};
  let run: () => Promise<unknown>;
  if (o.subject === 'forward') {
    const session = await Session.create(o.onnx);
    const feeds = causalLmFeeds(inputSpecs(readModel(o.onnx).inputs), batch);
    run = () => session.run(feeds, ['logits']);
  } else {
    const { BlockwiseRunner, compileBlockwise } = await import('../src/engine/runtime/blockwise');
    const compiled = await compileBlockwise(readModel(o.onnx), { mode: 'attnlrp' });
    if (!compiled.ok) throw new Error(compiled.reason);
    const runner = await BlockwiseRunner.create(compiled, { streamWeights: true });
    const seed = seedFeeds('float32', [1, o.seq], {
      targetIds: ids.map(() => -1),
      targetWeights: ids.map((_, i) => (i === o.seq - 1 ? 1 : 0)),
    });
    const feeds = { ...causalLmFeeds(compiled.info.inputs, batch), ...seed };
    const store = compiled.weights;
    const segmentBytes = compiled.plan.backward.map((g) =>
      (g?.inputs ?? []).filter((i) => i.from.kind === 'weight').reduce((n, i) => n + store.bytesOf(i.from.name), 0),
    );
    run = async () => {
      await runner.run(feeds);
      result = {
        weightBytes: store.bytes,
        maxHeldBytes: store.maxHeldBytes,
        largestSegmentBytes: Math.max(...segmentBytes),
        readMs: store.readMs,
        streaming: runner.weightStreaming.reason,
      };
    };
  }
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  await run();
  const out: StreamedChild = { runMs: performance.now() - t1, loadMs, peakRssMB: peakRssMB(), ...result };
  process.stdout.write(JSON.stringify(out));
}

export async function benchStreamed(o: {
  seqLen: number[];
  limitMb: number;
  dir: string;
  keep?: boolean;
  subjects?: Subject[];
}): Promise<StreamedRow[]> {
  const onnx = join(o.dir, 'model.onnx');
  const rows: StreamedRow[] = [];
  try {
    if (!existsSync(onnx) || !existsSync(`${onnx}_data`)) {
      const built = await underWatchdog(['streamed-build', '--out', o.dir], Math.min(o.limitMb, 4096));
      if (!('stdout' in built)) throw new LrpLensError('runtime-failure', `Building the 3B-shaped model failed: ${JSON.stringify(built)}`);
    }
    for (const seq of o.seqLen) {
      for (const subject of o.subjects ?? (['forward', 'streamed'] as Subject[])) {
        const w = await underWatchdog(['streamed-run', '--onnx', onnx, '--subject', subject, '--seq', String(seq)], o.limitMb);
        const r = 'stdout' in w ? (JSON.parse(w.stdout) as StreamedChild) : w;
        rows.push({ subject, seqLen: seq, ...r });
        console.error(`${subject} @ ${seq}: ${JSON.stringify(r)}`);
      }
    }
  } finally {
    if (!o.keep) rmSync(o.dir, { recursive: true, force: true });
  }
  return rows;
}

const gb = (mb: number | undefined) => (mb === undefined ? '—' : `${(mb / 1024).toFixed(2)} GB`);

export function streamedTable(rows: StreamedRow[]): string {
  const seqs = [...new Set(rows.map((r) => r.seqLen))];
  const cell = (r: StreamedRow | undefined, f: (r: StreamedRow) => string) =>
    !r ? '—' : r.killedAtMB ? `killed at ${(r.killedAtMB / 1024).toFixed(0)} GB` : r.error ? `failed: ${r.error.slice(0, 80)}` : f(r);
  const body = seqs.map((seq) => {
    const f = rows.find((r) => r.seqLen === seq && r.subject === 'forward');
    const s = rows.find((r) => r.seqLen === seq && r.subject === 'streamed');
    const mb = (b: number | undefined) => (b === undefined ? undefined : b / 2 ** 20);
    return [
      String(seq),
      cell(f, (r) => `${gb(r.peakRssMB)}, ${(r.runMs! / 1000).toFixed(1)} s`),
      cell(s, (r) => gb(r.peakRssMB)),
      cell(s, (r) => `${(r.loadMs! / 1000).toFixed(1)} s + ${(r.runMs! / 1000).toFixed(1)} s (${(r.readMs! / 1000).toFixed(1)} s reading)`),
      cell(s, (r) => gb(mb(r.weightBytes))),
      cell(s, (r) => gb(mb(r.largestSegmentBytes))),
      cell(s, (r) => gb(mb(r.maxHeldBytes))),
    ];
  });
  return markdownTable(
    [
      'tokens',
      'fp16 forward (RSS, run)',
      'streamed RSS',
      'streamed load + run (of which reading weights)',
      'fp32 weights',
      'largest block fp32',
      'held at once',
    ],
    body,
  );
}

export function registerBenchStreamed(program: Command): void {
  program
    .command('streamed')
    .description('weights read per block: block-wise attribution of a ~3B Llama-shaped fp16 model (external data) vs a plain forward')
    .option('--seq-len <list>', 'sequence lengths', (v: string) => v.split(',').map(Number), [128, 512])
    .option('--limit-mb <n>', 'kill a measured process past this resident memory', Number, 14336)
    .option('--dir <folder>', 'where the model is built (deleted afterwards unless --keep)', join(tmpdir(), 'lrp-bench-llama-3b-fp16'))
    .option('--keep', 'keep the built model')
    .option('--subjects <list>', 'forward, streamed', (v: string) => v.split(','), ['forward', 'streamed'])
    .option('--json <out>', 'write the results as JSON')
    .action(async (o: { seqLen: number[]; limitMb: number; dir: string; keep?: boolean; subjects: Subject[]; json?: string }) => {
      const rows = await benchStreamed(o);
      console.log(streamedTable(rows));
      if (o.json) {
        mkdirSync(dirname(resolve(o.json)), { recursive: true });
        writeFileSync(
          o.json,
          JSON.stringify({ date: new Date().toISOString(), model: LLAMA_3B_SHAPED, limitMB: o.limitMb, rows }, null, 2) + '\n',
        );
      }
    });
  program.command('streamed-build', { hidden: true }).requiredOption('--out <dir>').action(buildModel);
  program
    .command('streamed-run', { hidden: true })
    .requiredOption('--onnx <file>')
    .requiredOption('--subject <subject>')
    .requiredOption('--seq <n>', 'sequence length', Number)
    .action(runChild);
}
