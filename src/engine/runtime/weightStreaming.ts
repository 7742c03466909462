/**
 * Weights read per block: whether block-wise execution keeps every weight once read (fast: nothing is read
 * twice) or streams them — reads a segment's weights when it runs and drops them after, in the forward pass
 * (0 … L) and again in the relevance pass (L … 0) — so that peak memory holds one block's float32 weights, the
 * weights several segments share (a tied embedding and LM head) and the activations, not the whole model.
 */
import type { BlockwisePlan, SegmentGraph } from '../relevance/split';

export interface StreamingDecision {
  stream: boolean;
  /** Why, in words, with the sizes (for the run log). */
  reason: string;
}

/** Weights may take this share of the memory limit and still be kept; past it they are streamed. */
export const KEPT_WEIGHTS_SHARE = 0.5;

const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;

/** Keep the weights when their float32 size fits comfortably in the limit (the rest is for activations). */
export function streamWeights(weightBytes: number, limitBytes: number, forced?: boolean): StreamingDecision {
  if (forced !== undefined)
    return { stream: forced, reason: `${forced ? 'streamed' : 'kept'} (forced); weights ${gb(weightBytes)} as float32` };
  const stream = weightBytes > KEPT_WEIGHTS_SHARE * limitBytes;
  return {
    stream,
    reason: stream
      ? `streamed per block: the weights' ${gb(weightBytes)} as float32 exceed ${KEPT_WEIGHTS_SHARE * 100} % of the limit of ${gb(limitBytes)}`
      : `kept: the weights' ${gb(weightBytes)} as float32 fit in ${KEPT_WEIGHTS_SHARE * 100} % of the limit of ${gb(limitBytes)}`,
  };
}

/** One graph of a run: its segment (−1: the assembly), and whether it is the segment's relevance graph. */
export interface PlannedRun {
  /** Absent where the segment has no graph of this kind (the runner still frees what the step frees). */
  graph?: SegmentGraph;
  segment: number;
  relevance: boolean;
}

/**
 * The plan's graphs in the order the runner runs them: forward 0 … L, relevance from the head down, assembly;
 * the saved blocks run their saving variants.
 */
export function runOrder(plan: BlockwisePlan, saved: ReadonlySet<number> = new Set()): PlannedRun[] {
  const variant = (k: number) => (saved.has(k) ? plan.saving[k] : undefined);
  const runs: PlannedRun[] = plan.forward.map((g, k) => ({ graph: variant(k)?.forward ?? g, segment: k, relevance: false }));
  for (let k = plan.backward.length - 1; k >= 0; k--)
    runs.push({ graph: variant(k)?.backward ?? plan.backward[k], segment: k, relevance: true });
  runs.push({ graph: plan.assembly, segment: -1, relevance: false });
  return runs;
}

/**
 * Which weights to drop after each graph runs when streaming. A weight one segment reads is dropped after each
 * of its graphs (forward k, then relevance k, much later), unless the next graph reads it too; a weight several
 * segments read (a tied embedding: the embedding and the head) is kept from its first read to its last.
 */
export function dropSchedule(plan: BlockwisePlan): Map<SegmentGraph, string[]> {
  const runs = runOrder(plan).filter((r): r is PlannedRun & { graph: SegmentGraph } => !!r.graph);
  const weightsOf = runs.map((r) => r.graph.inputs.filter((i) => i.from.kind === 'weight').map((i) => i.from.name));
  const segments = new Map<string, Set<number>>();
  const last = new Map<string, number>();
  weightsOf.forEach((ws, i) =>
    ws.forEach((w) => {
      segments.set(w, (segments.get(w) ?? new Set()).add(runs[i].segment));
      last.set(w, i);
    }),
  );
  const schedule = new Map<SegmentGraph, string[]>();
  runs.forEach((r, i) => {
    const next = new Set(weightsOf[i + 1] ?? []);
    const drop = weightsOf[i].filter((w) => !next.has(w) && (segments.get(w)!.size === 1 || last.get(w) === i));
    schedule.set(r.graph, drop);
  });
  return schedule;
}
