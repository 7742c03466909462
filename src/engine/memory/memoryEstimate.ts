/**
 * Peak memory of a run, estimated from the model's sizes before anything runs — the one estimate behind the
 * memory guard (refusing a load or a pruning run) and the execution chooser (monolithic graph or block-wise):
 *
 *   monolithic ≈ margin · (base + weights·w_m + L·block(T) + logits(T) + statistics)
 *   block-wise ≈ margin · (base + weights·w_b + block(T) + stream(T) + logits(T) + statistics)
 *   block(T)   = B·(a·heads·T² + T·(h·hidden + f·MLP))·element   (one block's activations and relevance)
 *
 * The monolithic relevance graph keeps every block's intermediates for its backward half; block-wise keeps one
 * block's, the residual stream between blocks (L+3 tensors of T × hidden) and the logits. Weights are held as
 * float32 whatever the file's precision; onnxruntime keeps its own (pre-packed) copies of weights it loads
 * (monolithic), while block-wise feeds one copy held by the engine. Weight-relevance statistics (pruning,
 * circuits, correction) add their running sums (float32, one per prunable weight) and a run's outputs: the whole
 * model's at once (monolithic) or one block's (block-wise).
 *
 * Fitted on measured whole-process peak RSS (test/fixtures/memoryMeasurements.ts, pinned by
 * test/unit/memoryEstimate.test.ts): stories260k, the 124M GPT-2 shape, the Qwen2-0.5B shape (both executions) and
 * the ~1.1B Llama shape, all within +25 % of measured and never under.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ModelConfig } from '../runtime/model';

const MiB = 2 ** 20;
/** Node and onnxruntime before any model. */
const BASE = 100 * MiB;
/**
 * Bytes held per float32 weight byte. Monolithic: the weights as read and onnxruntime's copies (initializers,
 * pre-packed MatMul weights); a model with external data is not held a third time as protobuf bytes.
 * Block-wise: the engine's one copy fed to every block's graph (plus the model's bytes when embedded).
 */
const WEIGHT_COPIES = { monolithic: { embedded: 3.35, external: 2.2 }, blockwise: { embedded: 2.2, external: 1.15 } };
/**
 * Block-wise with weights streamed (runtime/weightStreaming.ts): bytes held per float32 byte of the largest set of
 * weights held at once (one block's, or the embedding / LM head; a tied embedding is held throughout) — the
 * weights, the pool of dropped buffers kept for the next block's, and what is being widened. Measured on the ~3B
 * fp16 shape through `lrp-lens attribute` (docs/blockwise.md): 1.29 GiB peak at 128 tokens, 2.04 GiB at 512, with
 * 0.46 GiB of weights held at once.
 */
const STREAMED_COPIES = 2.6;
/**
 * Copies of a [heads, T, T] attention tensor per block: what the monolithic graph keeps of each block (scores,
 * probabilities, their relevance), and what one block's relevance graph needs at once (the softmax's budget is
 * summed at Q and K, so no [heads, T, T] product of it; measured on the Qwen2-0.5B shape at 2,048 and 4,096 tokens).
 */
const PER_ATTENTION = { monolithic: 3.5, blockwise: 2.5 };
/** Values kept per token and block, per unit of hidden size and of MLP width. */
const PER_HIDDEN = 20;
const PER_FFN = 4;
/** Copies of the logits row (logits, the seed's softmax, relevance). */
const PER_VOCAB = 4;
/** Safety margin over the fit: an estimate that runs past the limit is the failure that matters. */
const MARGIN = 1.05;

export type EstimatedExecution = 'monolithic' | 'blockwise';

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
  /** Bytes of the weights as the engine holds them, when known (else the parameter count × element bytes). */
  weightBytes?: number;
  /** Weights in external data files (onnxruntime reads them without the protobuf copy). Default: weights ≥ 2 GiB. */
  externalData?: boolean;
  /** Bytes of one value: 4 (float32, default) or 8 (float64). */
  elementBytes?: number;
}

export interface RunShape {
  tokens: number;
  batch: number;
  /** Pruning: weight-relevance statistics are accumulated. */
  statistics?: boolean;
  /** Default monolithic. */
  execution?: EstimatedExecution;
  /** Block-wise: the weights are read per block and dropped after it (only one block's are held). */
  streamedWeights?: boolean;
}

