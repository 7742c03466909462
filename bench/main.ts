#!/usr/bin/env node
/**
 * The engine's benchmarks (`npm run bench`, bundled to dist/bench.js): plain forward vs attribution, side by side in
 * one run, then the pruning benchmarks (bench/pruning.ts). Each measurement runs in its own child process (this
 * script again, same session options) so peak RSS belongs to that measurement alone.
 */
import { Command, Option } from 'commander';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LrpLensError } from '../src/engine/errors';
import { compileGraph } from '../src/engine/runtime/compile';
import { readModel, writeModel, writeModelReferencingSource, writeModelWithExternalData } from '../src/engine/onnx/io';
import { resolveModel } from '../src/engine/runtime/model';
import { Session } from '../src/engine/runtime/session';
import { causalLmFeeds, inputSpecs, seedFeeds } from '../src/engine/runtime/feeds';
import type { Graph } from '../src/engine/onnx/graph';
import { peakRssMB } from '../src/cli/peakRss';
import { benchCircuit, benchCollection, benchQuality, circuitTable, collectionTable, qualityTable, registerBenchCollect } from './pruning';
import { markdownTable } from '../src/cli/common';
import { runBenchChild } from './child';
import { BLOCKWISE_RUNS, benchBlockwise, blockwiseTable, registerBenchBlockwise } from './blockwise';
import { benchStreamed, registerBenchStreamed, streamedTable, type StreamedRow } from './streamedWeights';
import type { BlockwiseBenchRow } from './blockwise';
import { benchLongCollection, longCollectionTable, registerBenchLongCollection } from './longCollection';
import type { LongCollectionRow } from './longCollection';
import { benchCircuitGeneralisation, generalisationTable } from './circuitGeneralisation';
import { benchLargeAttribution, largeAttributionTable, type LargeAttributionRow } from './largeAttribution';
import type { CircuitBenchRow, CollectionRow, QualityBench } from './pruning';
import { loadTokenizer } from '../src/engine/runtime/model';
import { splitDocuments, tokenStream, windows } from '../src/engine/eval/textData';
import { dimsFromConfig, estimateMemory } from '../src/engine/memory/memoryEstimate';
import type { ModelDims } from '../src/engine/memory/memoryEstimate';
import { readFileSync } from 'node:fs';

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
  /** The memory guard's estimate of the attribution run's peak (MB), beside the measured one. */
  estimateMB: number | null;
}

interface RunStats {
  medianMs: number;
  maxRssMB: number;
}

/** Child-process entry: load one model, run it `reps` times at the given length, report median and peak RSS. */
async function benchRun(o: { onnx: string; kind: 'forward' | 'attribution'; seq: number; reps: number }): Promise<void> {
  const session = await Session.create(o.onnx);
  const { Graph: G } = await import('../src/engine/onnx/graph');
  const { decodeModel } = await import('../src/engine/onnx/io');
  const { readFileSync } = await import('node:fs');
  const graph: Graph = new G(decodeModel(readFileSync(o.onnx)));
  const specs = inputSpecs(graph.inputs);
  const ids = Array.from({ length: o.seq }, (_, i) => 1 + ((i * 7) % 250));
  const feeds = causalLmFeeds(specs, { ids: [ids], mask: [ids.map(() => 1)] });
  if (o.kind === 'attribution') {
    const last = ids.map((_, i) => (i === ids.length - 1 ? 1 : 0));
    Object.assign(feeds, seedFeeds('float32', [1, o.seq], { targetIds: ids.map(() => -1), targetWeights: last }));
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
  const stats: RunStats = { medianMs: times[Math.floor(times.length / 2)], maxRssMB: peakRssMB() };
  process.stdout.write(JSON.stringify(stats));
}

function measure(onnx: string, kind: 'forward' | 'attribution', seq: number, reps: number): RunStats {
  return runBenchChild<RunStats>(
    ['run', '--onnx', onnx, '--kind', kind, '--seq', String(seq), '--reps', String(reps)],
    `Benchmark run failed (${kind}, seq ${seq})`,
  );
}

function paramCount(g: Graph): number {
  let n = 0;
  for (const t of g.initializers.values()) n += (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1);
  return n;
}

async function benchModel(
  name: string,
  graph: Graph,
  originalPath: string,
  seqLens: number[],
  reps: number,
  work: string,
  dims?: ModelDims,
): Promise<BenchRow[]> {
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
      estimateMB: dims ? estimateMemory(dims, { tokens: seqLen, batch: 1 }).bytes / 2 ** 20 : null,
    };
  });
}

interface LargeCompileRow {
  params: number;
  weightsBytes: number;
  compileMs: number;
  peakRssMB: number;
}

/**
 * A TinyLlama-shaped model (≈1.1B parameters) written with its weights in model.onnx_data, then compiled by
 * `lrp-lens compile` in a child process: compile time and that process's peak RSS.
 */
