/**
 * Allocation: scores + prunable weights + sparsity → mask. The lowest-scoring elements are pruned, counted per
 * output unit (`row`, Wanda's and the paper's default), per weight matrix (`layer`) or over all selected weights
 * (`global`). Structured pruning drops whole output units, scored by the sum of their elements' scores.
 *
 * Scores are compared as order-preserving uint32 keys of their float32 bits, so nothing allocates per element.
 * Ties are broken by index: among equal scores the element (or unit) met first is pruned first — within a row
 * in input order, within a weight in storage order, globally in the order the weights are listed.
 *
 * `prepareAllocation` does the per-score work once (sorting each row, or a histogram per group), so
 * `mask(sparsity)` for each sparsity of a sweep is a single pass over the elements.
 */
import { LrpLensError } from '../errors';
import { inputUnits, outputUnits } from '../weights/types';
import type { Allocation, Mask, PrunableWeight, Scores } from '../weights/types';

export interface AllocationOptions {
  allocation: Allocation;
  /** Prune whole output units (rows) instead of single weights; needs `layer` or `global` allocation. */
  structured?: boolean;
}

export interface MaskAllocator {
  readonly options: AllocationOptions;
  /** The mask pruning the given fraction (0…1) of each row, weight or of all weights. */
  mask(sparsity: number): Mask;
}

export interface AchievedSparsity {
  /** Pruned fraction over all masked elements. */
  overall: number;
  /** Pruned fraction per initializer. */
  perWeight: Record<string, number>;
  /** Pruned fraction per transformer block ('embed' / 'head' / 'other' outside the blocks); needs the weights. */
  perLayer: Record<string, number>;
  pruned: number;
  total: number;
}

/** One mask for one sparsity. */
export function allocateMask(scores: Scores, weights: PrunableWeight[], sparsity: number, options: AllocationOptions): Mask {
  checkSparsity(sparsity);
  return prepareAllocation(scores, weights, options).mask(sparsity);
}

/** Masks for a sweep of sparsities, sharing the sort. */
export function allocateMasks(scores: Scores, weights: PrunableWeight[], sparsities: number[], options: AllocationOptions): Mask[] {
  sparsities.forEach(checkSparsity);
  const allocator = prepareAllocation(scores, weights, options);
  return sparsities.map((s) => allocator.mask(s));
}

export function prepareAllocation(scores: Scores, weights: PrunableWeight[], options: AllocationOptions): MaskAllocator {
  checkOptions(options);
  if (weights.length === 0)
    throw new LrpLensError(
      'bad-argument',
      'No prunable weights were selected, so there is nothing to allocate. Select at least one weight (check the layer/kind filters).',
    );
  const bits = weights.map((w) => scoreBits(scores, w));
  if (options.structured) return structuredAllocator(weights, bits, options);
  if (options.allocation === 'row') return rowAllocator(weights, bits, options);
  return groupAllocator(weights, bits, options);
}

/** Pruned fractions of a mask, per weight, per block (given the weights) and overall. */
export function achievedSparsity(mask: Mask, weights: PrunableWeight[] = []): AchievedSparsity {
  const block = new Map(weights.map((w) => [w.name, w.layer === null ? blockOutside(w) : String(w.layer)]));
  const perWeight: Record<string, number> = {};
  const layerCounts = new Map<string, [number, number]>();
  let pruned = 0;
  let total = 0;
  for (const [name, m] of mask) {
    const p = countZeros(m.keep);
    perWeight[name] = m.keep.length === 0 ? 0 : p / m.keep.length;
    pruned += p;
    total += m.keep.length;
    const b = block.get(name);
    if (b === undefined) continue;
    const c = layerCounts.get(b) ?? [0, 0];
    layerCounts.set(b, [c[0] + p, c[1] + m.keep.length]);
  }
  const perLayer = Object.fromEntries([...layerCounts].map(([b, [p, n]]) => [b, n === 0 ? 0 : p / n]));
  return { overall: total === 0 ? 0 : pruned / total, perWeight, perLayer, pruned, total };
}

