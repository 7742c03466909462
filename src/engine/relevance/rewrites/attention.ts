/**
 * Rewrites of com.microsoft attention ops (RotaryEmbedding, GroupQueryAttention, MultiHeadAttention, Attention)
 * into standard ONNX ops with onnxruntime's CPU numerics. Every attention becomes
 *   heads [B, N, S, H] → scores = MatMul(Q, Kᵀ)·scale (+ mask) → Softmax → MatMul(A, V) → [B, S, N·H],
 * the A·V MatMul having rank 4, which is how patterns.ts finds the heads.
 *
 * Only the prompt (empty KV cache) is rewritten, which is what the compiler always feeds: a past key/value
 * must be absent or a graph input, and the present outputs are the new keys/values alone.
 */
import { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../../onnx/graph';
import { attrFloat, attrInt, attrInts } from '../../onnx/graph';
import type { GraphBuilder } from '../../onnx/builder';
import type { FloatDType } from '../../onnx/tensor';
import { unsupported } from '../../errors';
import type { Rewrite, RewriteTable } from './rewrite';
import { replaceWith } from './rewrite';

const INT64_MAX = 9223372036854775807n;

/** Float type for emitted constants: a float initializer among the node's inputs, else the graph's outputs. */
function dtypeFor(g: Graph, node: OnnxNode): FloatDType {
  const D = onnx.TensorProto.DataType;
  const types = [...node.inputs.map((i) => g.initializers.get(i)?.dataType), ...g.outputs.map((o) => o.type?.tensorType?.elemType)];
  const t = types.find((x) => x === D.FLOAT || x === D.DOUBLE);
  return t === D.DOUBLE ? 'float64' : 'float32';
}

/** Rank when it is evident without running the graph (inputs, initializers, Transpose, constant Reshape). */
function knownRank(g: Graph, t: string): number | undefined {
  const input = g.inputs.find((i) => i.name === t);
  if (input) return input.type?.tensorType?.shape?.dim?.length;
  const init = g.initializers.get(t);
  if (init) return (init.dims ?? []).length;
  const p = g.producer(t);
  if (p?.opType === 'Transpose') return attrInts(p, 'perm')?.length;
  if (p?.opType === 'Reshape') return g.constantValues(p.inputs[1])?.length;
  if (p?.opType === 'Cast' || p?.opType === 'Identity') return knownRank(g, p.inputs[0]);
  return undefined;
}

/** The compiler feeds an empty cache to graph inputs; anything else may hold past tokens. */
function requireEmptyPast(g: Graph, node: OnnxNode, past: (string | undefined)[]): void {
  if (past.some((p) => p && !g.inputs.some((i) => i.name === p))) {
    throw unsupported(node, 'a past key/value that is not a model input (only the empty cache of a prompt is supported)');
  }
}

/** A float scalar/constant factory plus the int64 shape helpers every rewrite uses. */
class Emit {
  constructor(
    readonly b: GraphBuilder,
    readonly dtype: FloatDType,
  ) {}

  f(v: number): string {
    return this.b.scalar(this.dtype, v);
  }
  i(v: number): string {
    return this.b.constant('int64', [], [v], 'int');
  }
  ints(v: number[]): string {
    return this.b.ints(v);
  }
  get lowest(): number {
    return this.dtype === 'float32' ? -3.4028234663852886e38 : -Number.MAX_VALUE;
  }

  /** x.shape[axis] as a scalar (for Range) or a 1-element vector (for shapes). */
  dim(x: string, axis: number, scalar = false): string {
    return this.b.op('Gather', [this.b.Shape(x), scalar ? this.i(axis) : this.ints([axis])]);
  }

  /** [B, S, n·H] → [B, n, S, H]. */
  splitHeads(x: string, n: number): string {
    return this.b.Transpose(this.b.Reshape(x, this.ints([0, 0, n, -1])), [0, 2, 1, 3]);
  }

  /** [B, n, S, H] → [B, S, n·H]. */
  mergeHeads(x: string): string {
    return this.b.Reshape(this.b.Transpose(x, [0, 2, 1, 3]), this.ints([0, 0, -1]));
  }

  /** Grouped-query: each of `kvHeads` heads serves `rep` query heads ([B, kvh, T, H] → [B, kvh·rep, T, H]). */
  repeatKv(x: string, rep: number): string {
    if (rep === 1) return x;
    const expanded = this.b.op('Expand', [this.b.op('Unsqueeze', [x, this.ints([2])]), this.ints([1, 1, rep, 1, 1])]);
    return this.b.Reshape(
      expanded,
      this.b.op('Concat', [this.ints([0, -1]), this.b.op('Slice', [this.b.Shape(x), this.ints([2]), this.ints([4])])], { axis: 0 }),
    );
  }

  split(x: string, sizes: number[], axis: number, opset: number): string[] {
    if (opset < 13) return this.b.node('Split', [x], { axis, split: sizes }, sizes.length);
    return this.b.node('Split', [x, this.ints(sizes)], { axis }, sizes.length);
  }

  /** scale given, or 1/√H as onnxruntime computes it (float division of 1 by sqrt(float(H))). */
  scale(scale: number, q4: string): string {
    if (scale !== 0) return this.f(scale);
    return this.b.Div(this.f(1), this.b.op('Sqrt', [this.b.Cast(this.dim(q4, 3), this.dtype)]));
  }

  /**
   * Boolean [S, T] (or broadcastable) causal mask of the prompt: key j visible to query i when j ≤ i, and
   * with a window w > 0 also i − j < w.
   */
  causal(q4: string, k4: string, window = -1): string {
    const rows = this.b.op('Unsqueeze', [this.b.op('Range', [this.i(0), this.dim(q4, 2, true), this.i(1)]), this.ints([1])]);
    const cols = this.b.op('Range', [this.i(0), this.dim(k4, 2, true), this.i(1)]);
    const visible = this.b.op('LessOrEqual', [cols, rows]);
    if (window <= 0) return visible;
    return this.b.op('And', [visible, this.b.op('Less', [this.b.Sub(rows, cols), this.i(window)])]);
  }

  /** softmax(f(Q·Kᵀ·scale))·V, merged back to [B, S, N·H]. */
  attend(q4: string, k4: string, v4: string, scale: string, adjust: (scores: string) => string): string {
    const scores = adjust(this.b.Mul(this.b.MatMul(q4, this.b.Transpose(k4, [0, 1, 3, 2])), scale));
    const probs = this.b.op('Softmax', [scores], { axis: -1 });
    return this.mergeHeads(this.b.MatMul(probs, v4));
  }

  /** mask_index / key_padding_mask [B, T] or [B, S, T] (1 = attend) as a boolean [B, 1, S or 1, T]. */
  keep(mask: string, k4: string): string {
    const m4 = this.b.Reshape(mask, this.b.op('Concat', [this.ints([0, 1, -1]), this.dim(k4, 2)], { axis: 0 }));
    return this.b.op('Greater', [m4, this.b.constant('int32', [], [0], 'zero_i32')]);
  }

  /**
   * RotaryEmbedding on the last axis of x [.., H]: the first R = 2·half channels rotate, the rest pass.
   * Non-interleaved pairs channel k with k + R/2: [x₁, x₂]·cos + [−x₂, x₁]·sin (rotate_half); interleaved
   * pairs 2k with 2k+1: (x₂ₖ, x₂ₖ₊₁)·cos + (−x₂ₖ₊₁, x₂ₖ)·sin. cos, sin [.., half] broadcast against x.
   */
  rotate(x: string, cos: string, sin: string, half: string, interleaved: boolean, partial: boolean): string {
    const { b } = this;
    const last = this.ints([-1]);
    const width = b.Mul(half, this.ints([2]));
    const xr = partial ? b.op('Slice', [x, this.ints([0]), width, last]) : x;
    let rotated: string;
    let c: string;
    let s: string;
    if (!interleaved) {
      const x1 = b.op('Slice', [xr, this.ints([0]), half, last]);
      const x2 = b.op('Slice', [xr, half, width, last]);
      rotated = b.op('Concat', [b.Neg(x2), x1], { axis: -1 });
      [c, s] = [cos, sin].map((t) => b.op('Concat', [t, t], { axis: -1 }));
    } else {
      const pairs = b.Reshape(xr, this.ints([0, 0, 0, -1, 2]));
      const [even, odd] = this.split(pairs, [1, 1], -1, b.graph.opset);
      rotated = b.Reshape(b.op('Concat', [b.Neg(odd), even], { axis: -1 }), b.Shape(xr));
      [c, s] = [cos, sin].map((t) => {
        const col = b.op('Unsqueeze', [t, this.ints([-1])]);
        return b.Reshape(b.op('Concat', [col, col], { axis: -1 }), this.ints([0, 0, 0, -1]));
      });
    }
    const out = b.Add(b.Mul(xr, c), b.Mul(rotated, s));
    if (!partial) return out;
    const rest = b.op('Slice', [x, width, int64Max(b), last]);
    return b.op('Concat', [out, rest], { axis: -1 });
  }
}

function int64Max(b: GraphBuilder): string {
  const name = b.fresh('int64_max');
  b.graph.initializers.set(
    name,
    onnx.TensorProto.create({
      name,
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [1],
      rawData: new Uint8Array(BigInt64Array.of(INT64_MAX).buffer),
    }),
  );
  return name;
}

/** Width of a cos/sin cache [max_positions, R/2] as a 1-element int64 (a constant when the cache is). */
function cacheHalf(e: Emit, g: Graph, cache: string): string {
  const dims = g.initializers.get(cache)?.dims;
  return dims ? e.ints([Number(dims[1])]) : e.dim(cache, 1);
}

/**
 * RotaryEmbedding(input, position_ids, cos_cache, sin_cache): input [B, S, N·H] or [B, N, S, H]; position_ids
 * [B, S], or one start offset p meaning p, p+1, ...; head size H = 2·cache width, or hidden / num_heads when
 * rotary_embedding_dim (R ≤ H) is given. The rank is read at run time, so both layouts need no shape info.
 * `scale` only matters for cache updates, which the CPU kernel does not implement.
 */
const RotaryEmbedding: Rewrite = (node, g) => {
  const [x, positionIds, cosCache, sinCache] = node.inputs;
  if (attrInt(node, 'is_packed_batching', 0)) throw unsupported(node, 'RotaryEmbedding with is_packed_batching');
  const numHeads = attrInt(node, 'num_heads', 0);
  const rotaryDim = attrInt(node, 'rotary_embedding_dim', 0);
  const interleaved = attrInt(node, 'interleaved', 0) === 1;
  const width = g.initializers.get(cosCache)?.dims?.[1];
  // onnxruntime indexes the cache with stride R/2, so a cache of another width is not a plain lookup.
  if (rotaryDim > 0 && width !== undefined && Number(width) !== rotaryDim / 2)
    throw unsupported(node, 'RotaryEmbedding whose cache width is not rotary_embedding_dim / 2');
  return replaceWith(node, g, (b) => {
    const e = new Emit(b, dtypeFor(g, node));
    const half = rotaryDim > 0 ? e.ints([rotaryDim / 2]) : cacheHalf(e, g, cosCache);
    // Heads on the last axis: [B, S, N, H] from 3-D input (S on axis 1), [B, N, S, H] as given (S on axis 2).
    const is3d = b.op('Equal', [b.op('Size', [b.Shape(x)]), e.i(3)]);
    const heads3d =
      rotaryDim > 0 ? e.ints([0, 0, numHeads, -1]) : b.op('Concat', [e.ints([0, 0, -1]), b.Mul(half, e.ints([2]))], { axis: 0 });
    const x4 = b.Reshape(x, b.op('Where', [is3d, heads3d, e.ints([0, 0, 0, 0])]));
    const seqLen = b.op('Gather', [b.Shape(x4), b.op('Where', [is3d, e.i(1), e.i(2)])]);
    // position_ids [B, S], or a start offset p (one element) standing for [[p, p+1, ...]].
    const start = b.op('Gather', [b.Reshape(positionIds, e.ints([-1])), e.ints([0])]);
    const offsets = b.op('Unsqueeze', [b.Add(b.op('Range', [e.i(0), seqLen, e.i(1)]), start), e.ints([0])]);
    const isOffset = b.op('Equal', [b.op('Size', [positionIds]), e.i(1)]);
    const pos = b.op('Where', [isOffset, offsets, positionIds]);
    // Cache rows [B, S, half] → [B, S, 1, half] (3-D) or [B, 1, S, half] (4-D).
    const rowsShape = b.op('Where', [is3d, e.ints([0, 0, 1, -1]), b.op('Concat', [e.ints([0, 1, -1]), half], { axis: 0 })]);
    const [cos, sin] = [cosCache, sinCache].map((c) => b.Reshape(b.op('Gather', [c, pos], { axis: 0 }), rowsShape));
    return [b.Reshape(e.rotate(x4, cos, sin, half, interleaved, rotaryDim > 0), b.Shape(x))];
  });
};

/**
 * GroupQueryAttention as onnxruntime-genai emits it, for the prompt: query/key/value [B, S, n·H] (or Q, K, V
 * packed in query), seqlens_k [B] = number of tokens − 1, optional rotary (do_rotary, at positions 0..S−1),
 * attention_bias, softcap, local_window_size.
 *
 * Padding: onnxruntime attends key j from query i iff j ≤ min(i, seqlens_k[b]) (and i − j < window), so a
 * RIGHT-padded batch is exact for the real tokens; LEFT padding is not modelled by GQA (its prompt kernel
 * attends the padding keys and rotates from position 0 at the first pad), and this rewrite computes the same.
 * Unsupported (refused): a past that is not a model input, head_sink, smooth_softmax, qk_output,
 * local_window_size 0.
 */
const GroupQueryAttention: Rewrite = (node, g) => {
  const [query, key, value, pastKey, pastValue, seqlensK, , cosCache, sinCache, , attentionBias, headSink] = node.inputs;
  const n = attrInt(node, 'num_heads', 0);
  const kvn = attrInt(node, 'kv_num_heads', 0);
  const window = attrInt(node, 'local_window_size', -1);
  const softcap = attrFloat(node, 'softcap', 0);
  const doRotary = attrInt(node, 'do_rotary', 0) === 1;
  if (headSink) throw unsupported(node, 'GroupQueryAttention with head_sink');
  if (attrInt(node, 'smooth_softmax', 0)) throw unsupported(node, 'GroupQueryAttention with smooth_softmax');
  if (attrInt(node, 'qk_output', 0) || node.outputs[3]) throw unsupported(node, 'GroupQueryAttention with qk_output');
  if (window === 0) throw unsupported(node, 'GroupQueryAttention with local_window_size 0');
  if (!n || !kvn || n % kvn !== 0) throw unsupported(node, 'GroupQueryAttention whose num_heads is not a multiple of kv_num_heads');
  requireEmptyPast(g, node, [pastKey, pastValue]);
  return replaceWith(node, g, (b) => {
    const e = new Emit(b, dtypeFor(g, node));
    let q: string;
    let k: string;
    let v: string;
    if (key) [q, k, v] = [e.splitHeads(query, n), e.splitHeads(key, kvn), e.splitHeads(value, kvn)];
    else {
      const parts = e.split(b.Reshape(query, e.ints([0, 0, n + 2 * kvn, -1])), [n, kvn, kvn], 2, g.opset);
      [q, k, v] = parts.map((p) => b.Transpose(p, [0, 2, 1, 3]));
    }
    if (doRotary) {
      const interleaved = attrInt(node, 'rotary_interleaved', 0) === 1;
      // onnxruntime's CPU kernel rotates the prompt at positions 0..S−1 and ignores a position_ids input.
      const pos = b.op('Unsqueeze', [b.op('Range', [e.i(0), e.dim(q, 2, true), e.i(1)]), e.ints([0])]);
      const [cos, sin] = [cosCache, sinCache].map((c) => b.op('Unsqueeze', [b.op('Gather', [c, pos], { axis: 0 }), e.ints([1])]));
      const half = cacheHalf(e, g, cosCache);
      [q, k] = [q, k].map((t) => e.rotate(t, cos, sin, half, interleaved, true));
    }
    const total = b.Reshape(b.Cast(seqlensK, 'int64'), e.ints([-1, 1, 1, 1]));
    const keys = b.op('Range', [e.i(0), e.dim(k, 2, true), e.i(1)]);
    const visible = b.op('And', [e.causal(q, k, window), b.op('LessOrEqual', [keys, total])]);
    const out = e.attend(q, e.repeatKv(k, n / kvn), e.repeatKv(v, n / kvn), e.scale(attrFloat(node, 'scale', 0), q), (scores) => {
      // onnxruntime: softcap·tanh(x/softcap) on the scaled scores, then the bias, then softmax over the visible keys.
      let s = softcap > 0 ? b.Mul(b.op('Tanh', [b.Div(scores, e.f(softcap))]), e.f(softcap)) : scores;
      if (attentionBias) s = b.Add(s, attentionBias);
      return b.op('Where', [visible, s, e.f(e.lowest)]);
    });
    return [out, k, v];
  });
};

/**
 * MultiHeadAttention without past: query/key/value [B, S or L, ·] (+ bias [Dq + Dk + Dv]), key_padding_mask
 * [B, T] (1 = attend), attention_bias, unidirectional (masking as in maskScores). Refused: packed QKV/KV
 * (key or value empty), a key or value known not to be 3-D (BNSH cross attention), a past that is not a
 * model input, cache_indirection, a 1-D key_padding_mask (key lengths).
 */
const MultiHeadAttention: Rewrite = (node, g) => {
  const [query, key, value, bias, keyPaddingMask, attentionBias, pastKey, pastValue, , cacheIndirection] = node.inputs;
  const n = attrInt(node, 'num_heads', 0);
  if (!key || !value) throw unsupported(node, 'MultiHeadAttention with packed QKV or KV');
  if ([key, value].some((t) => (knownRank(g, t) ?? 3) !== 3))
    throw unsupported(node, 'MultiHeadAttention with a key or value that is not [batch, length, hidden]');
  if (cacheIndirection) throw unsupported(node, 'MultiHeadAttention with cache_indirection (beam search)');
  if (keyPaddingMask && ![undefined, 2, 3].includes(knownRank(g, keyPaddingMask)))
    throw unsupported(node, 'MultiHeadAttention with a key_padding_mask that is not [batch, total_sequence_length]');
  requireEmptyPast(g, node, [pastKey, pastValue]);
  return replaceWith(node, g, (b) => {
    const e = new Emit(b, dtypeFor(g, node));
    let [q, k, v] = [query, key, value];
    if (bias) {
      const sizes = b.op(
        'Concat',
        [q, k, v].map((t) => e.dim(t, 2)),
        { axis: 0 },
      );
      const parts = b.node('Split', [bias, sizes], { axis: 0 }, 3);
      [q, k, v] = [q, k, v].map((t, i) => b.Add(t, parts[i]));
    }
    const [q4, k4, v4] = [q, k, v].map((t) => e.splitHeads(t, n));
    const out = e.attend(q4, k4, v4, e.scale(attrFloat(node, 'scale', 0), q4), (scores) =>
      maskScores(
        e,
        scores,
        q4,
        k4,
        keyPaddingMask,
        attrInt(node, 'unidirectional', 0) === 1,
        attrFloat(node, 'mask_filter_value', -10000),
        attentionBias,
      ),
    );
    return [out, k4, v4];
  });
};

/**
 * onnxruntime's MHA/Attention masking: a padded key (mask 0) gets mask_filter_value added to its score, a key
 * ahead of the query (causal) is left out of the softmax altogether (so a query whose visible keys are all
 * padding still averages over those keys, as onnxruntime does).
 */
function maskScores(
  e: Emit,
  scores: string,
  q4: string,
  k4: string,
  mask: string | undefined,
  causal: boolean,
  filter: number,
  bias: string | undefined,
): string {
  const { b } = e;
  let s = scores;
  if (mask) s = b.Add(s, b.op('Where', [e.keep(mask, k4), e.f(0), e.f(filter)]));
  if (bias) s = b.Add(s, bias);
  return causal ? b.op('Where', [e.causal(q4, k4), s, e.f(e.lowest)]) : s;
}

/**
 * Attention (onnxruntime-optimised GPT-2/BERT) without past: input [B, S, hidden] · weights
 * [hidden, Dq + Dk + Dv] + bias, emitted as MatMul by the weight initializer (so weight relevance maps to
 * it) + Add, then Split; mask_index [B, T] or [B, S, T] (1 = attend), unidirectional (masking as in
 * maskScores). present = [2, B, N, S, H]. Refused: 1-D/4-D mask_index, a past that is not a model input,
 * do_rotary, computed weights without qkv_hidden_sizes, a present output with value head size ≠ key's.
 */
const Attention: Rewrite = (node, g) => {
  const [input, weights, bias, maskIndex, past, attentionBias] = node.inputs;
  const n = attrInt(node, 'num_heads', 0);
  if (attrInt(node, 'do_rotary', 0)) throw unsupported(node, 'Attention with do_rotary');
  if (maskIndex && ![undefined, 2, 3].includes(knownRank(g, maskIndex)))
    throw unsupported(
      node,
      'Attention with a mask_index that is not [batch, total_sequence_length] or [batch, sequence_length, total_sequence_length]',
    );
  requireEmptyPast(g, node, [past]);
  const width = g.initializers.get(weights)?.dims?.[1];
  const sizes = attrInts(node, 'qkv_hidden_sizes') ?? (width !== undefined ? Array(3).fill(Number(width) / 3) : undefined);
  if (!sizes) throw unsupported(node, 'Attention with computed weights and no qkv_hidden_sizes');
  if (node.outputs[1] && sizes[1] !== sizes[2]) throw unsupported(node, 'Attention with a present output and value size ≠ key size');
  return replaceWith(node, g, (b) => {
    const e = new Emit(b, dtypeFor(g, node));
    let qkv = b.MatMul(input, weights);
    if (bias) qkv = b.Add(qkv, bias);
    const [q4, k4, v4] = e.split(qkv, sizes, 2, g.opset).map((t) => e.splitHeads(t, n));
    const out = e.attend(q4, k4, v4, e.scale(attrFloat(node, 'scale', 0), q4), (scores) =>
      maskScores(
        e,
        scores,
        q4,
        k4,
        maskIndex,
        attrInt(node, 'unidirectional', 0) === 1,
        attrFloat(node, 'mask_filter_value', -10000),
        attentionBias,
      ),
    );
    if (!node.outputs[1]) return [out];
    return [
      out,
      b.op(
        'Concat',
        [k4, v4].map((t) => b.op('Unsqueeze', [t, e.ints([0])])),
        { axis: 0 },
      ),
    ];
  });
};

export const ATTENTION_REWRITES: RewriteTable = { RotaryEmbedding, GroupQueryAttention, MultiHeadAttention, Attention };