function benchLargeCompile(work: string): LargeCompileRow {
  const dir = join(work, 'llama-1b');
  const built = spawnSync(process.execPath, ['--max-old-space-size=8192', process.argv[1], 'build-large', '--out', dir], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (built.status !== 0) throw new LrpLensError('runtime-failure', `Building the 1B model failed: ${built.stderr.trim()}`);
  const params = Number(built.stdout.trim());
  const t0 = performance.now();
  const res = spawnSync(process.execPath, [productCli(), 'compile', '--model', dir, '--out', join(dir, 'out', 'relevance.onnx')], {
    encoding: 'utf8',
  });
  const compileMs = performance.now() - t0;
  if (res.status !== 0) throw new LrpLensError('runtime-failure', `Compiling the 1B model failed: ${res.stderr.trim()}`);
  const peak = Number(/peak RSS (\d+) MB/.exec(res.stdout)?.[1] ?? NaN);
  return { params, weightsBytes: statSync(join(dir, 'onnx', 'model.onnx_data')).size, compileMs, peakRssMB: peak };
}

/** Child-process entry: build the large model one layer at a time into model.onnx + model.onnx_data. */
async function buildLarge(o: { out: string }): Promise<void> {
  const { buildLlamaLike } = await import('../test/fixtures/torchExports');
  const cfg = {
    layers: 22,
    hidden: 2048,
    heads: 32,
    kvHeads: 4,
    ffn: 5632,
    vocab: 32000,
    maxPositions: 2048,
    dtype: 'float32' as const,
    seed: 1,
  };
  mkdirSync(join(o.out, 'onnx'), { recursive: true });
  const graph = buildLlamaLike(cfg);
  writeModelWithExternalData(graph, join(o.out, 'onnx', 'model.onnx'), 'model.onnx_data');
  writeFileSync(
    join(o.out, 'config.json'),
    JSON.stringify({
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      num_hidden_layers: cfg.layers,
      hidden_size: cfg.hidden,
      num_attention_heads: cfg.heads,
      num_key_value_heads: cfg.kvHeads,
      intermediate_size: cfg.ffn,
      vocab_size: cfg.vocab,
      max_position_embeddings: cfg.maxPositions,
      tie_word_embeddings: false,
    }),
  );
  copyLlamaTokenizer(o.out);
  process.stdout.write(String(paramCount(graph)));
}

/** `lrp-lens attribute` loads a tokenizer even for --ids: the shared Llama-2 one (vocab 32000) fits the large model. */
function copyLlamaTokenizer(out: string): void {
  const from = resolve(__dirname, '..', '..', 'shared', 'models', 'llama2-tokenizer');
  if (!existsSync(from)) {
    writeFileSync(join(out, 'tokenizer.json'), '{}'); // enough for compile; attribution reports its failure
    return;
  }
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(from, f), join(out, f));
}

function table(rows: BenchRow[]): string {
  const head = [
    'model',
    'params',
    'seq',
    'compile s',
    'forward ms',
    'attrib ms',
    'time ×',
    'fwd RSS MB',
    'attr RSS MB',
    'RSS ×',
    'estimate MB',
    'est ÷ meas',
  ];
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
    r.estimateMB === null ? '-' : r.estimateMB.toFixed(0),
    r.estimateMB === null ? '-' : (r.estimateMB / r.attributionRssMB).toFixed(2),
  ]);
  return markdownTable(head, body);
}

/** The bundled product CLI beside this script (dist/cli.js): the large model is compiled as users compile it. */
function productCli(): string {
  const cli = join(__dirname, 'cli.js');
  if (!existsSync(cli)) throw new LrpLensError('runtime-failure', `${cli} is missing: run \`npm run build\` first.`);
  return cli;
}

