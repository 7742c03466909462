/** `lrp-lens prune | eval | compare | export`: attribution-guided pruning from the command line. */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { basename, isAbsolute, relative, resolve } from 'node:path';
import { checkOutputPaths, jsonOutput, maskOutputs, maskPair } from '../engine/outputPaths';
import type { NamedPath } from '../engine/outputPaths';
import { LrpLensError } from '../engine/errors';
import type { Device } from '../engine/runtime/session';
import { PruningSession, sweep } from '../engine/pruning/prune';
import { DEFAULT_AGGREGATION } from '../engine/pruning/scores';
import { loadMaskForModel } from '../engine/pruning/maskFile';
import { exportPrunedModel } from '../engine/pruning/export';
import { loadStatistics, mergeStored, saveStatistics } from '../engine/pruning/statisticsFile';
import type { Allocation } from '../engine/weights/types';
import {
  evalWindowsOf,
  isPruneReport,
  maskPathFor,
  methodSpec,
  openPruningSession,
  referenceOf,
  runPrune,
} from '../engine/pruning/pruneRun';
import type { PruneCommonOptions, PruneReport, PruneRunOptions } from '../engine/pruning/pruneRun';
import { defaultModel, markdownTable, writeJson } from './common';
import { progressDisplay } from './progressDisplay';
import { executionOption, logExecution } from './executionOption';

function sparsityList(v: string): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.some((s) => !Number.isFinite(s) || s < 0 || s >= 1))
    throw new InvalidArgumentError(`'${v}': sparsities are numbers in [0, 1), e.g. 0.5 or 0.3,0.5,0.7.`);
  return list;
}

interface CommonOptions extends PruneCommonOptions {
  device: Device;
  seqLen: number;
  evalSeqLen: number;
  allocation: Allocation;
  seed: number;
}

interface PruneOptions extends PruneRunOptions {
  json?: string;
}

/** Every file prune writes (masks, report, statistics) against each other and its inputs. */
function checkPruneOutputs(o: PruneOptions): void {
  const sparsities = o.sparsity ?? [];
  const masks = o.out
    ? sparsities.flatMap((s) =>
        maskOutputs(sparsities.length > 1 ? `--out at sparsity ${s}` : '--out', maskPathFor(o.out!, s, sparsities.length > 1)),
      )
    : [];
  checkOutputPaths(
    [...masks, ...jsonOutput(o.json), ...(o.statsOut ? [{ flag: '--stats-out', path: o.statsOut }] : [])],
    [
      o.reference ? { flag: '--reference', path: o.reference } : undefined,
      o.eval ? { flag: '--eval', path: o.eval } : undefined,
      o.prompts ? { flag: '--prompts', path: o.prompts } : undefined,
      o.stats ? { flag: '--stats', path: o.stats } : undefined,
    ],
  );
}

async function prune(o: PruneOptions): Promise<void> {
  checkPruneOutputs(o);
  const result = await runPrune(o, { onProgress: progressDisplay().stage, onExecution: logExecution });
  if (!isPruneReport(result)) {
    const s = result.statistics;
    console.log(
      `wrote ${s.path}: ${s.label} statistics over ${s.samples} samples (${s.tokens} tokens) in ${(s.collectMs / 1000).toFixed(2)} s`,
    );
    return;
  }
  if (o.json) writeJson(o.json, result);
  if (o.json !== '-') printPoints(methodSpec(o.aggregation ? `${o.method}:${o.aggregation}` : o.method).label, result);
}

function printPoints(label: string, report: PruneReport): void {
  const dense = report.dense.perplexity;
  if (dense !== null) console.log(`dense perplexity ${dense.toFixed(3)}`);
  console.log(
    markdownTable(
      ['method', 'sparsity', 'achieved', 'perplexity', 'mask'],
      report.points.map((p) => [label, p.sparsity.toFixed(2), p.achieved.toFixed(4), p.perplexity?.toFixed(3) ?? '-', p.mask]),
    ),
  );
}

interface CompareOptions extends CommonOptions {
  methods: string;
  sparsities: number[];
  json?: string;
}

