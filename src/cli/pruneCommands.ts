/** `lrp-lens prune | eval | compare | export`: attribution-guided pruning from the command line. */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { basename, dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { LrpLensError } from '../engine/errors';
import type { Device } from '../engine/runtime/session';
import { PruningSession, sweep } from '../engine/pruning/prune';
import type { SweepPoint } from '../engine/pruning/prune';
import { parseWeightSelection } from '../engine/pruning/prunable';
import { checkAggregation, checkMethod, DEFAULT_AGGREGATION } from '../engine/pruning/scores';
import type { LrpAggregation, ScoreMethod } from '../engine/pruning/scores';
import { loadMask, modelIdentity, saveMask } from '../engine/pruning/maskFile';
import { exportPrunedModel } from '../engine/pruning/export';
import { loadStatistics, mergeStored, saveStatistics, shardOf } from '../engine/pruning/statisticsFile';
import type { Allocation } from '../engine/pruning/types';
import { readTextFile } from '../engine/eval/textData';
import { defaultModel, writeJson } from './common';
import { markdownTable } from './benchPruning';

function sparsityList(v: string): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.some((s) => !Number.isFinite(s) || s < 0 || s >= 1)) throw new InvalidArgumentError(`'${v}': sparsities are numbers in [0, 1), e.g. 0.5 or 0.3,0.5,0.7.`);
  return list;
}

/** `lrp`, `lrp:abs-total`, `wanda`, … → method and aggregation. */
function methodSpec(spec: string): { method: ScoreMethod; aggregation?: LrpAggregation; label: string } {
  const [m, agg] = spec.split(':');
  const method = checkMethod(m.trim());
  if (agg !== undefined && method !== 'lrp') throw new LrpLensError('bad-argument', `Only lrp takes an aggregation ('${spec}').`);
  const aggregation = method === 'lrp' ? checkAggregation((agg ?? DEFAULT_AGGREGATION).trim()) : undefined;
  return { method, aggregation, label: aggregation && agg !== undefined ? `${method}:${aggregation}` : method };
}

interface CommonOptions {
  model: string;
  device: Device;
  layers?: string;
  lmHead?: boolean;
  reference?: string;
  samples?: number;
  seqLen: number;
  eval?: string;
  evalSeqLen: number;
  allocation: Allocation;
  structured?: boolean;
  seed: number;
}

async function open(o: CommonOptions): Promise<PruningSession> {
  return PruningSession.open({ model: o.model, device: o.device, selection: parseWeightSelection(o.layers, o.lmHead) });
}

function referenceOf(session: PruningSession, method: ScoreMethod, o: CommonOptions) {
  if (method === 'magnitude' || method === 'random') return undefined;
  if (!o.reference) throw new LrpLensError('bad-argument', `The ${method} method needs reference text: pass --reference FILE (plain text or *.prompts.jsonl).`);
  return session.samples(o.reference, { samples: o.samples, seqLen: o.seqLen }, 'reference');
}

function evalWindowsOf(session: PruningSession, o: CommonOptions) {
  return o.eval ? session.samples(o.eval, { seqLen: o.evalSeqLen }, 'evaluation') : undefined;
}

function maskPathFor(out: string, sparsity: number, many: boolean): string {
  const base = resolve(out).replace(/\.(safetensors|json)$/, '');
  return many ? `${base}-s${Math.round(sparsity * 100)}` : base;
}

interface PruneOptions extends CommonOptions {
  method: string;
  aggregation?: string;
  sparsity?: number[];
  prompts?: string;
  generationTokens: number;
  out?: string;
  json?: string;
  shard?: string;
  statsOut?: string;
  stats?: string;
}