export interface MemoryEstimate {
  bytes: number;
  /** What is held, and the safety margin over it (the estimate is their sum). */
  parts: { base: number; weights: number; activations: number; statistics: number; margin: number };
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

/**
 * Whether a block's weight products are worth saving: while they outweigh its attention matrix per token. Past
 * that the T² work dominates and the memory buys little (Qwen2-0.5B shape at 4,096 tokens: peak 1.93× a forward
 * with 4 blocks saved, for no measurable gain; at 1,024 saving about broke even).
 */
export function productsWorthSaving(productsPerToken: number, heads: number, tokens: number): boolean {
  return productsPerToken >= heads * tokens;
}

/**
 * What the block-wise forward pass saves so that relevance graphs need not recompute the blocks' weight products
 * (BlockwiseRunner.savedBlocks): q, k, v, o, up (and gate) per token and block, while they outweigh a block's
 * attention matrix per token, within half the weights' size.
 */
function savedProducts(d: ModelDims, batch: number, tokens: number, elementBytes: number, weightBytes: number): number {
  const kv = (d.hidden / d.heads) * d.kvHeads;
  const perToken = 2 * d.hidden + 2 * kv + (d.gated ? 2 : 1) * d.ffn;
  if (!productsWorthSaving(perToken, d.heads, tokens)) return 0;
  return Math.min(weightBytes / 2, d.layers * perToken * tokens * batch * elementBytes);
}

/** Float32 bytes of the most weights a streamed block-wise run holds at once: a block's or the embedding's, plus a tied embedding. */
export function streamedWeightBytes(d: ModelDims, elementBytes = d.elementBytes ?? 4): number {
  const embedding = d.vocab * d.hidden * elementBytes;
  const block = (parameterCounts(d).prunable / d.layers) * elementBytes;
  return Math.max(block, embedding) + (d.tied ? embedding : 0);
}

/** The estimate for one execution (default monolithic). */
export function estimateMemory(d: ModelDims, shape: RunShape): MemoryEstimate {
  const e = d.elementBytes ?? 4;
  const execution = shape.execution ?? 'monolithic';
  const { prunable, total } = parameterCounts(d);
  const weightBytes = d.weightBytes ?? total * e;
  const external = d.externalData ?? weightBytes >= 2 * 2 ** 30;
  const [B, T] = [shape.batch, shape.tokens];
  const block = B * e * (PER_ATTENTION[execution] * d.heads * T * T + T * (PER_HIDDEN * d.hidden + PER_FFN * d.ffn));
  const logits = B * e * T * d.vocab * PER_VOCAB;
  const stream = B * e * T * d.hidden * (d.layers + 3);
  const sums = prunable * 4;
  const parts =
    execution === 'monolithic'
      ? {
          weights: weightBytes * WEIGHT_COPIES.monolithic[external ? 'external' : 'embedded'],
          activations: d.layers * block + logits,
          statistics: 2 * sums,
        }
      : {
          weights: shape.streamedWeights
            ? streamedWeightBytes(d, e) * STREAMED_COPIES
            : weightBytes * WEIGHT_COPIES.blockwise[external ? 'external' : 'embedded'],
          activations: block + stream + logits + (shape.streamedWeights ? 0 : savedProducts(d, B, T, e, weightBytes)),
          statistics: sums + sums / d.layers,
        };
  const held = { base: BASE, ...parts, statistics: shape.statistics ? parts.statistics : 0 };
  const sum = held.base + held.weights + held.activations + held.statistics;
  return { bytes: MARGIN * sum, parts: { ...held, margin: (MARGIN - 1) * sum }, parameters: total, shape };
}

/** Both executions' estimates for a batch (the chooser's input). */
export function estimateExecutions(
  d: ModelDims,
  batch: number,
  tokens: number,
  statistics = false,
  streamedWeights = false,
): { monolithicBytes: number; blockwiseBytes: number } {
  const at = (execution: EstimatedExecution) => estimateMemory(d, { batch, tokens, statistics, execution, streamedWeights }).bytes;
  return { monolithicBytes: at('monolithic'), blockwiseBytes: at('blockwise') };
}

/** The model file and its external data files (siblings whose name starts with the model's): bytes, and whether any. */
export function modelFiles(onnxPath: string): { bytes: number; externalData: boolean } {
  const dir = dirname(onnxPath);
  const name = basename(onnxPath);
  const files = readdirSync(dir).filter((f) => f.startsWith(name));
  return { bytes: files.reduce((n, f) => n + statSync(join(dir, f)).size, 0), externalData: files.some((f) => f !== name) };
}
