/** Progress and cancellation for long engine work (reference collection, sweeps, evaluation). */
import { LrpLensError } from '../errors';

export interface Progress {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export function throwIfCancelled(signal?: AbortSignal): void {
  if (signal?.aborted) throw new LrpLensError('cancelled', 'The run was cancelled.');
}