/** Statistics from a merged file (checked against the model and method), or collected on the reference (shard). */
async function statisticsFor(session: PruningSession, spec: ReturnType<typeof methodSpec>, o: PruneOptions, modelHash: string) {
  if (o.stats) {
    const stored = loadStatistics(o.stats);
    if (stored.provenance.model !== modelHash) throw new LrpLensError('bad-argument', `${o.stats} was computed on another model (${stored.provenance.model}, this one is ${modelHash}). Collect statistics for this model.`);
    if (stored.stats.method !== spec.method || (stored.stats.aggregation ?? null) !== (spec.aggregation ?? null)) {
      throw new LrpLensError('bad-argument', `${o.stats} holds ${stored.stats.method}${stored.stats.aggregation ? `:${stored.stats.aggregation}` : ''} statistics; pass the same --method (and --aggregation).`);
    }
    return { stats: stored.stats, reference: { source: o.stats, hash: stored.provenance.reference, samples: stored.stats.samples }, collectMs: 0 };
  }
  const reference = referenceOf(session, spec.method, o);
  const shard = o.shard ? shardOf(reference?.samples ?? [], o.shard) : undefined;
  const t0 = performance.now();
  const stats = await session.statistics(spec.method, shard?.part ?? reference?.samples ?? [], { aggregation: spec.aggregation });
  const collectMs = performance.now() - t0;
  if (o.statsOut) {
    mkdirSync(dirname(resolve(o.statsOut)), { recursive: true });
    saveStatistics(o.statsOut, { stats, provenance: { model: modelHash, reference: reference?.hash ?? '', shards: [shard?.index ?? 0], of: shard?.of ?? 1 } });
  }
  return { stats, reference: reference ? { source: reference.source, hash: reference.hash, samples: stats.samples } : undefined, collectMs };
}

async function prune(o: PruneOptions): Promise<void> {
  const spec = methodSpec(o.aggregation ? `${o.method}:${o.aggregation}` : o.method);
  if (!o.out && !o.statsOut) throw new LrpLensError('bad-argument', 'Give --out MASK (and --sparsity), or --stats-out FILE to only collect statistics (e.g. for one --shard).');
  if (o.out && !o.sparsity) throw new LrpLensError('bad-argument', 'Give --sparsity (a fraction or a list) for the mask.');
  if (o.shard && !o.statsOut) throw new LrpLensError('bad-argument', 'A --shard collects part of the statistics: pass --stats-out FILE, then merge the shards with lrp-lens merge.');
  const session = await open(o);
  try {
    const identity = modelIdentity(session.folder.onnxPath, session.folder.ref);
    const { stats, reference, collectMs } = await statisticsFor(session, spec, o, identity.contentHash);
    if (!o.out) {
      console.log(`wrote ${o.statsOut}: ${spec.label} statistics over ${stats.samples} samples (${stats.tokens} tokens) in ${(collectMs / 1000).toFixed(2)} s`);
      return;
    }
    const evaluation = evalWindowsOf(session, o);
    const prompts = o.prompts ? readTextFile(o.prompts, 'prompts').split('\n').map((l) => l.trim()).filter(Boolean) : undefined;
    const dense = evaluation ? (await session.perplexity(evaluation.samples)).perplexity : undefined;
    const denseGenerations = prompts ? await session.generations(prompts, o.generationTokens) : undefined;
    const sparsities = o.sparsity!;
    const points = await sweep(session, session.scores(stats, o.seed), sparsities, { allocation: o.allocation, structured: o.structured, evalWindows: evaluation?.samples, prompts, generationTokens: o.generationTokens });
    const written = points.map((p) => {
      const path = maskPathFor(o.out!, p.sparsity, sparsities.length > 1);
      mkdirSync(dirname(path), { recursive: true });
      saveMask(path, p.mask, {
        model: { id: session.folder.ref, contentHash: identity.contentHash },
        method: spec.label,
        allocation: o.allocation,
        structured: !!o.structured,
        targetSparsity: p.sparsity,
        weights: session.weights,
        reference: reference ? { name: reference.source, hash: `sha256:${reference.hash}`, samples: reference.samples, tokens: stats.tokens } : null,
        metrics: { perplexity: p.perplexity ?? null, densePerplexity: dense ?? null, evaluation: evaluation?.source ?? null },
        extra: { aggregation: spec.aggregation ?? null, seed: o.seed, generations: p.generations ?? null, denseGenerations: denseGenerations ?? null },
      });
      return `${path}.safetensors`;
    });
    const report = {
      schema: 'lrp-lens/prune@1',
      model: { ref: session.folder.ref, contentHash: identity.contentHash },
      method: spec.method,
      aggregation: spec.aggregation ?? null,
      allocation: o.allocation,
      structured: !!o.structured,
      weights: session.weights.length,
      reference: reference ? { path: reference.source, sha256: reference.hash, samples: reference.samples, tokens: stats.tokens } : null,
      evaluation: evaluation ? { path: evaluation.source, sha256: evaluation.hash, windows: evaluation.samples.length } : null,
      dense: { perplexity: dense ?? null, generations: denseGenerations ?? null },
      points: points.map((p, i) => ({ sparsity: p.sparsity, achieved: p.achieved, perplexity: p.perplexity ?? null, perLayer: p.perLayer, generations: p.generations ?? null, mask: written[i] })),
      timing: { collectMs },
    };
    if (o.json) writeJson(o.json, report);
    if (o.json !== '-') printPoints(spec.label, dense, points, written);
  } finally {
    await session.close();
  }
}

