/** The notification buttons that fix a failure, by its reason (no vscode import: unit-tested on its own). */
import type { ExecutionChoice } from './engine/runtime/execution';

/** A notification button that fixes a failure. */
export type FixAction =
  'Go to Line' | 'Restart Engine' | 'Select Model…' | 'Open Settings' | 'Run Block-wise' | 'Set Memory Limit…' | 'Run Anyway' | 'Show Log';

export interface FixContext {
  /** lrpLens.execution when the failure happened. */
  execution?: ExecutionChoice;
  /** The failed run can be run again (an attribution of a prompt file). */
  canRerun?: boolean;
}

const MEMORY = new Set(['out-of-memory', 'insufficient-memory']);

/**
 * The buttons offered for a failure of this reason, after Go to Line when the message names a line. A run refused
 * for memory: block-wise execution where the monolithic graph was forced, the limit setting, and running past
 * the estimate (the refusal errs on the safe side).
 */
export function fixActions(reason: string, ctx: FixContext = {}): FixAction[] {
  if (reason === 'engine-exited') return ['Restart Engine', 'Show Log'];
  if (reason === 'prompt-too-long') return ['Open Settings', 'Show Log'];
  if (MEMORY.has(reason))
    return [
      ...(ctx.canRerun && ctx.execution === 'monolithic' ? (['Run Block-wise'] as const) : []),
      'Set Memory Limit…',
      ...(ctx.canRerun ? (['Run Anyway'] as const) : []),
      'Show Log',
    ];
  if (/model|causal/.test(reason)) return ['Select Model…', 'Show Log'];
  return ['Show Log'];
}
