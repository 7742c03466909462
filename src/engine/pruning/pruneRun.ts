/**
 * One pruning run as the CLI (`lrp-lens prune`) and the extension's worker (`prune`) both do it: collect (or
 * load) a method's statistics, allocate a mask per sparsity, evaluate each against the dense model, write the
 * masks and return the `lrp-lens/prune@1` report (documented in docs/formats.md).
 */
import { dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { LrpLensError } from '../errors';
import type { Device } from '../runtime/session';
import type { ExecutionChoice, ExecutionDecision } from '../runtime/execution';
import { PruningSession, sweep } from './prune';
import type { Stage, SweepPoint } from './prune';
import { parseWeightSelection } from './prunable';
import { checkAggregation, checkMethod, DEFAULT_AGGREGATION } from './scores';
import type { LrpAggregation, ScoreMethod, ScoreStatistics } from './scores';
import { saveMask } from './maskFile';
import { loadStatistics, saveStatistics, shardOf } from './statisticsFile';
import type { Allocation } from '../weights/types';
import { readTextFile } from '../eval/textData';

export interface MethodSpec {
  method: ScoreMethod;
  aggregation?: LrpAggregation;
  label: string;
}

/** `lrp`, `lrp:abs-total`, `wanda`, … → method and aggregation. */
export function methodSpec(spec: string): MethodSpec {
  const [m, agg] = spec.split(':');
  const method = checkMethod(m.trim());
  if (agg !== undefined && method !== 'lrp') throw new LrpLensError('bad-argument', `Only lrp takes an aggregation ('${spec}').`);
  const aggregation = method === 'lrp' ? checkAggregation((agg ?? DEFAULT_AGGREGATION).trim()) : undefined;
  return { method, aggregation, label: aggregation && agg !== undefined ? `${method}:${aggregation}` : method };
}

/** Options shared by prune and compare (the CLI's flags, by the same names). */
export interface PruneCommonOptions {
  model: string;
  device?: Device;
  /** How weight relevance is collected: monolithic graph, block-wise, or auto (by the memory estimate). */
  execution?: ExecutionChoice;
  layers?: string;
  lmHead?: boolean;
  reference?: string;
  samples?: number;
  seqLen?: number;
  eval?: string;
  evalSeqLen?: number;
  allocation?: Allocation;
  structured?: boolean;
  seed?: number;
}

export interface PruneRunOptions extends PruneCommonOptions {
  method: string;
  aggregation?: string;
  sparsity?: number[];
  /** Prompts to generate from before and after: a file (one prompt a line) … */
  prompts?: string;
  /** … or the prompts themselves. */
  promptList?: string[];
  generationTokens?: number;
  /** Mask path (MASK.safetensors + MASK.json; -sNN suffixes for a list). */
  out?: string;
  shard?: string;
  statsOut?: string;
  stats?: string;
}

export interface RunHooks {
  signal?: AbortSignal;
  onProgress?: (stage: Stage, done: number, total: number) => void;
  /** Which execution collects weight relevance and why (the run log). */
  onExecution?: (decision: ExecutionDecision) => void;
}

export interface PruneReport {
  schema: 'lrp-lens/prune@1';
  model: { ref: string; contentHash: string };
  method: ScoreMethod;
  aggregation: LrpAggregation | null;
  allocation: Allocation;
  structured: boolean;
  weights: number;
  reference: { path: string; sha256: string; samples: number; tokens: number } | null;
  evaluation: { path: string; sha256: string; windows: number } | null;
  dense: { perplexity: number | null; generations: string[] | null };
  points: {
    sparsity: number;
    achieved: number;
    perplexity: number | null;
    perLayer: Record<string, number>;
    generations: string[] | null;
    mask: string;
  }[];
  prompts: string[] | null;
  timing: { collectMs: number };
}

/** What a run without --out returns: only statistics were collected (and written to statsOut). */
export interface StatisticsOnly {
  statistics: { label: string; samples: number; tokens: number; collectMs: number; path: string };
}

export async function openPruningSession(o: PruneCommonOptions, hooks: RunHooks = {}): Promise<PruningSession> {
  hooks.onProgress?.('load', 0, 1);
  return PruningSession.open({
    model: o.model,
    device: o.device,
    execution: o.execution,
    onExecution: hooks.onExecution,
    seqLen: o.seqLen,
    selection: parseWeightSelection(o.layers, o.lmHead),
    signal: hooks.signal,
    onProgress: hooks.onProgress,
  });
}

export function referenceOf(session: PruningSession, method: ScoreMethod, o: PruneCommonOptions) {
  if (method === 'magnitude' || method === 'random') return undefined;
  if (!o.reference)
    throw new LrpLensError(
      'bad-argument',
      `The ${method} method needs reference text: pass --reference FILE (plain text or *.prompts.jsonl).`,
    );
  return session.samples(o.reference, { samples: o.samples, seqLen: o.seqLen ?? 128 }, 'reference');
}

export function evalWindowsOf(session: PruningSession, o: PruneCommonOptions) {
  return o.eval ? session.samples(o.eval, { seqLen: o.evalSeqLen ?? 128 }, 'evaluation') : undefined;
}

export function maskPathFor(out: string, sparsity: number, many: boolean): string {
  const base = resolve(out).replace(/\.(safetensors|json)$/, '');
  return many ? `${base}-s${Math.round(sparsity * 100)}` : base;
}

function checkPruneOptions(o: PruneRunOptions): void {
  if (!o.out && !o.statsOut)
    throw new LrpLensError(
      'bad-argument',
      'Give --out MASK (and --sparsity), or --stats-out FILE to only collect statistics (e.g. for one --shard).',
    );
  if (o.out && !o.sparsity?.length) throw new LrpLensError('bad-argument', 'Give --sparsity (a fraction or a list) for the mask.');
  if (o.sparsity?.some((s) => !Number.isFinite(s) || s < 0 || s >= 1))
    throw new LrpLensError('bad-argument', `Sparsities are numbers in [0, 1), e.g. 0.5; got ${o.sparsity.join(', ')}.`);
  if (o.shard && !o.statsOut)
    throw new LrpLensError(
      'bad-argument',
      'A --shard collects part of the statistics: pass --stats-out FILE, then merge the shards with lrp-lens merge.',
    );
}

interface CollectedStatistics {
  stats: ScoreStatistics;
  reference?: { source: string; hash: string; samples: number };
  collectMs: number;
}

/** Statistics from a merged file (checked against the model and method), or collected on the reference (shard). */
async function statisticsFor(
  session: PruningSession,
  spec: MethodSpec,
  o: PruneRunOptions,
  modelHash: string,
): Promise<CollectedStatistics> {
  if (o.stats) {
    const stored = loadStatistics(o.stats);
    if (stored.provenance.model !== modelHash)
      throw new LrpLensError(
        'bad-argument',
        `${o.stats} was computed on another model (${stored.provenance.model}, this one is ${modelHash}). Collect statistics for this model.`,
      );
    if (stored.stats.method !== spec.method || (stored.stats.aggregation ?? null) !== (spec.aggregation ?? null)) {
      throw new LrpLensError(
        'bad-argument',
        `${o.stats} holds ${stored.stats.method}${stored.stats.aggregation ? `:${stored.stats.aggregation}` : ''} statistics; pass the same --method (and --aggregation).`,
      );
    }
    return {
      stats: stored.stats,
      reference: { source: o.stats, hash: stored.provenance.reference, samples: stored.stats.samples },
      collectMs: 0,
    };
  }
  const reference = referenceOf(session, spec.method, o);
  const shard = o.shard ? shardOf(reference?.samples ?? [], o.shard) : undefined;
  const t0 = performance.now();
  const stats = await session.statistics(spec.method, shard?.part ?? reference?.samples ?? [], { aggregation: spec.aggregation });
  const collectMs = performance.now() - t0;
  if (o.statsOut) {
    mkdirSync(dirname(resolve(o.statsOut)), { recursive: true });
    saveStatistics(o.statsOut, {
      stats,
      provenance: { model: modelHash, reference: reference?.hash ?? '', shards: [shard?.index ?? 0], of: shard?.of ?? 1 },
    });
  }
  return {
    stats,
    reference: reference ? { source: reference.source, hash: reference.hash, samples: stats.samples } : undefined,
    collectMs,
  };
}

function promptsOf(o: PruneRunOptions): string[] | undefined {
  if (o.promptList) return o.promptList.map((p) => p.trim()).filter(Boolean);
  return o.prompts
    ? readTextFile(o.prompts, 'prompts')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
    : undefined;
}

/** Runs `prune`: the report when --out is given, else the statistics summary (written to statsOut). */
export async function runPrune(o: PruneRunOptions, hooks: RunHooks = {}): Promise<PruneReport | StatisticsOnly> {
  const spec = methodSpec(o.aggregation ? `${o.method}:${o.aggregation}` : o.method);
  checkPruneOptions(o);
  const session = await openPruningSession(o, hooks);
  try {
    const contentHash = session.contentHash();
    const collected = await statisticsFor(session, spec, o, contentHash);
    if (!o.out)
      return {
        statistics: {
          label: spec.label,
          samples: collected.stats.samples,
          tokens: collected.stats.tokens,
          collectMs: collected.collectMs,
          path: o.statsOut!,
        },
      };
    return await maskAndReport(session, spec, o, collected, contentHash);
  } finally {
    await session.close();
  }
}

async function maskAndReport(
  session: PruningSession,
  spec: MethodSpec,
  o: PruneRunOptions,
  collected: CollectedStatistics,
  contentHash: string,
): Promise<PruneReport> {
  const { stats, reference } = collected;
  const allocation = o.allocation ?? 'row';
  const generationTokens = o.generationTokens ?? 30;
  const evaluation = evalWindowsOf(session, o);
  const prompts = promptsOf(o);
  const dense = evaluation ? (await session.perplexity(evaluation.samples)).perplexity : undefined;
  const denseGenerations = prompts?.length ? await session.generations(prompts, generationTokens) : undefined;
  const sparsities = o.sparsity!;
  const points = await sweep(session, session.scores(stats, o.seed ?? 0), sparsities, {
    allocation,
    structured: o.structured,
    evalWindows: evaluation?.samples,
    prompts,
    generationTokens,
  });
  const written = points.map((p) => {
    const path = maskPathFor(o.out!, p.sparsity, sparsities.length > 1);
    mkdirSync(dirname(path), { recursive: true });
    saveMask(path, p.mask, {
      model: { id: session.folder.ref, contentHash },
      method: spec.label,
      allocation,
      structured: !!o.structured,
      targetSparsity: p.sparsity,
      weights: session.weights,
      reference: reference
        ? { name: reference.source, hash: `sha256:${reference.hash}`, samples: reference.samples, tokens: stats.tokens }
        : null,
      metrics: { perplexity: p.perplexity ?? null, densePerplexity: dense ?? null, evaluation: evaluation?.source ?? null },
      extra: {
        aggregation: spec.aggregation ?? null,
        seed: o.seed ?? 0,
        generations: p.generations ?? null,
        denseGenerations: denseGenerations ?? null,
      },
    });
    return `${path}.safetensors`;
  });
  return {
    schema: 'lrp-lens/prune@1',
    model: { ref: session.folder.ref, contentHash },
    method: spec.method,
    aggregation: spec.aggregation ?? null,
    allocation,
    structured: !!o.structured,
    weights: session.weights.length,
    reference: reference ? { path: reference.source, sha256: reference.hash, samples: reference.samples, tokens: stats.tokens } : null,
    evaluation: evaluation ? { path: evaluation.source, sha256: evaluation.hash, windows: evaluation.samples.length } : null,
    dense: { perplexity: dense ?? null, generations: denseGenerations ?? null },
    points: points.map((p: SweepPoint, i) => ({
      sparsity: p.sparsity,
      achieved: p.achieved,
      perplexity: p.perplexity ?? null,
      perLayer: p.perLayer,
      generations: p.generations ?? null,
      mask: written[i],
    })),
    prompts: prompts ?? null,
    timing: { collectMs: collected.collectMs },
  };
}

export function isPruneReport(r: PruneReport | StatisticsOnly): r is PruneReport {
  return 'schema' in r;
}
