/**
 * Small random-weight causal language models, written with the project's own ONNX builder, that look like
 * what torch/Optimum export for real models: Hugging Face I/O names (input_ids, attention_mask, position_ids,
 * past_key_values.{i}.key/value → logits, present.{i}.key/value), the causal + padding mask built inside the
 * graph from attention_mask, and each family's export quirks:
 *
 * - GPT-2 (opset 17): Conv1D linears as Gemm on 2-D reshaped inputs, LayerNormalization, tanh-GELU
 *   decomposition with Pow, learned positions, fused qkv split, causal Where + additive padding mask.
 * - OPT (opset 14): MatMul+Add linears, LayerNorm decomposed, ReLU MLP, learned positions offset by 2,
 *   q scaled before Q·Kᵀ.
 * - Llama (opset 14): RMSNorm decomposed, RoPE via Slice/Neg/Concat/Mul/Add from position_ids, GQA via
 *   Unsqueeze/Expand/Reshape, SwiGLU, no biases, Div by √d.
 *
 * Tests use them to check the relevance compiler without downloading models; benchmarks use the GPT-2
 * shaped 124M configuration. Every op used has float and double CPU kernels in onnxruntime.
 *
 * @example
 *   const graph = buildLlamaLike({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 50,
 *     maxPositions: 64, dtype: 'float32', seed: 1 });
 *   writeModel(graph, 'tiny-llama.onnx');
 */
import { Graph } from './graph';
import type { OnnxNode } from './graph';
import { GraphBuilder, emptyGraph, makeAttribute, valueInfo } from './builder';
import type { AttrValue } from './builder';
import { makeRawTensor } from './tensor';
import type { FloatDType } from './tensor';

export interface SyntheticConfig {
  layers: number;
  hidden: number;
  heads: number;
  /** Key/value heads (GQA); defaults to `heads`. Only the Llama-like builder supports fewer. */
  kvHeads?: number;
  ffn: number;
  vocab: number;
  maxPositions: number;
  dtype: FloatDType;
  seed: number;
  /** LM head shares the token embedding (MatMul by Transpose(embedding)). Default: GPT-2/OPT yes, Llama no. */
  tiedEmbeddings?: boolean;
  /**
   * Standard deviation of every weight matrix and embedding. Default: 1/√fan-in for linears and 1 for
   * embeddings, which keeps activations O(1) and attention far from uniform in tiny models.
   */
  initStd?: number;
}

/** GPT-2 small: 12 layers, 768 hidden, 12 heads, 3072 MLP, 50257 vocab, 1024 positions (≈124M parameters). */
export function gpt2Small124M(seed = 0): SyntheticConfig {
  return {
    layers: 12,
    hidden: 768,
    heads: 12,
    ffn: 3072,
    vocab: 50257,
    maxPositions: 1024,
    dtype: 'float32',
    seed,
    tiedEmbeddings: true,
    initStd: 0.02,
  };
}

/** xorshift32: cheap and seeded (fills GPT-2 small's 124M weights in well under a second). */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) | 0 || 0x2545f491;
  }

  /** Uniform values with the given mean and standard deviation. */
  fill(out: Float32Array | Float64Array, mean: number, std: number): void {
    const a = (std * Math.sqrt(12)) / 4294967296;
    const c = mean - std * Math.sqrt(3);
    // In chunks: V8 optimises a small hot function far better than one long loop entered once (OSR).
    for (let start = 0; start < out.length; start += 65536) {
      this.state = fillChunk(out, start, Math.min(out.length, start + 65536), this.state, a, c);
    }
  }
}

function fillChunk(out: Float32Array | Float64Array, start: number, end: number, state: number, a: number, c: number): number {
  let s = state | 0;
  for (let i = start; i < end; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = c + a * (s >>> 0);
  }
  return s;
}

const FLOAT32_MIN = -3.4028234663852886e38;
const FLOAT64_MIN = -Number.MAX_VALUE;
const INT64_MAX = 9223372036854775807n;