function buildBenchProgram(): Command {
  const program = new Command('lrp-lens-bench').description('LRP Lens benchmarks: tables on stdout, JSON with --json').exitOverride();
  program
    .command('all', { isDefault: true })
    .description(
      'plain forward vs attribution (time, peak RSS, compile time, their ratios), pruning statistics, circuit search, pruning quality, a ~1B-parameter compile',
    )
    .option('--model <folder|hub-id...>', 'models to measure (default: ../shared stories260k when present)')
    .option('--synthetic', 'also build and measure a ~124M-parameter GPT-2-shaped model', true)
    .option('--no-synthetic', 'skip the synthetic 124M model')
    .option('--seq-len <list>', 'sequence lengths', (v: string) => v.split(',').map(Number), [128, 512])
    .option('--reps <n>', 'timed runs per measurement (median reported)', Number, 3)
    .option('--json <out>', 'write the results as JSON')
    .option('--no-large', 'skip the ~1B-parameter model with external data (compile, attribution)')
    .option('--no-pruning', 'skip the pruning benchmarks (collection cost)')
    .option(
      '--blockwise <list>',
      'lengths for block-wise attribution on a Qwen2-0.5B-shaped model (bench/blockwise.ts)',
      (v: string) => v.split(',').map(Number),
      [512, 2048],
    )
    .option('--no-blockwise', 'skip the block-wise benchmark')
    .option(
      '--long-collect <list>',
      'window lengths for pruning statistics (LRP vs Wanda) on the Qwen2-0.5B-shaped model (bench/longCollection.ts)',
      (v: string) => v.split(',').map(Number),
      [2048],
    )
    .option('--no-long-collect', 'skip the long-window pruning statistics')
    .option(
      '--streamed <list>',
      'lengths for block-wise attribution with weights read per block on a ~3B fp16 model (bench/streamedWeights.ts)',
      (v: string) => v.split(',').map(Number),
      [512],
    )
    .option('--no-streamed', 'skip the weights-per-block benchmark (it builds a 6.4 GB model)')
    .action(
      async (o: {
        model?: string[];
        synthetic: boolean;
        large: boolean;
        pruning: boolean;
        blockwise: number[] | false;
        longCollect: number[] | false;
        streamed: number[] | false;
        seqLen: number[];
        reps: number;
        json?: string;
      }) => {
        const work = mkdtempSync(join(tmpdir(), 'lrp-bench-'));
        const rows: BenchRow[] = [];
        const collection: CollectionRow[] = [];
        const circuits: CircuitBenchRow[] = [];
        let quality: QualityBench | undefined;
        let generalisation: Awaited<ReturnType<typeof benchCircuitGeneralisation>> | undefined;
        let large: LargeCompileRow | undefined;
        let largeAttribution: LargeAttributionRow[] | undefined;
        let blockwise: BlockwiseBenchRow[] | undefined;
        let longCollection: LongCollectionRow[] | undefined;
        let streamed: StreamedRow[] | undefined;
        try {
          const shared = resolve(__dirname, '..', '..', 'shared', 'models', 'stories260k');
          const models = o.model ?? (existsSync(shared) ? [shared] : []);
          for (const ref of models) {
            const m = await resolveModel(ref);
            const name = m.ref.split('/').pop() ?? m.ref;
            rows.push(...(await benchModel(name, readModel(m.onnxPath), m.onnxPath, o.seqLen, o.reps, work, dimsFromConfig(m.config))));
            console.log(table(rows));
            if (o.pruning) collection.push(benchCollection(name, m.onnxPath, ...(await referenceSamples(m, work))));
            if (o.pruning && name === 'stories260k') circuits.push(await benchCircuit(m.dir));
            if (o.pruning && name === 'stories260k') generalisation = await benchCircuitGeneralisation(m.dir);
            const text = resolve(__dirname, '..', '..', 'shared', 'data', 'tinystories-sample.txt');
            if (o.pruning && name === 'stories260k' && existsSync(text)) quality = await benchQuality(m.dir, text);
          }
          if (o.synthetic) {
            const { buildGpt2Like, gpt2Small124M } = await import('../test/fixtures/torchExports');
            const cfg = gpt2Small124M();
            const graph = buildGpt2Like(cfg);
            const path = join(work, 'gpt2-124m.onnx');
            writeModel(graph, path);
            const dims = { ...cfg, kvHeads: cfg.heads, gated: false, tied: cfg.tiedEmbeddings !== false };
            rows.push(...(await benchModel('gpt2-shaped-124M', graph, path, o.seqLen, o.reps, work, dims)));
            if (o.pruning) collection.push(benchCollection('gpt2-shaped-124M', path, ...randomSamples(8, 128, work)));
          }
          if (o.large) {
            large = benchLargeCompile(work);
            largeAttribution = await benchLargeAttribution({
              dir: join(work, 'llama-1b'),
              cli: productCli(),
              seqLen: o.seqLen,
              limitMb: 16384,
            });
          }
          if (o.blockwise)
            blockwise = await benchBlockwise({
              seqLen: o.blockwise,
              monolithic: [512],
              limitMb: 16384,
              dir: join(work, 'qwen-shaped'),
              runs: BLOCKWISE_RUNS,
            });
          if (o.longCollect)
            longCollection = await benchLongCollection({
              seqLen: o.longCollect,
              windows: 1,
              limitMb: 10240,
              dir: join(work, 'qwen-shaped'),
            });
          if (o.streamed) streamed = await benchStreamed({ seqLen: o.streamed, limitMb: 14336, dir: join(work, 'llama-3b-fp16') });
        } finally {
          rmSync(work, { recursive: true, force: true });
        }
        console.log(table(rows));
        if (collection.length)
          console.log(
            `\npruning statistics, LRP weight relevance (${'abs-tokens'}) vs Wanda's activation norms, same samples:\n${collectionTable(collection)}`,
          );
        if (quality) {
          console.log(
            `\npruning quality, stories260k (reference: first 6 stories, evaluation: last 3; row-wise; dense perplexity ${quality.dense.toFixed(3)}):\n${qualityTable(quality)}`,
          );
          console.log(`LRP ÷ Wanda perplexity at 50%: ${quality.lrpOverWandaAt50.toFixed(3)} (target ≤ 1.0; the paper: 1.029)`);
        }
        if (circuits.length)
          console.log(
            `\ncircuit search (LRP, neurons, global; masks fed to one session, nothing recompiled per sparsity):\n${circuitTable(circuits)}`,
          );
        if (generalisation)
          console.log(
            `\ncircuit generalisation, stories260k pronoun task (found on some templates, chosen on held-out templates at ≥ 80% kept; mean ± sd over 5 seeds):\n${generalisationTable(generalisation.rows)}`,
          );
        if (large) {
          console.log(
            `\ncompile of a ${(large.params / 1e9).toFixed(2)}B-parameter Llama-shaped model with external data (${(large.weightsBytes / 2 ** 30).toFixed(2)} GiB): ` +
              `${(large.compileMs / 1000).toFixed(2)} s, peak RSS ${large.peakRssMB.toFixed(0)} MB (targets < 10 s, < 1024 MB)`,
          );
        }
        if (largeAttribution)
          console.log(
            `\nattribution on the same ~1.1B model (lrp-lens attribute, no cache: compile included) vs a plain onnxruntime forward, whole process, one run each, killed past 16 GB:\n${largeAttributionTable(largeAttribution)}`,
          );
        if (blockwise)
          console.log(
            `\nblock-wise attribution, Qwen2-0.5B-shaped (387M, external data), whole process, fastest of 2 runs, killed past 16 GB:\n${blockwiseTable(blockwise)}`,
          );
        if (longCollection)
          console.log(
            `\npruning statistics on long windows, Qwen2-0.5B-shaped (387M, external data): LRP weight relevance (auto execution) vs Wanda, whole process, one run, killed past 10 GB:\n${longCollectionTable(longCollection)}`,
          );
        if (streamed)
          console.log(
            `\nweights read per block, ~3B Llama-shaped fp16 model (external data), block-wise attribution with streamed weights vs a plain forward, whole process, killed past 14 GB:\n${streamedTable(streamed)}`,
          );
        if (o.json) {
          mkdirSync(dirname(resolve(o.json)), { recursive: true });
          writeFileSync(
            o.json,
            JSON.stringify(
              {
                date: new Date().toISOString(),
                node: process.version,
                rows,
                collection,
                circuits,
                generalisation,
                quality,
                largeCompile: large,
                largeAttribution,
                blockwise,
                longCollection,
                streamed,
              },
              null,
              2,
            ) + '\n',
          );
          console.log(`wrote ${o.json}`);
        }
      },
    );

  registerBenchCollect(program);
  registerBenchBlockwise(program);
  registerBenchLongCollection(program);
  registerBenchStreamed(program);
  program.command('build-large', { hidden: true }).requiredOption('--out <dir>').action(buildLarge);

  program
    .command('run', { hidden: true })
    .requiredOption('--onnx <file>')
    .addOption(new Option('--kind <kind>').choices(['forward', 'attribution']).makeOptionMandatory())
    .requiredOption('--seq <n>', 'sequence length', Number)
    .option('--reps <n>', 'timed runs', Number, 3)
    .action(benchRun);
  return program;
}

/** Reference samples for collection benchmarks: the shared TinyStories sample in 128-token windows. */
async function referenceSamples(m: Awaited<ReturnType<typeof resolveModel>>, work: string): Promise<[string, number[][]]> {
  const text = resolve(__dirname, '..', '..', 'shared', 'data', 'tinystories-sample.txt');
  const tokenizer = await loadTokenizer(m);
  const samples = existsSync(text)
    ? windows(tokenStream(splitDocuments(readFileSync(text, 'utf8')), tokenizer), 128)
    : randomSamples(16, 128, work)[1];
  const file = join(work, 'samples.json');
  writeFileSync(file, JSON.stringify(samples));
  return [file, samples];
}

function randomSamples(n: number, len: number, work: string): [string, number[][]] {
  const samples = Array.from({ length: n }, (_, s) => Array.from({ length: len }, (_, i) => 1 + ((i * 7 + s * 13) % 250)));
  const file = join(work, `random-${n}x${len}.json`);
  writeFileSync(file, JSON.stringify(samples));
  return [file, samples];
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildBenchProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code?.startsWith('commander.')) return e.exitCode ?? 2;
    console.error(`error: ${e.message ?? String(err)}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