function printPoints(label: string, dense: number | undefined, points: SweepPoint[], written: string[]): void {
  if (dense !== undefined) console.log(`dense perplexity ${dense.toFixed(3)}`);
  console.log(markdownTable(['method', 'sparsity', 'achieved', 'perplexity', 'mask'], points.map((p, i) => [label, p.sparsity.toFixed(2), p.achieved.toFixed(4), p.perplexity?.toFixed(3) ?? '-', written[i]])));
}

interface CompareOptions extends CommonOptions {
  methods: string;
  sparsities: number[];
  json?: string;
}

async function compare(o: CompareOptions): Promise<void> {
  if (!o.eval) throw new LrpLensError('bad-argument', 'compare needs evaluation text: pass --eval FILE.');
  const specs = o.methods.split(',').map((m) => methodSpec(m));
  const session = await open(o);
  try {
    const evaluation = evalWindowsOf(session, o)!;
    const dense = (await session.perplexity(evaluation.samples)).perplexity;
    const results = [];
    for (const spec of specs) {
      const reference = referenceOf(session, spec.method, o);
      const t0 = performance.now();
      const stats = await session.statistics(spec.method, reference?.samples ?? [], { aggregation: spec.aggregation });
      const collectMs = performance.now() - t0;
      const points = await sweep(session, session.scores(stats, o.seed), o.sparsities, { allocation: o.allocation, structured: o.structured, evalWindows: evaluation.samples });
      results.push({ method: spec.label, collectMs, points: points.map((p) => ({ sparsity: p.sparsity, achieved: p.achieved, perplexity: p.perplexity! })) });
    }
    const report = {
      schema: 'lrp-lens/compare@1',
      model: session.folder.ref,
      allocation: o.allocation,
      structured: !!o.structured,
      reference: o.reference ?? null,
      evaluation: { path: evaluation.source, sha256: evaluation.hash, windows: evaluation.samples.length },
      dense: { perplexity: dense },
      methods: results,
    };
    if (o.json) writeJson(o.json, report);
    if (o.json !== '-') {
      console.log(`dense perplexity ${dense.toFixed(3)}`);
      console.log(markdownTable(['method', ...o.sparsities.map((s) => `${s}`), 'collect s'], results.map((r) => [r.method, ...r.points.map((p) => p.perplexity.toFixed(2)), (r.collectMs / 1000).toFixed(2)])));
    }
  } finally {
    await session.close();
  }
}

async function evaluate(o: { model: string; mask?: string; text: string; seqLen: number; device: Device; json?: string }): Promise<void> {
  const loaded = o.mask ? await maskForModel(o.model, o.mask) : undefined;
  const weights = loaded ? [...loaded.mask.keys()] : [];
  const session = await PruningSession.open({ model: o.model, device: o.device, selection: { names: weights } });
  try {
    const text = session.samples(o.text, { seqLen: o.seqLen }, 'evaluation');
    const result = await session.perplexity(text.samples, loaded?.mask);
    const report = { schema: 'lrp-lens/eval@1', model: session.folder.ref, mask: loaded ? loaded.paths.safetensors : null, text: o.text, seqLen: o.seqLen, ...result };
    if (o.json) writeJson(o.json, report);
    if (o.json !== '-') console.log(`perplexity ${result.perplexity.toFixed(4)} over ${result.tokens} tokens (${result.windows} windows of ≤ ${o.seqLen})${loaded ? ` with mask ${basename(loaded.paths.safetensors)}` : ''}`);
  } finally {
    await session.close();
  }
}

async function maskForModel(model: string, mask: string) {
  const { resolveModel } = await import('../engine/runtime/model');
  const folder = await resolveModel(model);
  return loadMask(mask, { model: modelIdentity(folder.onnxPath, folder.ref) });
}

async function exportModel(o: { model: string; mask: string; out: string; json?: string; overwrite?: boolean }): Promise<void> {
  const { resolveModel } = await import('../engine/runtime/model');
  const folder = await resolveModel(o.model);
  const loaded = loadMask(o.mask, { model: modelIdentity(folder.onnxPath, folder.ref) });
  const report = await exportPrunedModel(folder.dir, loaded.mask, o.out, { overwrite: o.overwrite });
  if (o.json) writeJson(o.json, { schema: 'lrp-lens/export@1', model: folder.ref, mask: loaded.paths.safetensors, ...report });
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;
  if (o.json !== '-') {
    console.log(`wrote ${report.dir}: ${report.prunedElements} of ${report.maskedElements} masked weights zeroed; folder ${mb(report.folderBytes)}, ` +
      `${mb(report.bitmaskFolderBytes)} if pruned weights were stored as bitmask + values, ${mb(report.csrFolderBytes)} as CSR`);
  }
}

