/**
 * Peak memory of a run, estimated from the model's sizes before anything is loaded:
 *
 *   peak ≈ base + weights·W + B·T·(L·(H·a_h + F·a_f) + V·a_v)·4 + B·L·heads·T²·a_a·4 + statistics
 *
 * weights are held as float32 whatever the file's precision (fp16 and 4-bit weights are widened at compile time);
 * the monolithic relevance graph keeps every intermediate the backward half needs (hidden states, MLP
 * activations, attention probabilities); pruning adds the weight-relevance sums (float64, one per prunable weight).
 * The constants are fitted to measured peak RSS (`lrp-lens bench`, which prints both).
 */
import type { ModelConfig } from '../runtime/model';

/*
 * Fitted to the attribution runs of `lrp-lens bench` (peak RSS of a child process running the relevance graph):
 * stories260k at 32/128/512 tokens measured 105/118/268 MB (estimate 100/110/229), the GPT-2-shaped 124M model
 * 1768/1968/3044 MB (estimate 1663/1861/2932).
 */
/** Node and onnxruntime before any model (bytes). */
const BASE = 95 * 2 ** 20;
/**
 * Bytes held per float32 weight byte: the relevance graph keeps each weight and the constants its backward half
 * derives from it, and onnxruntime prepacks MatMul weights.
 */
const WEIGHT_COPIES = 3.2;
/** float32 values kept per token and layer, per unit of hidden size (H) and of MLP width (F). */
const PER_HIDDEN = 22;
const PER_FFN = 2;
/** Copies of the logits row (logits, softmax, seed, relevance). */
const PER_VOCAB = 4;
/** Copies of each attention matrix (scores, probabilities, their relevance). */
const PER_ATTENTION = 2.75;

export interface ModelDims {
  layers: number;
  hidden: number;
  ffn: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  /** Gated MLP (SwiGLU: three matrices) rather than two. */
  gated: boolean;
  tied: boolean;
}

export interface RunShape {
  tokens: number;
  batch: number;
  /** Pruning: weight-relevance statistics are accumulated. */
  statistics?: boolean;
}

export interface MemoryEstimate {
  bytes: number;
  parts: { base: number; weights: number; activations: number; statistics: number };
  parameters: number;
  shape: RunShape;
}

const num = (...v: unknown[]): number | undefined => v.find((x): x is number => typeof x === 'number' && x > 0);

const UNGATED = /^(gpt2|gpt_neo|gptj|opt|bloom|falcon|phi|gpt_bigcode|codegen)$/;

export function dimsFromConfig(c: ModelConfig): ModelDims | undefined {
  const layers = num(c.num_hidden_layers, c.n_layer, c.num_layers);
  const hidden = num(c.hidden_size, c.n_embd, c.d_model);
  const heads = num(c.num_attention_heads, c.n_head);
  const vocab = num(c.vocab_size);
  if (!layers || !hidden || !heads || !vocab) return undefined;
  const gated = !UNGATED.test(String(c.model_type ?? ''));
  return {
    layers,
    hidden,
    heads,
    vocab,
    ffn: num(c.intermediate_size, c.n_inner, c.ffn_dim) ?? 4 * hidden,
    kvHeads: num(c.num_key_value_heads) ?? heads,
    gated,
    tied: c.tie_word_embeddings !== false,
  };
}

/** Parameters of the blocks' linear layers (what pruning scores) and of the whole model. */
export function parameterCounts(d: ModelDims): { prunable: number; total: number } {
  const kv = (d.hidden / d.heads) * d.kvHeads;
  const attention = 2 * d.hidden * d.hidden + 2 * d.hidden * kv;
  const mlp = (d.gated ? 3 : 2) * d.hidden * d.ffn;
  const prunable = d.layers * (attention + mlp);
  return { prunable, total: prunable + d.vocab * d.hidden * (d.tied ? 1 : 2) };
}

export function estimateMemory(d: ModelDims, shape: RunShape): MemoryEstimate {
  const { prunable, total } = parameterCounts(d);
  const bt = shape.batch * shape.tokens;
  const perToken = d.layers * (d.hidden * PER_HIDDEN + d.ffn * PER_FFN) + d.vocab * PER_VOCAB;
  const attention = shape.batch * d.layers * d.heads * shape.tokens * shape.tokens * PER_ATTENTION;
  const parts = {
    base: BASE,
    weights: total * 4 * WEIGHT_COPIES,
    activations: (bt * perToken + attention) * 4,
    statistics: shape.statistics ? prunable * 8 : 0,
  };
  return { bytes: parts.base + parts.weights + parts.activations + parts.statistics, parts, parameters: total, shape };
}