async function compare(o: CompareOptions): Promise<void> {
  if (!o.eval) throw new LrpLensError('bad-argument', 'compare needs evaluation text: pass --eval FILE.');
  checkOutputPaths(jsonOutput(o.json), [
    { flag: '--eval', path: o.eval },
    o.reference ? { flag: '--reference', path: o.reference } : undefined,
  ]);
  const specs = o.methods.split(',').map((m) => methodSpec(m));
  const session = await openPruningSession(o, { onProgress: progressDisplay().stage, onExecution: logExecution });
  try {
    const evaluation = evalWindowsOf(session, o)!;
    const dense = (await session.perplexity(evaluation.samples)).perplexity;
    const results = [];
    for (const spec of specs) {
      const reference = referenceOf(session, spec.method, o);
      const t0 = performance.now();
      const stats = await session.statistics(spec.method, reference?.samples ?? [], { aggregation: spec.aggregation });
      const collectMs = performance.now() - t0;
      const points = await sweep(session, session.scores(stats, o.seed), o.sparsities, {
        allocation: o.allocation,
        structured: o.structured,
        evalWindows: evaluation.samples,
      });
      results.push({
        method: spec.label,
        collectMs,
        points: points.map((p) => ({ sparsity: p.sparsity, achieved: p.achieved, perplexity: p.perplexity! })),
      });
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
      console.log(
        markdownTable(
          ['method', ...o.sparsities.map((s) => `${s}`), 'collect s'],
          results.map((r) => [r.method, ...r.points.map((p) => p.perplexity.toFixed(2)), (r.collectMs / 1000).toFixed(2)]),
        ),
      );
    }
  } finally {
    await session.close();
  }
}

async function evaluate(o: { model: string; mask?: string; text: string; seqLen: number; device: Device; json?: string }): Promise<void> {
  checkOutputPaths(jsonOutput(o.json), [{ flag: '--text', path: o.text }, ...maskInputs(o.mask)]);
  const loaded = o.mask ? await loadMaskForModel(o.model, o.mask) : undefined;
  const weights = loaded ? [...loaded.mask.keys()] : [];
  const session = await PruningSession.open({
    model: o.model,
    device: o.device,
    selection: { names: weights },
    onProgress: progressDisplay().stage,
  });
  try {
    const text = session.samples(o.text, { seqLen: o.seqLen }, 'evaluation');
    const result = await session.perplexity(text.samples, loaded?.mask);
    const report = {
      schema: 'lrp-lens/eval@1',
      model: session.folder.ref,
      mask: loaded ? loaded.paths.safetensors : null,
      text: o.text,
      seqLen: o.seqLen,
      ...result,
    };
    if (o.json) writeJson(o.json, report);
    if (o.json !== '-')
      console.log(
        `perplexity ${result.perplexity.toFixed(4)} over ${result.tokens} tokens (${result.windows} windows of ≤ ${o.seqLen})${loaded ? ` with mask ${basename(loaded.paths.safetensors)}` : ''}`,
      );
  } finally {
    await session.close();
  }
}

async function exportModel(o: { model: string; mask: string; out: string; json?: string; overwrite?: boolean }): Promise<void> {
  checkOutputPaths(jsonOutput(o.json), maskInputs(o.mask));
  if (o.json && o.json !== '-' && isInside(o.json, o.out))
    throw new LrpLensError(
      'bad-argument',
      `--json ${resolve(o.json)} lies inside the --out folder ${resolve(o.out)}, which the export writes (and --overwrite replaces); write the report elsewhere.`,
    );
  const loaded = await loadMaskForModel(o.model, o.mask);
  const { folder } = loaded;
  const report = await exportPrunedModel(folder.dir, loaded.mask, o.out, { overwrite: o.overwrite });
  if (o.json) writeJson(o.json, { schema: 'lrp-lens/export@1', model: folder.ref, mask: loaded.paths.safetensors, ...report });
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;
  if (o.json !== '-') {
    console.log(
      `wrote ${report.dir}: ${report.prunedElements} of ${report.maskedElements} masked weights zeroed; folder ${mb(report.folderBytes)}, ` +
        `${mb(report.bitmaskFolderBytes)} if pruned weights were stored as bitmask + values, ${mb(report.csrFolderBytes)} as CSR`,
    );
  }
}

function maskInputs(mask: string | undefined): NamedPath[] {
  if (!mask) return [];
  const pair = maskPair(mask);
  return [
    { flag: '--mask', path: pair.safetensors },
    { flag: '--mask', path: pair.manifest },
  ];
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

function addCommon(c: Command): Command {
  return c
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .addOption(executionOption())
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
      checkOutputPaths(
        [{ flag: '--out', path: o.out }],
        o.stats.map((path) => ({ flag: '--stats', path })),
      );
      const merged = mergeStored(o.stats.map(loadStatistics));
      saveStatistics(o.out, merged);
      console.log(
        `wrote ${o.out}: shards ${merged.provenance.shards.join(', ')} of ${merged.provenance.of}, ${merged.stats.samples} samples, ${merged.stats.tokens} tokens`,
      );
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
