/**
 * Perplexity: exp of the mean negative log-likelihood of every predicted token. Each window is evaluated on its
 * own (no context carried across windows); its first token is context only, so a window of L tokens predicts
 * L − 1 (see textData.ts for how text becomes windows, BOS included).
 */
import type { ForwardModel } from './forward';
import { throwIfCancelled } from './cancel';
import type { Progress } from './cancel';

export interface PerplexityResult {
  perplexity: number;
  /** Tokens predicted. */
  tokens: number;
  /** Mean negative log-likelihood (nats per token). */
  nll: number;
  windows: number;
}

export async function perplexity(
  model: ForwardModel,
  windows: number[][],
  opts: Progress & { batchSize?: number } = {},
): Promise<PerplexityResult> {
  const batchSize = opts.batchSize ?? 8;
  let sum = 0;
  let tokens = 0;
  for (let i = 0; i < windows.length; i += batchSize) {
    throwIfCancelled(opts.signal);
    const batch = windows.slice(i, i + batchSize);
    for (const lp of await model.nextTokenLogProbs(batch)) {
      for (const v of lp) sum -= v;
      tokens += lp.length;
    }
    opts.onProgress?.(Math.min(i + batchSize, windows.length), windows.length);
  }
  const nll = tokens > 0 ? sum / tokens : NaN;
  return { perplexity: Math.exp(nll), tokens, nll, windows: windows.length };
}
