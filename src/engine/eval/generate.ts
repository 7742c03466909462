/** Greedy continuations, batched (the full sequence is re-run each step: models here are small, prompts short). */
import type { ForwardModel } from './forward';
import { throwIfCancelled } from './cancel';
import type { Progress } from './cancel';

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** The next `steps` greedy tokens after each prompt; stops a row at `eos` when given. */
export async function greedyContinuations(
  model: ForwardModel,
  prompts: number[][],
  steps: number,
  opts: Progress & { eos?: number[] } = {},
): Promise<number[][]> {
  const rows = prompts.map((p) => [...p]);
  const out = prompts.map(() => [] as number[]);
  const done = prompts.map(() => false);
  for (let s = 0; s < steps && done.some((d) => !d); s++) {
    throwIfCancelled(opts.signal);
    const live = rows.map((_, i) => i).filter((i) => !done[i]);
    const logits = await model.lastLogits(live.map((i) => rows[i]));
    live.forEach((i, k) => {
      const next = argmax(logits[k]);
      rows[i].push(next);
      out[i].push(next);
      if (opts.eos?.includes(next)) done[i] = true;
    });
    opts.onProgress?.(s + 1, steps);
  }
  return out;
}
