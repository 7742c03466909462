/**
 * Feeds for a causal-LM graph with Hugging Face I/O names: input_ids, attention_mask, position_ids and an
 * empty past_key_values.{i}.key/value. Batches are left-padded (as generation does).
 */
import { LrpLensError } from '../errors';
import type { DType } from '../onnx/tensor';
import type { InputSpec } from '../onnx/graph';
import { IO } from '../relevance/ioNames';
import { floatTensor, hostTensor, int64Tensor } from './session';
import type { Feeds, HostTensor } from './session';

export { inputSpecs } from '../onnx/graph';
export type { InputSpec } from '../onnx/graph';

export interface TokenBatch {
  /** Token ids per row, all rows padded on the left to the same length. */
  ids: number[][];
  /** 1 for real tokens, 0 for padding. */
  mask: number[][];
}

export type PaddingSide = 'left' | 'right';

/** Pads rows of token ids to one length, on the left (as generation does) or on the right. */
export function padBatch(rows: number[][], padId: number, side: PaddingSide = 'left'): TokenBatch {
  const len = Math.max(...rows.map((r) => r.length));
  const fill = (r: number[], v: number) => Array<number>(len - r.length).fill(v);
  const ones = (r: number[]) => Array<number>(r.length).fill(1);
  return side === 'left'
    ? { ids: rows.map((r) => [...fill(r, padId), ...r]), mask: rows.map((r) => [...fill(r, 0), ...ones(r)]) }
    : { ids: rows.map((r) => [...r, ...fill(r, padId)]), mask: rows.map((r) => [...ones(r), ...fill(r, 0)]) };
}

export function leftPad(rows: number[][], padId: number): TokenBatch {
  return padBatch(rows, padId, 'left');
}

/** Position ids as Hugging Face computes them for a left-padded batch: cumsum(mask) - 1, padding at 1. */
export function positionIds(mask: number[][]): number[][] {
  return mask.map((row) => {
    let c = -1;
    return row.map((m) => (m ? ++c : 1));
  });
}

export function causalLmFeeds(specs: InputSpec[], batch: TokenBatch): Feeds {
  const b = batch.ids.length;
  const s = batch.ids[0]?.length ?? 0;
  const feeds: Feeds = {};
  const batchDim = specs.find((s) => s.name === 'input_ids')?.dims[0];
  for (const spec of specs) {
    if (spec.name === 'input_ids') feeds[spec.name] = int64Tensor(batch.ids.flat(), [b, s]);
    else if (spec.name === 'attention_mask') feeds[spec.name] = typed(spec.dtype, batch.mask.flat(), [b, s]);
    else if (spec.name === 'position_ids') feeds[spec.name] = typed(spec.dtype, positionIds(batch.mask).flat(), [b, s]);
    else if (spec.name.startsWith('past_key_values') || spec.name.startsWith('past_')) feeds[spec.name] = emptyPast(spec, b, batchDim);
    else if (spec.name === 'use_cache_branch') feeds[spec.name] = hostTensor('bool', Uint8Array.of(0), [1]);
    else if (!spec.name.startsWith('lrp_')) {
      throw new LrpLensError(
        'not-causal-lm',
        `The model has an input '${spec.name}' that a causal language model export does not have (expected input_ids, attention_mask, position_ids, past_key_values.*).`,
      );
    }
  }
  if (!feeds.input_ids) {
    throw new LrpLensError('not-causal-lm', `The model has no 'input_ids' input; it is not a causal language model export.`);
  }
  return feeds;
}

function typed(dtype: DType, values: number[], dims: number[]): HostTensor {
  if (dtype === 'int64') return int64Tensor(values, dims);
  if (dtype === 'int32') return hostTensor('int32', Int32Array.from(values), dims);
  if (dtype === 'float32' || dtype === 'float64') return floatTensor(dtype, values, dims);
  throw new LrpLensError('unsupported-graph', `Unsupported input type ${dtype}.`);
}

/** Batch on axis 0, or on the axis named like input_ids' batch (onnxruntime GPT-2's past_i is [2, batch, ...]). */
function emptyPast(spec: InputSpec, batch: number, batchDim: number | string | undefined): HostTensor {
  const dims = spec.dims.map((d, i) => {
    if (typeof d === 'number') return d;
    if (i === 0 || d === batchDim) return batch;
    return 0;
  });
  if (spec.dtype === 'float32') return hostTensor('float32', new Float32Array(0), dims);
  if (spec.dtype === 'float64') return hostTensor('float64', new Float64Array(0), dims);
  if (spec.dtype === 'float16') return hostTensor('float16', new Uint16Array(0), dims);
  throw new LrpLensError('unsupported-graph', `Unsupported past type ${spec.dtype} for ${spec.name}.`);
}

/** The seed rows of a relevance graph, flattened [batch × sequence]: targets (−1: top-1), foils, their weights. */
export interface SeedValues {
  targetIds: number[];
  targetWeights: number[];
  foilIds?: number[];
  foilWeights?: number[];
}

/** Feeds for the relevance graph's seed inputs (see IO in relevance/ioNames.ts); foils default to none. */
export function seedFeeds(dtype: 'float32' | 'float64', dims: [number, number], seed: SeedValues): Feeds {
  const zeros = seed.targetIds.map(() => 0);
  return {
    [IO.targetIds]: int64Tensor(seed.targetIds, dims),
    [IO.targetWeights]: floatTensor(dtype, seed.targetWeights, dims),
    [IO.foilIds]: int64Tensor(seed.foilIds ?? zeros, dims),
    [IO.foilWeights]: floatTensor(dtype, seed.foilWeights ?? zeros, dims),
  };
}
