/**
 * The pruning pipeline behind `lrp-lens prune`, `compare` and the extension: load the model, collect a method's
 * statistics on the reference set, allocate masks for each sparsity, and evaluate perplexity (and optionally
 * greedy generations) of each masked model against the dense one — masks fed to one forward session.
 */
import { readModel } from '../onnx/io';
import type { Graph } from '../onnx/graph';
import { loadTokenizer, resolveModel } from '../runtime/model';
import type { ModelFolder, TokenizerLike } from '../runtime/model';
import type { Device } from '../runtime/session';
import { ForwardModel } from '../eval/forward';
import { perplexity } from '../eval/perplexity';
import type { PerplexityResult } from '../eval/perplexity';
import { greedyContinuations } from '../eval/generate';
import { loadSamples } from '../eval/textData';
import type { TokenSamples } from '../eval/textData';
import { throwIfCancelled } from '../eval/cancel';
import { findLinearWeights, selectWeights } from './prunable';
import type { WeightSelection } from './prunable';
import { collectGroupedStatistics, collectStatistics, scoresFromStatistics } from './scores';
import type { CollectOptions, LrpAggregation, ScoreMethod, ScoreStatistics } from './scores';
import { achievedSparsity, prepareAllocation } from './allocation';
import type { Allocation, Mask, PrunableWeight, Scores } from '../weights/types';
import { weightValues } from '../weights/weightValues';
import { modelContentHash } from '../onnx/contentHash';
import { checkMemory } from '../memory/memoryGuard';
import type { ExecutionChoice, ExecutionDecision } from '../runtime/execution';

export type Stage = 'load' | 'collect' | 'evaluate' | 'generate';

export interface PruningSetup {
  model: string;
  selection?: WeightSelection;
  device?: Device;
  /** Reference sample length, for the memory estimate (default 128). */
  seqLen?: number;
  /** The relevance pass of weight-relevance statistics: monolithic, block-wise, or chosen per batch (default). */
  execution?: ExecutionChoice;
  /** Which execution collects statistics and why (the run log). */
  onExecution?: (decision: ExecutionDecision) => void;
  /** Never download a hub model (else LRP_LENS_OFFLINE / HF_HUB_OFFLINE decide). */
  offline?: boolean;
  signal?: AbortSignal;
  onProgress?: (stage: Stage, done: number, total: number) => void;
}

/** A loaded model ready for pruning: its weights, tokenizer and one forward session that takes masks. */
export class PruningSession {
  private valueCache = new Map<string, Float32Array>();
  private hash?: string;

  private constructor(
    readonly folder: ModelFolder,
    readonly tokenizer: TokenizerLike,
    readonly graph: Graph,
    readonly weights: PrunableWeight[],
    readonly forward: ForwardModel,
    private readonly setup: PruningSetup,
  ) {}

  static async open(setup: PruningSetup): Promise<PruningSession> {
    const folder = await resolveModel(setup.model, { offline: setup.offline });
    // Collection batches as many samples as fit: one is the least it needs.
    checkMemory(folder.config, { tokens: setup.seqLen ?? 128, batch: 1, statistics: true }, `Pruning ${folder.ref}`, {
      onnxPath: folder.onnxPath,
      execution: setup.execution,
    });
    const tokenizer = await loadTokenizer(folder);
    const graph = readModel(folder.onnxPath);
    const weights = selectWeights(findLinearWeights(graph), setup.selection);
    const forward = await ForwardModel.load(graph, { prunable: weights, device: setup.device });
    return new PruningSession(folder, tokenizer, graph, weights, forward, setup);
  }

  /** The model files' content hash (as masks record it), from the bytes already read; computed once. */
  contentHash(): string {
    return (this.hash ??= modelContentHash(this.graph));
  }

  values(name: string): Float32Array {
    let v = this.valueCache.get(name);
    if (!v) this.valueCache.set(name, (v = weightValues(this.graph, name)));
    return v;
  }

