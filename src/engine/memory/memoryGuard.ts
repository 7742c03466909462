/**
 * Refuses a run whose estimated peak memory exceeds what the machine has, before the model is loaded, with the
 * estimate and the ways out. --force overrides; a limit can be set below the machine's (--memory-limit,
 * LRP_LENS_MEMORY_LIMIT) to keep a run small, or to test the refusal.
 */
import { existsSync } from 'node:fs';
import { freemem } from 'node:os';
import { LrpLensError } from '../errors';
import { formatBytes } from '../formatBytes';
import type { ModelConfig } from '../runtime/model';
import { dimsFromConfig, estimateMemory, modelFiles } from './memoryEstimate';
import type { EstimatedExecution, MemoryEstimate, RunShape } from './memoryEstimate';

export interface GuardSettings {
  force?: boolean;
  /** Bytes; overrides what the machine reports. */
  limit?: number;
}

let settings: GuardSettings = {};

export function setMemoryGuard(s: GuardSettings): void {
  settings = { ...s };
}

/** --force: run past the estimate. */
export function memoryGuardForced(): boolean {
  return !!settings.force;
}

/** '512MB', '2G', '1.5GiB', '123456' (bytes). */
export function parseMemorySize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) throw new LrpLensError('bad-argument', `'${text}' is not a memory size: write e.g. 512MB, 8GB or a number of bytes.`);
  const scale = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * scale);
}

/** What this process may still use: the memory the system has available, the cgroup's limit, or the set limit. */
export function availableMemory(): { bytes: number; source: string } {
  const limit = settings.limit ?? (process.env.LRP_LENS_MEMORY_LIMIT ? parseMemorySize(process.env.LRP_LENS_MEMORY_LIMIT) : undefined);
  if (limit !== undefined) return { bytes: limit, source: 'the memory limit (--memory-limit / LRP_LENS_MEMORY_LIMIT)' };
  const rss = process.memoryUsage.rss();
  const system = freemem() + rss;
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  return constrained && constrained < system
    ? { bytes: constrained, source: 'the cgroup memory limit' }
    : { bytes: system, source: 'available memory' };
}

export interface GuardOptions {
  force?: boolean;
  /** The model file: its external data and size refine the estimate. */
  onnxPath?: string;
  /** Which execution will run; 'auto' (default) counts the smaller estimate (the chooser picks it). */
  execution?: EstimatedExecution | 'auto';
}

/** The estimate for a model and run shape, or undefined when the config lacks the sizes. */
export function estimateRun(config: ModelConfig, shape: RunShape, opts: GuardOptions = {}): MemoryEstimate | undefined {
  const dims = dimsFromConfig(config);
  if (!dims) return undefined;
  const files = opts.onnxPath && existsSync(opts.onnxPath) ? modelFiles(opts.onnxPath) : undefined;
  const d = files ? { ...dims, externalData: files.externalData } : dims;
  const execution = shape.execution ?? opts.execution ?? 'auto';
  if (execution !== 'auto') return estimateMemory(d, { ...shape, execution });
  const [mono, block] = (['monolithic', 'blockwise'] as const).map((x) => estimateMemory(d, { ...shape, execution: x }));
  return block.bytes < mono.bytes ? block : mono;
}

/** Throws 'insufficient-memory' when the estimate exceeds what is available (unless forced). */
export function checkMemory(config: ModelConfig, shape: RunShape, what: string, opts: GuardOptions = {}): MemoryEstimate | undefined {
  const estimate = estimateRun(config, shape, opts);
  if (!estimate || (opts.force ?? settings.force)) return estimate;
  const available = availableMemory();
  if (estimate.bytes <= available.bytes) return estimate;
  const p = estimate.parts;
  const execution = estimate.shape.execution === 'blockwise' ? 'block-wise' : 'monolithic';
  throw new LrpLensError(
    'insufficient-memory',
    `${what} needs about ${formatBytes(estimate.bytes)} at peak (weights ${formatBytes(p.weights)}, relevance-graph activations ` +
      `${formatBytes(p.activations)} for ${shape.batch} × ${shape.tokens} tokens${p.statistics ? `, pruning statistics ${formatBytes(p.statistics)}` : ''}, runtime ${formatBytes(p.base)}; ${execution} execution), ` +
      `more than ${available.source} (${formatBytes(available.bytes)}). Use a smaller model or --dtype variant, fewer tokens (a shorter prompt, --seq-len), ` +
      `fewer samples (--samples) or reference shards (--shard i/n); or --force to run anyway.`,
  );
}