/** The torch-export vocabulary: shape arithmetic through Shape/Gather/Unsqueeze/Concat, named weights (syntheticFused.ts builds on it). */
export class Exporter {
  readonly g: Graph;
  readonly b: GraphBuilder;
  readonly dt: FloatDType;
  private readonly rng: Rng;

  constructor(
    readonly cfg: SyntheticConfig,
    opset: number,
    name: string,
  ) {
    this.g = emptyGraph(opset, name);
    this.b = new GraphBuilder(this.g, `/${name}`);
    this.dt = cfg.dtype;
    this.rng = new Rng(cfg.seed);
    if (cfg.hidden % cfg.heads !== 0) throw new RangeError(`hidden (${cfg.hidden}) must be a multiple of heads (${cfg.heads}).`);
    if (cfg.heads % this.kvHeads !== 0) throw new RangeError(`heads (${cfg.heads}) must be a multiple of kvHeads (${this.kvHeads}).`);
  }

  get kvHeads(): number {
    return this.cfg.kvHeads ?? this.cfg.heads;
  }
  get headDim(): number {
    return this.cfg.hidden / this.cfg.heads;
  }

  /** A random weight initializer named as the checkpoint names it. */
  param(name: string, dims: number[], mean: number, std: number): string {
    const size = dims.reduce((a, b) => a * b, 1);
    const data = this.dt === 'float32' ? new Float32Array(size) : new Float64Array(size);
    if (std === 0) data.fill(mean);
    else this.rng.fill(data, mean, std);
    this.g.initializers.set(name, makeRawTensor(name, this.dt, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    return name;
  }

  /** A weight matrix [in, out]: cfg.initStd, or 1/√in. */
  matrix(name: string, dims: [number, number]): string {
    return this.param(name, dims, 0, this.cfg.initStd ?? 1 / Math.sqrt(dims[0]));
  }

  embedding(name: string, dims: [number, number]): string {
    return this.param(name, dims, 0, this.cfg.initStd ?? 1);
  }

  bias(name: string, n: number): string {
    return this.param(name, [n], 0, this.cfg.initStd ?? 0.1);
  }

  gamma(name: string, n: number): string {
    return this.param(name, [n], 1, this.cfg.initStd === undefined ? 0.1 : 0);
  }

  f(v: number): string {
    return this.b.scalar(this.dt, v);
  }
  i(v: number): string {
    return this.b.constant('int64', [], [v], 'int');
  }
  ints(v: number[]): string {
    return this.b.ints(v);
  }
  get floatMin(): number {
    return this.dt === 'float32' ? FLOAT32_MIN : FLOAT64_MIN;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.b.op(opType, inputs, attrs);
  }

  /** A node whose single output has a fixed name (graph outputs such as logits and present.*). */
  named(opType: string, inputs: string[], output: string, attrs: Record<string, AttrValue> = {}): string {
    const node: OnnxNode = {
      name: this.b.fresh(opType),
      opType,
      domain: '',
      inputs,
      outputs: [output],
      attributes: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
    };
    this.g.nodes.push(node);
    this.g.invalidate();
    return output;
  }

  /** A Constant node, as torch emits for scalars (hoisted to an initializer by canonicalisation). */
  constantNode(values: number[], dims: number[]): string {
    return this.op('Constant', [], { value: makeRawTensor('', this.dt, dims, floatBytes(this.dt, values)) });
  }

  /** x.size(axis) as a scalar int64 (Shape → Gather). */
  dim(x: string, axis: number): string {
    return this.op('Gather', [this.b.Shape(x), this.i(axis)], { axis: 0 });
  }

  /** A 1-D shape from scalar dims (computed) and numbers (constants), as torch's view(...) exports it. */
  shape(parts: (string | number)[]): string {
    return this.op(
      'Concat',
      parts.map((p) => (typeof p === 'number' ? this.ints([p]) : this.op('Unsqueeze', [p, this.ints([0])]))),
      { axis: 0 },
    );
  }

  unsqueeze(x: string, axes: number[]): string {
    return this.op('Unsqueeze', [x, this.ints(axes)]);
  }
  castFloat(x: string): string {
    return this.b.Cast(x, this.dt);
  }

  /** Linear as torch exports nn.Linear on 3-D input: MatMul by the transposed weight, then Add(bias, ·). */
  linear(x: string, name: string, n: number, m: number, bias: boolean): string {
    const y = this.b.MatMul(x, this.matrix(`${name}.weight`, [n, m]));
    return bias ? this.b.Add(this.bias(`${name}.bias`, m), y) : y;
  }

  /** GPT-2 Conv1D: addmm(bias, x.view(-1, n), W[n, m]).view(*x.shape[:-1], m) → Reshape/Gemm/Reshape. */
  conv1d(x: string, name: string, n: number, m: number): string {
    const flat = this.b.Reshape(x, this.shape([-1, this.dim(x, 2)]));
    const y = this.op('Gemm', [flat, this.matrix(`${name}.weight`, [n, m]), this.bias(`${name}.bias`, m)], {
      alpha: { float: 1 },
      beta: { float: 1 },
    });
    return this.b.Reshape(y, this.shape([this.dim(x, 0), this.dim(x, 1), m]));
  }

  /** [B, S, heads·D] → [B, heads, S, D]. */
  splitHeads(x: string, heads: number): string {
    const r = this.b.Reshape(x, this.shape([this.dim(x, 0), this.dim(x, 1), heads, this.headDim]));
    return this.b.Transpose(r, [0, 2, 1, 3]);
  }

  /** [B, heads, S, D] → [B, S, heads·D]. */
  mergeHeads(x: string): string {
    const t = this.b.Transpose(x, [0, 2, 1, 3]);
    return this.b.Reshape(t, this.shape([this.dim(t, 0), this.dim(t, 1), this.cfg.hidden]));
  }

  /** LayerNorm as torch exports it below opset 17. */
  layerNormDecomposed(x: string, name: string): string {
    const mean = this.op('ReduceMean', [x], { axes: [-1], keepdims: 1 });
    const centred = this.b.Sub(x, mean);
    const variance = this.op('ReduceMean', [this.op('Pow', [centred, this.f(2)])], { axes: [-1], keepdims: 1 });
    const std = this.op('Sqrt', [this.b.Add(variance, this.f(1e-5))]);
    const normed = this.b.Div(centred, std);
    return this.b.Add(this.b.Mul(normed, this.gamma(`${name}.weight`, this.cfg.hidden)), this.bias(`${name}.bias`, this.cfg.hidden));
  }

  layerNormFused(x: string, name: string): string {
    const h = this.cfg.hidden;
    return this.op('LayerNormalization', [x, this.gamma(`${name}.weight`, h), this.bias(`${name}.bias`, h)], {
      axis: -1,
      epsilon: { float: 1e-5 },
    });
  }

  /** RMSNorm as Llama exports: x · (1 / √(mean(x²) + ε)) · γ. */
  rmsNorm(x: string, name: string): string {
    const ms = this.op('ReduceMean', [this.op('Pow', [x, this.constantNode([2], [])])], { axes: [-1], keepdims: 1 });
    const inv = this.b.Div(this.constantNode([1], []), this.op('Sqrt', [this.b.Add(ms, this.constantNode([1e-5], []))]));
    return this.b.Mul(this.b.Mul(x, inv), this.gamma(`${name}.weight`, this.cfg.hidden));
  }

  /** Inputs and the dims of past/present in Optimum's naming. */
  declareInputs(): void {
    const kv = this.kvHeads;
    const d = this.headDim;
    this.g.inputs.push(
      valueInfo('input_ids', 'int64', ['batch_size', 'sequence_length']),
      valueInfo('attention_mask', 'int64', ['batch_size', 'total_sequence_length']),
      valueInfo('position_ids', 'int64', ['batch_size', 'sequence_length']),
    );
    for (let l = 0; l < this.cfg.layers; l++) {
      for (const kind of ['key', 'value'])
        this.g.inputs.push(valueInfo(`past_key_values.${l}.${kind}`, this.dt, ['batch_size', kv, 'past_sequence_length', d]));
    }
  }

  declareOutputs(logits: string): void {
    const kv = this.kvHeads;
    const d = this.headDim;
    this.g.outputs.push(valueInfo(logits, this.dt, ['batch_size', 'sequence_length', this.cfg.vocab]));
    for (let l = 0; l < this.cfg.layers; l++) {
      for (const kind of ['key', 'value'])
        this.g.outputs.push(valueInfo(`present.${l}.${kind}`, this.dt, ['batch_size', kv, 'total_sequence_length', d]));
    }
  }

  /**
   * The boolean masks HF builds: causal [1, 1, S, T] (key ≤ query + past) and padding [B, 1, 1, T]
   * (attention_mask > 0), from Range over the dynamic sizes.
   */
  masks(): { causal: string; padding: string } {
    const s = this.dim('input_ids', 1);
    const t = this.dim('attention_mask', 1);
    const past = this.b.Sub(t, s);
    const keys = this.unsqueeze(this.op('Range', [this.i(0), t, this.i(1)]), [0]);
    const queries = this.unsqueeze(this.b.Add(this.op('Range', [this.i(0), s, this.i(1)]), past), [1]);
    const causal = this.unsqueeze(this.op('LessOrEqual', [keys, queries]), [0, 1]);
    const padding = this.op('Greater', [this.unsqueeze('attention_mask', [1, 2]), this.i(0)]);
    return { causal, padding };
  }

  /** Additive mask [B, 1, S, T]: 0 where attended, finfo.min elsewhere. */
  additiveMask(): string {
    const { causal, padding } = this.masks();
    return this.op('Where', [this.op('And', [causal, padding]), this.f(0), this.f(this.floatMin)]);
  }

  present(layer: number, kind: 'key' | 'value', current: string): string {
    return this.named('Concat', [`past_key_values.${layer}.${kind}`, current], `present.${layer}.${kind}`, { axis: 2 });
  }

  /** softmax(scores) · V → [B, S, hidden]. */
  attend(scores: string, v: string): string {
    const probs = this.op('Softmax', [scores], { axis: -1 });
    return this.mergeHeads(this.b.MatMul(probs, v));
  }

  lmHead(x: string, embedding: string, tiedDefault: boolean): string {
    const tied = this.cfg.tiedEmbeddings ?? tiedDefault;
    const w = tied ? this.b.Transpose(embedding, [1, 0]) : this.matrix('lm_head.weight', [this.cfg.hidden, this.cfg.vocab]);
    return this.named('MatMul', [x, w], 'logits');
  }

  finish(logits: string): Graph {
    this.declareOutputs(logits);
    this.g.sortTopologically();
    return this.g;
  }
}

function floatBytes(dt: FloatDType, values: number[]): Uint8Array {
  const a = dt === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
  return new Uint8Array(a.buffer);
}

/** GPT-2 as Optimum exports it at opset 17. */
export function buildGpt2Like(cfg: SyntheticConfig): Graph {
  const e = new Exporter(cfg, 17, 'gpt2');
  const { b } = e;
  const h = cfg.hidden;
  const d = e.headDim;
  if (e.kvHeads !== cfg.heads) throw new RangeError('GPT-2 has no grouped-query attention; leave kvHeads unset.');
  e.declareInputs();
  const wte = e.embedding('transformer.wte.weight', [cfg.vocab, h]);
  const wpe = e.embedding('transformer.wpe.weight', [cfg.maxPositions, h]);
  let x = b.Add(e.op('Gather', [wte, 'input_ids'], { axis: 0 }), e.op('Gather', [wpe, 'position_ids'], { axis: 0 }));
  const { causal } = e.masks();
  // (1 − mask) · finfo.min, broadcast over heads and queries.
  const padAdd = b.Mul(b.Sub(e.f(1), e.castFloat(e.unsqueeze('attention_mask', [1, 2]))), e.f(e.floatMin));
  for (let l = 0; l < cfg.layers; l++) {
    const p = `transformer.h.${l}`;
    const qkv = e.conv1d(e.layerNormFused(x, `${p}.ln_1`), `${p}.attn.c_attn`, h, 3 * h);
    const [q, k, v] = b.node('Split', [qkv, e.ints([h, h, h])], { axis: 2 }, 3);
    const kp = e.present(l, 'key', e.splitHeads(k, cfg.heads));
    const vp = e.present(l, 'value', e.splitHeads(v, cfg.heads));
    let scores = b.MatMul(e.splitHeads(q, cfg.heads), b.Transpose(kp, [0, 1, 3, 2]));
    scores = b.Div(scores, e.f(Math.sqrt(d)));
    scores = e.op('Where', [causal, scores, e.f(e.floatMin)]);
    scores = b.Add(scores, padAdd);
    x = b.Add(x, e.conv1d(e.attend(scores, vp), `${p}.attn.c_proj`, h, h));
    const fc = e.conv1d(e.layerNormFused(x, `${p}.ln_2`), `${p}.mlp.c_fc`, h, cfg.ffn);
    x = b.Add(x, e.conv1d(tanhGelu(e, fc), `${p}.mlp.c_proj`, cfg.ffn, h));
  }
  return e.finish(e.lmHead(e.layerNormFused(x, 'transformer.ln_f'), wte, true));
}

/** GPT-2's NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function tanhGelu(e: Exporter, x: string): string {
  const { b } = e;
  const half = b.Mul(x, e.f(0.5));
  const cube = e.op('Pow', [x, e.f(3)]);
  const inner = b.Mul(b.Add(x, b.Mul(cube, e.f(0.044715))), e.f(Math.sqrt(2 / Math.PI)));
  return b.Mul(half, b.Add(e.op('Tanh', [inner]), e.f(1)));
}

/** OPT (pre-LN, e.g. opt-125m) as torch exports it at opset 14. */
export function buildOptLike(cfg: SyntheticConfig): Graph {
  const e = new Exporter(cfg, 14, 'opt');
  const { b } = e;
  const h = cfg.hidden;
  if (e.kvHeads !== cfg.heads) throw new RangeError('OPT has no grouped-query attention; leave kvHeads unset.');
  e.declareInputs();
  const embed = e.embedding('model.decoder.embed_tokens.weight', [cfg.vocab, h]);
  // OPTLearnedPositionalEmbedding: the table has two extra rows and positions are offset by 2.
  const pos = e.embedding('model.decoder.embed_positions.weight', [cfg.maxPositions + 2, h]);
  const tokens = e.op('Gather', [embed, 'input_ids'], { axis: 0 });
  let x = b.Add(tokens, e.op('Gather', [pos, b.Add('position_ids', e.i(2))], { axis: 0 }));
  const mask = e.additiveMask();
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.decoder.layers.${l}`;
    const n1 = e.layerNormDecomposed(x, `${p}.self_attn_layer_norm`);
    const q = b.Mul(e.linear(n1, `${p}.self_attn.q_proj`, h, h, true), e.f(1 / Math.sqrt(e.headDim)));
    const kp = e.present(l, 'key', e.splitHeads(e.linear(n1, `${p}.self_attn.k_proj`, h, h, true), cfg.heads));
    const vp = e.present(l, 'value', e.splitHeads(e.linear(n1, `${p}.self_attn.v_proj`, h, h, true), cfg.heads));
    const scores = b.Add(b.MatMul(e.splitHeads(q, cfg.heads), b.Transpose(kp, [0, 1, 3, 2])), mask);
    x = b.Add(x, e.linear(e.attend(scores, vp), `${p}.self_attn.out_proj`, h, h, true));
    const n2 = e.layerNormDecomposed(x, `${p}.final_layer_norm`);
    const act = e.op('Relu', [e.linear(n2, `${p}.fc1`, h, cfg.ffn, true)]);
    x = b.Add(x, e.linear(act, `${p}.fc2`, cfg.ffn, h, true));
  }
  return e.finish(e.lmHead(e.layerNormDecomposed(x, 'model.decoder.final_layer_norm'), embed, true));
}

/** Llama (RMSNorm, RoPE, GQA, SwiGLU, no biases) as torch exports it at opset 14. */
export function buildLlamaLike(cfg: SyntheticConfig): Graph {
  const e = new Exporter(cfg, 14, 'llama');
  const { b } = e;
  const h = cfg.hidden;
  const d = e.headDim;
  const kvh = e.kvHeads;
  if (d % 2 !== 0) throw new RangeError(`RoPE needs an even head dimension (got ${d}).`);
  e.declareInputs();
  const embed = e.embedding('model.embed_tokens.weight', [cfg.vocab, h]);
  let x = e.op('Gather', [embed, 'input_ids'], { axis: 0 });
  // Rotary tables from position_ids: emb = [θ·p, θ·p], cos/sin unsqueezed over heads → [B, 1, S, D].
  const invFreq = b.constant(
    e.dt,
    [d / 2],
    Array.from({ length: d / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / d)),
    'inv_freq',
  );
  const freqs = b.Mul(e.castFloat(e.unsqueeze('position_ids', [-1])), invFreq);
  const emb = e.op('Concat', [freqs, freqs], { axis: -1 });
  const cos = e.unsqueeze(e.op('Cos', [emb]), [1]);
  const sin = e.unsqueeze(e.op('Sin', [emb]), [1]);
  const mask = e.additiveMask();
  const end = int64Max(b);
  const rope = (t: string) => {
    const half = e.unsqueeze(b.Div(e.dim(t, 3), e.i(2)), [0]);
    const x1 = e.op('Slice', [t, e.ints([0]), half, e.ints([3]), e.ints([1])]);
    const x2 = e.op('Slice', [t, half, end, e.ints([3]), e.ints([1])]);
    const rotated = e.op('Concat', [b.Neg(x2), x1], { axis: -1 });
    return b.Add(b.Mul(t, cos), b.Mul(rotated, sin));
  };
  // repeat_kv: [B, kvh, T, D] → Unsqueeze → Expand [B, kvh, rep, T, D] → Reshape [B, heads, T, D].
  const repeatKv = (t: string) => {
    const rep = cfg.heads / kvh;
    if (rep === 1) return t;
    const big = e.shape([e.dim(t, 0), kvh, rep, e.dim(t, 2), d]);
    const expanded = e.op('Expand', [e.unsqueeze(t, [2]), big]);
    return b.Reshape(expanded, e.shape([e.dim(t, 0), cfg.heads, e.dim(t, 2), d]));
  };
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    const n1 = e.rmsNorm(x, `${p}.input_layernorm`);
    const q = rope(e.splitHeads(e.linear(n1, `${p}.self_attn.q_proj`, h, h, false), cfg.heads));
    const kp = e.present(l, 'key', rope(e.splitHeads(e.linear(n1, `${p}.self_attn.k_proj`, h, kvh * d, false), kvh)));
    const vp = e.present(l, 'value', e.splitHeads(e.linear(n1, `${p}.self_attn.v_proj`, h, kvh * d, false), kvh));
    let scores = b.MatMul(q, b.Transpose(repeatKv(kp), [0, 1, 3, 2]));
    scores = b.Add(b.Div(scores, e.f(Math.sqrt(d))), mask);
    x = b.Add(x, e.linear(e.attend(scores, repeatKv(vp)), `${p}.self_attn.o_proj`, h, h, false));
    const n2 = e.rmsNorm(x, `${p}.post_attention_layernorm`);
    const gate = e.linear(n2, `${p}.mlp.gate_proj`, h, cfg.ffn, false);
    const silu = b.Mul(gate, e.op('Sigmoid', [gate]));
    const up = e.linear(n2, `${p}.mlp.up_proj`, h, cfg.ffn, false);
    x = b.Add(x, e.linear(b.Mul(silu, up), `${p}.mlp.down_proj`, cfg.ffn, h, false));
  }
  return e.finish(e.lmHead(e.rmsNorm(x, 'model.norm'), embed, false));
}

/** torch's open slice end `x[..., k:]` is INT64_MAX, which a JS number cannot hold exactly. */
function int64Max(b: GraphBuilder): string {
  const name = b.fresh('int64_max');
  b.graph.initializers.set(name, makeRawTensor(name, 'int64', [1], new Uint8Array(BigInt64Array.of(INT64_MAX).buffer)));
  return name;
}