  samples(path: string, opts: { samples?: number; seqLen?: number }, what: string): TokenSamples {
    return loadSamples(path, this.tokenizer, { samples: opts.samples, seqLen: opts.seqLen ?? 128 }, what);
  }

  async statistics(
    method: ScoreMethod,
    samples: number[][],
    opts: { aggregation?: LrpAggregation; batchSize?: number; seeds?: CollectOptions['seeds'] } = {},
  ): Promise<ScoreStatistics> {
    return collectStatistics(this.folder.onnxPath, this.weights, method, samples, {
      ...opts,
      device: this.setup.device,
      config: this.folder.config,
      execution: this.setup.execution,
      onExecution: this.setup.onExecution,
      signal: this.setup.signal,
      onProgress: (d, t) => this.setup.onProgress?.('collect', d, t),
    });
  }

  /** Statistics per group of samples (`groups`: one index per sample), collected in one pass. */
  async groupedStatistics(
    method: ScoreMethod,
    samples: number[][],
    groups: number[],
    opts: { aggregation?: LrpAggregation; seeds?: CollectOptions['seeds'] } = {},
  ): Promise<ScoreStatistics[]> {
    return collectGroupedStatistics(this.folder.onnxPath, this.weights, method, samples, {
      ...opts,
      groups,
      device: this.setup.device,
      config: this.folder.config,
      execution: this.setup.execution,
      onExecution: this.setup.onExecution,
      signal: this.setup.signal,
      onProgress: (d, t) => this.setup.onProgress?.('collect', d, t),
    });
  }

  scores(stats: ScoreStatistics, seed = 0): Scores {
    return scoresFromStatistics(stats, this.weights, (n) => this.values(n), seed);
  }

  async perplexity(windows: number[][], mask?: Mask): Promise<PerplexityResult> {
    this.forward.setMask(mask);
    return perplexity(this.forward, windows, {
      signal: this.setup.signal,
      onProgress: (d, t) => this.setup.onProgress?.('evaluate', d, t),
    });
  }

  /** Greedy continuations of prompts, as text. */
  async generations(prompts: string[], steps: number, mask?: Mask): Promise<string[]> {
    this.forward.setMask(mask);
    const eos = this.folder.config.eos_token_id;
    const ids = await greedyContinuations(
      this.forward,
      prompts.map((p) => this.tokenizer.encode(p)),
      steps,
      {
        signal: this.setup.signal,
        eos: eos === undefined ? undefined : [eos].flat(),
        onProgress: (d, t) => this.setup.onProgress?.('generate', d, t),
      },
    );
    return ids.map((row) => this.tokenizer.decode(row, { skip_special_tokens: true }));
  }

  throwIfCancelled(): void {
    throwIfCancelled(this.setup.signal);
  }

  async close(): Promise<void> {
    await this.forward.release();
  }
}

export interface SweepPoint {
  sparsity: number;
  achieved: number;
  perLayer: Record<string, number>;
  perplexity?: number;
  generations?: string[];
  mask: Mask;
}

export interface SweepOptions {
  allocation: Allocation;
  structured?: boolean;
  evalWindows?: number[][];
  prompts?: string[];
  generationTokens?: number;
}

/** Masks for each sparsity from one score set (one sort), each evaluated on the evaluation windows. */
export async function sweep(session: PruningSession, scores: Scores, sparsities: number[], opts: SweepOptions): Promise<SweepPoint[]> {
  const allocator = prepareAllocation(scores, session.weights, { allocation: opts.allocation, structured: opts.structured });
  const points: SweepPoint[] = [];
  for (const sparsity of sparsities) {
    session.throwIfCancelled();
    const mask = allocator.mask(sparsity);
    const achieved = achievedSparsity(mask, session.weights);
    const point: SweepPoint = { sparsity, achieved: achieved.overall, perLayer: achieved.perLayer, mask };
    if (opts.evalWindows) point.perplexity = (await session.perplexity(opts.evalWindows, mask)).perplexity;
    if (opts.prompts?.length) point.generations = await session.generations(opts.prompts, opts.generationTokens ?? 30, mask);
    points.push(point);
  }
  return points;
}