function blockOutside(w: PrunableWeight): string {
  if (w.kind === 'embed') return 'embed';
  if (w.kind === 'lm_head') return 'head';
  return 'other';
}

function countZeros(keep: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i] === 0) n++;
  return n;
}

export function checkSparsity(sparsity: number): void {
  if (typeof sparsity !== 'number' || !Number.isFinite(sparsity) || sparsity < 0 || sparsity > 1) {
    throw new LrpLensError(
      'bad-argument',
      `Sparsity ${String(sparsity)} is not a fraction between 0 and 1. Give the share of weights to prune, e.g. 0.5 for half.`,
    );
  }
}

function checkOptions(options: AllocationOptions): void {
  if (!['row', 'layer', 'global'].includes(options.allocation)) {
    throw new LrpLensError('bad-argument', `Unknown allocation '${String(options.allocation)}'. Use row, layer or global.`);
  }
  if (options.structured && options.allocation === 'row') {
    throw new LrpLensError(
      'bad-argument',
      'Structured pruning removes whole rows, so it cannot allocate per row. Use --allocation layer or global with structured pruning.',
    );
  }
}

// ---- keys -------------------------------------------------------------------------------------------------

/**
 * Order-preserving uint32 key of a float32's bits: negative floats have their bits flipped, non-negative ones
 * their sign bit set, so unsigned order is float order. −0 maps to +0's key.
 */
