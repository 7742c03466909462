/** `--execution auto|monolithic|blockwise`, shared by the commands that run a relevance pass, and its run-log line. */
import { Option } from 'commander';
import { EXECUTION_CHOICES } from '../engine/runtime/execution';
import type { ExecutionDecision } from '../engine/runtime/execution';
import { progressDisplay } from './progressDisplay';

export function executionOption(): Option {
  return new Option('--execution <how>', 'monolithic graph, block-wise recomputation (bounded memory), or auto (by a memory estimate)')
    .choices(EXECUTION_CHOICES)
    .default('auto');
}

/** The run log's line: which execution ran and why (stderr, like progress). */
export function logExecution(d: Pick<ExecutionDecision, 'execution' | 'reason'>): void {
  progressDisplay().note(`execution: ${d.execution} (${d.reason})`);
}