function addCommon(c: Command): Command {
  return c
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .option('--reference <file>', 'reference text (plain text or *.prompts.jsonl)')
    .option('--samples <n>', 'at most this many reference samples', Number)
    .option('--seq-len <n>', 'reference window length in tokens', Number, 128)
    .option('--eval <file>', 'evaluation text for perplexity')
    .option('--eval-seq-len <n>', 'evaluation window length in tokens', Number, 128)
    .addOption(new Option('--allocation <a>', 'where the sparsity applies').choices(['row', 'layer', 'global']).default('row'))
    .option('--structured', 'prune whole output units (neurons = rows); with layer or global allocation')
    .option('--layers <spec>', 'which linear layers: kinds and/or block range, e.g. gate,up,down or 0-3 (default: all inside the blocks)')
    .option('--lm-head', 'also prune the LM head')
    .option('--seed <n>', 'seed of the random method', Number, 0);
}

export function registerPruning(program: Command): void {
  addCommon(program.command('prune').description('score weights on a reference set and write a mask (and a report)'))
    .option('--method <m>', 'lrp | wanda | magnitude | gradient | random (lrp:AGG picks an aggregation)', 'lrp')
    .option('--aggregation <a>', `lrp only: signed | abs-total | abs-tokens | abs-samples (default ${DEFAULT_AGGREGATION})`)
    .option('--sparsity <list>', 'fraction to prune, or a list (one mask each)', sparsityList)
    .option('--prompts <file>', 'prompts (one per line) to generate from before and after')
    .option('--generation-tokens <n>', 'greedy tokens per prompt', Number, 30)
    .option('--out <mask>', 'mask path (writes MASK.safetensors + MASK.json; -sNN suffixes for a list)')
    .option('--shard <i/n>', 'collect only the i-th of n contiguous parts of the reference (with --stats-out)')
    .option('--stats-out <file>', 'also write the collected statistics (additive sums) to this file')
    .option('--stats <file>', 'use merged statistics instead of collecting (lrp-lens merge)')
    .option('--json <out>', "write the report as JSON ('-' for stdout)")
    .action(prune);

  program
    .command('merge')
    .description('add statistics of reference shards (prune --shard i/n --stats-out F) into one file')
    .requiredOption('--stats <files...>', 'statistics files of one run')
    .requiredOption('--out <file>', 'the merged statistics file')
    .action((o: { stats: string[]; out: string }) => {
      const merged = mergeStored(o.stats.map(loadStatistics));
      saveStatistics(o.out, merged);
      console.log(`wrote ${o.out}: shards ${merged.provenance.shards.join(', ')} of ${merged.provenance.of}, ${merged.stats.samples} samples, ${merged.stats.tokens} tokens`);
    });

  addCommon(program.command('compare').description('perplexity vs sparsity for several methods on one reference and evaluation set'))
    .option('--methods <list>', 'methods, e.g. lrp,wanda,magnitude,random or lrp:signed,lrp:abs-tokens', 'lrp,wanda,magnitude,random')
    .option('--sparsities <list>', 'sparsities', sparsityList, [0.3, 0.5, 0.6, 0.7])
    .option('--json <out>', "write the table as JSON ('-' for stdout)")
    .action(compare);

  program
    .command('eval')
    .description('perplexity of the model, dense or with a mask, on a text file')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .option('--mask <mask>', 'a mask written by prune (MASK.safetensors or MASK.json)')
    .requiredOption('--text <file>', 'evaluation text')
    .option('--seq-len <n>', 'window length in tokens', Number, 128)
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .option('--json <out>', "write the result as JSON ('-' for stdout)")
    .action(evaluate);

  program
    .command('export')
    .description('write a pruned model folder (same layout, masked weights zeroed)')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .requiredOption('--mask <mask>', 'a mask written by prune')
    .requiredOption('--out <dir>', 'output folder')
    .option('--overwrite', 'replace an existing output folder')
    .option('--json <out>', "write the export report as JSON ('-' for stdout)")
    .action(exportModel);
}