function key(bits: number): number {
  if (bits === 0x80000000) return 0x80000000;
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/**
 * The float32 bits of one weight's scores (a view, not a copy: the allocator reads the caller's scores, which
 * must not change while it is in use); refuses a wrong length or NaN.
 */
function scoreBits(scores: Scores, w: PrunableWeight): Uint32Array {
  const s = scores.get(w.name);
  const n = w.dims[0] * w.dims[1];
  if (!s)
    throw new LrpLensError(
      'bad-argument',
      `No scores for weight ${w.name}. Score the same weights you allocate over (the score set lacks this initializer).`,
    );
  if (s.length !== n)
    throw new LrpLensError(
      'bad-argument',
      `Scores for ${w.name} hold ${s.length} values but the weight [${w.dims.join(', ')}] has ${n}. Recompute the scores for this model.`,
    );
  const bits = new Uint32Array(s.buffer, s.byteOffset, s.length);
  for (let i = 0; i < n; i++) {
    if ((bits[i] & 0x7fffffff) > 0x7f800000)
      throw new LrpLensError(
        'bad-argument',
        `Score ${i} of ${w.name} is NaN. Recompute the scores (a reference sample may have produced a non-finite relevance).`,
      );
  }
  return bits;
}

/** How many of `n` elements a sparsity prunes. */
function prunedCount(sparsity: number, n: number): number {
  checkSparsity(sparsity);
  return Math.round(sparsity * n);
}

/** First index in sorted `a[from, to)` whose value is ≥ v. */
function lowerBound(a: Uint32Array, from: number, to: number, v: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The cut that prunes exactly k elements: every key below `key`, plus the first `ties` elements whose key
 * equals it (in index order). k = 0 gives {0, 0}, which prunes nothing.
 */
interface Cut {
  key: number;
  ties: number;
}

const NO_CUT: Cut = { key: 0, ties: 0 };

// ---- row ----------------------------------------------------------------------------------------------------

/** A weight's keys rearranged so each output unit's incoming keys are contiguous and sorted. */
function sortedRows(w: PrunableWeight, bits: Uint32Array): Uint32Array {
  const rows = outputUnits(w);
  const n = inputUnits(w);
  const out = new Uint32Array(bits.length);
  if (w.outAxis === 0) for (let j = 0; j < bits.length; j++) out[j] = key(bits[j]);
  else transposeKeys(bits, out, n, rows);
  const tmp = new Uint32Array(n);
  const count = new Uint32Array(256);
  for (let o = 0; o < rows; o++) radixSort(out.subarray(o * n, (o + 1) * n), tmp, count);
  return out;
}

/** LSD radix sort, 4 passes of 8 bits (twice as fast as the native sort on rows of 768–3072 keys). */
function radixSort(a: Uint32Array, tmp: Uint32Array, count: Uint32Array): void {
  let src = a;
  let dst = tmp;
  for (let shift = 0; shift < 32; shift += 8) {
    count.fill(0);
    for (let i = 0; i < a.length; i++) count[(src[i] >>> shift) & 255]++;
    for (let b = 0, sum = 0; b < 256; b++) {
      const c = count[b];
      count[b] = sum;
      sum += c;
    }
    for (let i = 0; i < a.length; i++) {
      const v = src[i];
      dst[count[(v >>> shift) & 255]++] = v;
    }
    [src, dst] = [dst, src];
  }
}

/** out[o·n + i] = key(bits[i·rows + o]), in tiles so both sides stay in cache. */
function transposeKeys(bits: Uint32Array, out: Uint32Array, n: number, rows: number): void {
  const T = 64;
  for (let i0 = 0; i0 < n; i0 += T) {
    const i1 = Math.min(n, i0 + T);
    for (let o0 = 0; o0 < rows; o0 += T) {
      const o1 = Math.min(rows, o0 + T);
      for (let i = i0; i < i1; i++) for (let o = o0; o < o1; o++) out[o * n + i] = key(bits[i * rows + o]);
    }
  }
}

function rowAllocator(weights: PrunableWeight[], bits: Uint32Array[], options: AllocationOptions): MaskAllocator {
  const sorted = weights.map((w, i) => sortedRows(w, bits[i]));
  return {
    options,
    mask(sparsity: number): Mask {
      const mask: Mask = new Map();
      weights.forEach((w, i) => mask.set(w.name, { dims: [...w.dims], keep: rowMask(w, bits[i], sorted[i], sparsity) }));
      return mask;
    },
  };
}

/** Each output unit's cut for pruning k of its n inputs, from its sorted keys. */
function rowCuts(sorted: Uint32Array, rows: number, n: number, k: number): { keys: Uint32Array; ties: Int32Array } {
  const keys = new Uint32Array(rows);
  const ties = new Int32Array(rows);
  if (k === 0) return { keys, ties };
  for (let o = 0; o < rows; o++) {
    const start = o * n;
    keys[o] = sorted[start + k - 1];
    ties[o] = k - (lowerBound(sorted, start, start + n, keys[o]) - start);
  }
  return { keys, ties };
}

/**
 * One pass in storage order. Either layout visits each output unit's inputs in increasing order, so tied
 * elements are pruned lowest input first.
 */
function rowMask(w: PrunableWeight, bits: Uint32Array, sorted: Uint32Array, sparsity: number): Uint8Array {
  const rows = outputUnits(w);
  const n = inputUnits(w);
  const cut = rowCuts(sorted, rows, n, prunedCount(sparsity, n));
  const keep = new Uint8Array(bits.length);
  const cols = w.dims[1];
  for (let j = 0, a = 0; a < w.dims[0]; a++) {
    for (let b = 0; b < cols; b++, j++) {
      const o = w.outAxis === 0 ? a : b;
      const v = key(bits[j]);
      const c = cut.keys[o];
      keep[j] = v < c || (v === c && cut.ties[o]-- > 0) ? 0 : 1;
    }
  }
  return keep;
}

// ---- layer / global (radix select) --------------------------------------------------------------------------

/** Elements cut together: one weight (`layer`) or all of them (`global`), with a histogram of their top 16 bits. */
interface Group {
  members: number[];
  size: number;
  high: Uint32Array;
}

function makeGroups(bits: Uint32Array[], allocation: Allocation): Group[] {
  const members = allocation === 'global' ? [bits.map((_, i) => i)] : bits.map((_, i) => [i]);
  return members.map((m) => {
    const high = new Uint32Array(65536);
    let size = 0;
    for (const i of m) {
      const a = bits[i];
      for (let j = 0; j < a.length; j++) high[key(a[j]) >>> 16]++;
      size += a.length;
    }
    return { members: m, size, high };
  });
}

/** Bucket holding the k-th smallest (1-based) and the count below that bucket. */
function bucketOf(hist: Uint32Array, k: number): [number, number] {
  let below = 0;
  for (let b = 0; b < hist.length; b++) {
    if (below + hist[b] >= k) return [b, below];
    below += hist[b];
  }
  throw new RangeError(`k = ${k} exceeds the histogram's count ${below}`);
}

/** Two-level radix select: the cut pruning the k smallest keys of a group. */
function groupCut(group: Group, bits: Uint32Array[], k: number): Cut {
  if (k === 0) return NO_CUT;
  const [high, belowHigh] = bucketOf(group.high, k);
  const low = new Uint32Array(65536);
  for (const i of group.members) {
    const a = bits[i];
    for (let j = 0; j < a.length; j++) {
      const v = key(a[j]);
      if (v >>> 16 === high) low[v & 0xffff]++;
    }
  }
  const [lowBucket, belowLow] = bucketOf(low, k - belowHigh);
  return { key: ((high << 16) | lowBucket) >>> 0, ties: k - belowHigh - belowLow };
}

/** Keep flags for a group's members under one cut, ties pruned in member order then index order. */
function applyCut(group: Group, bits: Uint32Array[], cut: Cut): Uint8Array[] {
  let ties = cut.ties;
  return group.members.map((i) => {
    const a = bits[i];
    const keep = new Uint8Array(a.length);
    for (let j = 0; j < a.length; j++) {
      const v = key(a[j]);
      keep[j] = v < cut.key || (v === cut.key && ties-- > 0) ? 0 : 1;
    }
    return keep;
  });
}

/** Keep flags per weight (in input order) for one sparsity. */
function groupKeeps(groups: Group[], bits: Uint32Array[], sparsity: number): Uint8Array[] {
  const keeps: Uint8Array[] = new Array<Uint8Array>(bits.length);
  for (const g of groups) {
    const flags = applyCut(g, bits, groupCut(g, bits, prunedCount(sparsity, g.size)));
    g.members.forEach((i, m) => (keeps[i] = flags[m]));
  }
  return keeps;
}

function groupAllocator(weights: PrunableWeight[], bits: Uint32Array[], options: AllocationOptions): MaskAllocator {
  const groups = makeGroups(bits, options.allocation);
  return {
    options,
    mask(sparsity: number): Mask {
      const keeps = groupKeeps(groups, bits, sparsity);
      return new Map(weights.map((w, i) => [w.name, { dims: [...w.dims], keep: keeps[i] }]));
    },
  };
}

// ---- structured ---------------------------------------------------------------------------------------------

/** Σ of each output unit's element scores (in float64, stored as float32 bits like any score). */
function unitScoreBits(w: PrunableWeight, bits: Uint32Array): Uint32Array {
  const scores = new Float32Array(bits.buffer, bits.byteOffset, bits.length);
  const sums = new Float64Array(outputUnits(w));
  const cols = w.dims[1];
  for (let j = 0; j < scores.length; j++) sums[w.outAxis === 0 ? Math.floor(j / cols) : j % cols] += scores[j];
  return new Uint32Array(Float32Array.from(sums).buffer);
}

function expandUnits(w: PrunableWeight, unitKeep: Uint8Array): Uint8Array {
  const keep = new Uint8Array(w.dims[0] * w.dims[1]);
  const cols = w.dims[1];
  for (let j = 0; j < keep.length; j++) keep[j] = unitKeep[w.outAxis === 0 ? Math.floor(j / cols) : j % cols];
  return keep;
}

function structuredAllocator(weights: PrunableWeight[], bits: Uint32Array[], options: AllocationOptions): MaskAllocator {
  const units = weights.map((w, i) => unitScoreBits(w, bits[i]));
  const groups = makeGroups(units, options.allocation);
  return {
    options,
    mask(sparsity: number): Mask {
      const keeps = groupKeeps(groups, units, sparsity);
      return new Map(weights.map((w, i) => [w.name, { dims: [...w.dims], keep: expandUnits(w, keeps[i]) }]));
    },
  };
}
