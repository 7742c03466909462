/**
 * Attention heads as circuit components. A head is pruned by zeroing its slice of the output projection's input
 * (rows h·d … (h+1)·d of W_o's input axis): nothing the head computes reaches the residual stream. Its score is
 * the summed score of that slice — the relevance that flows through the head.
 */
import { LrpLensError } from '../errors';
import type { Mask, PrunableWeight, Scores } from '../weights/types';
import { inputUnits, outputUnits, elementIndex } from '../weights/types';

export interface HeadRef {
  weight: PrunableWeight;
  layer: number;
  head: number;
  score: number;
}

/** Units per head from a model config (head_dim, else hidden ÷ heads). */
export function headSizeFromConfig(config: Record<string, unknown>): number {
  const num = (k: string) => (typeof config[k] === 'number' ? (config[k] as number) : undefined);
  const heads = num('num_attention_heads') ?? num('n_head');
  const size =
    num('head_dim') ??
    ((num('hidden_size') ?? num('n_embd')) !== undefined && heads ? (num('hidden_size') ?? num('n_embd'))! / heads : undefined);
  if (!size || !Number.isInteger(size))
    throw new LrpLensError(
      'bad-argument',
      "The model's config.json gives no head size (head_dim, or hidden_size ÷ num_attention_heads); heads granularity needs it.",
    );
  return size;
}

/** Every head of every attention output projection, with its score. */
export function headsOf(weights: PrunableWeight[], scores: Scores, headSize: number): HeadRef[] {
  const out: HeadRef[] = [];
  for (const w of weights.filter((x) => x.kind === 'o' && x.layer !== null)) {
    const s = scores.get(w.name);
    if (!s) throw new LrpLensError('bad-argument', `No scores for the output projection '${w.name}'.`);
    const units = inputUnits(w);
    if (units % headSize !== 0)
      throw new LrpLensError(
        'bad-argument',
        `The output projection '${w.name}' has ${units} inputs, not a multiple of the head size ${headSize}.`,
      );
    for (let h = 0; h < units / headSize; h++)
      out.push({ weight: w, layer: w.layer!, head: h, score: sliceSum(w, s, h * headSize, (h + 1) * headSize) });
  }
  if (out.length === 0)
    throw new LrpLensError(
      'bad-argument',
      'No attention output projections (kind o) are selected, so there are no heads to prune. Include them in --layers.',
    );
  return out;
}

function sliceSum(w: PrunableWeight, s: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) for (let o = 0; o < outputUnits(w); o++) sum += s[elementIndex(w, o, i)];
  return sum;
}

/** The mask pruning the given heads. */
export function headMask(heads: HeadRef[], headSize: number): Mask {
  const mask: Mask = new Map();
  for (const h of heads) {
    const w = h.weight;
    let m = mask.get(w.name);
    if (!m) mask.set(w.name, (m = { dims: [...w.dims], keep: new Uint8Array(w.dims[0] * w.dims[1]).fill(1) }));
    for (let i = h.head * headSize; i < (h.head + 1) * headSize; i++)
      for (let o = 0; o < outputUnits(w); o++) m.keep[elementIndex(w, o, i)] = 0;
  }
  return mask;
}

/**
 * Masks pruning the lowest-scoring fraction of heads: over the whole model (`global`) or the same fraction in each
 * layer (`row`). Ties go to the lower layer and head.
 */
export function headAllocator(heads: HeadRef[], headSize: number, ranking: 'global' | 'row') {
  const order = (xs: HeadRef[]) => [...xs].sort((a, b) => a.score - b.score || a.layer - b.layer || a.head - b.head);
  const layers = [...new Set(heads.map((h) => h.layer))];
  return {
    mask(sparsity: number): Mask {
      if (ranking === 'global') return headMask(order(heads).slice(0, Math.round(sparsity * heads.length)), headSize);
      const pruned = layers.flatMap((l) => {
        const mine = heads.filter((h) => h.layer === l);
        return order(mine).slice(0, Math.round(sparsity * mine.length));
      });
      return headMask(pruned, headSize);
    },
    /** Fraction of heads a mask prunes. */
    achieved(mask: Mask): number {
      let pruned = 0;
      for (const h of heads) {
        const m = mask.get(h.weight.name);
        if (m && !m.keep[elementIndex(h.weight, 0, h.head * headSize)]) pruned++;
      }
      return pruned / heads.length;
    },
  };
}

/**
 * The mask as the circuit graph should see it at head granularity: a head silenced through its output-projection
 * slice also loses its query columns (and, under grouped-query attention, a key/value head goes once every query
 * head it serves is gone), so the graph does not draw pruned heads as kept. Evaluation uses the plain mask.
 */
export function headDisplayMask(mask: Mask, weights: PrunableWeight[], headSize: number): Mask {
  const out: Mask = new Map(mask);
  for (const o of weights.filter((w) => w.kind === 'o' && w.layer !== null)) {
    const m = mask.get(o.name);
    if (!m) continue;
    const heads = inputUnits(o) / headSize;
    const pruned = Array.from({ length: heads }, (_, h) => !m.keep[elementIndex(o, 0, h * headSize)]);
    for (const w of weights.filter((x) => x.layer === o.layer && (x.kind === 'q' || x.kind === 'k' || x.kind === 'v'))) {
      const own = outputUnits(w) / headSize;
      const group = heads / own;
      const gone = (u: number) => pruned.slice(u * group, (u + 1) * group).every(Boolean);
      const keep = Uint8Array.from(out.get(w.name)?.keep ?? new Uint8Array(w.dims[0] * w.dims[1]).fill(1));
      for (let u = 0; u < own; u++) {
        if (!gone(u)) continue;
        for (let j = u * headSize; j < (u + 1) * headSize; j++) for (let i = 0; i < inputUnits(w); i++) keep[elementIndex(w, j, i)] = 0;
      }
      out.set(w.name, { dims: [...w.dims], keep });
    }
  }
  return out;
}
