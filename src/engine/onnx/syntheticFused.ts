/**
 * Small causal LMs in the fused styles of onnxruntime's tooling, with exactly the weights of synthetic.ts's
 * plain exports for the same config and seed (the plain model is built first and its initializers are taken
 * by name), so tests can compare the two exports of one model:
 *
 * - onnxruntime-genai Llama: attention_mask → seqlens_k = Σmask − 1 and total_sequence_length (int32),
 *   GroupQueryAttention with do_rotary (or RotaryEmbedding on q and k, then GroupQueryAttention), or
 *   RotaryEmbedding + MultiHeadAttention as onnxruntime's transformer optimizer fuses it; MatMul projections,
 *   SiLU·Mul MLP; present.{i}.key/value from the attention op.
 * - onnxruntime-optimised GPT-2: Attention (packed QKV weight, 2-D int32 mask, past_{i}/present_{i}
 *   [2, B, heads, T, head size]), MatMul + bias projections.
 *
 * Norms and activations are plain ONNX (decomposed RMSNorm, LayerNormalization, tanh-GELU, residual Adds) unless
 * `fusedNorms`: then SimplifiedLayerNormalization (default domain, as onnxruntime registers it) /
 * SkipSimplifiedLayerNormalization (Llama) or
 * SkipLayerNormalization / FastGelu with bias (GPT-2), as the fused exports have them.
 *
 * @example
 *   const cfg = { layers: 2, hidden: 32, heads: 2, kvHeads: 1, ffn: 64, vocab: 50, maxPositions: 64, dtype: 'float32', seed: 1 } as const;
 *   const fused = buildGenaiLlama(cfg);       // same weights as buildLlamaLike(cfg)
 */
import type { Graph } from './graph';
import { makeAttribute, valueInfo } from './builder';
import type { AttrValue } from './builder';
import { Exporter, buildGpt2Like, buildLlamaLike, tanhGelu } from './synthetic';
import type { SyntheticConfig } from './synthetic';

export interface FusedOptions {
  /**
   * Llama only. 'gqa-rotary' (default): GroupQueryAttention with do_rotary (onnxruntime needs a head size
   * that is a multiple of 16); 'gqa': RotaryEmbedding on q and k, then GroupQueryAttention (head size a
   * multiple of 8); 'mha':
   * RotaryEmbedding + MultiHeadAttention (unidirectional, key_padding_mask; needs kvHeads = heads).
   */
  attention?: 'gqa-rotary' | 'gqa' | 'mha';
  /** Contrib norms and activations instead of plain ONNX ones. */
  fusedNorms?: boolean;
}

/** An Exporter whose weights are the plain export's initializers of the same name. */
class FusedExporter extends Exporter {
  constructor(
    cfg: SyntheticConfig,
    name: string,
    private readonly plain: Graph,
  ) {
    super(cfg, 17, name);
    this.g.model.opsetImport!.push({ domain: 'com.microsoft', version: 1 });
  }

  override param(name: string, dims: number[]): string {
    const t = this.plain.initializers.get(name);
    if (!t || (t.dims ?? []).map(Number).join() !== dims.join()) throw new Error(`The plain export has no weight ${name} [${dims}].`);
    this.g.initializers.set(name, t);
    return name;
  }

  /** A contrib node (com.microsoft unless `domain`); outputs named as given ('' = not produced), fresh names where undefined. */
  ms(
    opType: string,
    inputs: string[],
    outputs: (string | undefined)[],
    attrs: Record<string, AttrValue> = {},
    domain = 'com.microsoft',
  ): string[] {
    const name = this.b.fresh(opType);
    const outs = outputs.map((o, i) => o ?? `${name}:${i}`);
    this.g.nodes.push({
      name,
      opType,
      domain,
      inputs,
      outputs: outs,
      attributes: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
    });
    this.g.invalidate();
    return outs;
  }

  /** cos/sin(p·θᵢ) [maxPositions, headDim/2], θᵢ = 10000^(−2i/d), rounded as the plain export computes them. */
  rotaryCaches(): [string, string] {
    const d = this.headDim;
    const round = this.dt === 'float32' ? Math.fround : (x: number) => x;
    const angles = Array.from({ length: this.cfg.maxPositions * (d / 2) }, (_, k) =>
      round(Math.floor(k / (d / 2)) * round(1 / 10000 ** ((2 * (k % (d / 2))) / d))),
    );
    const dims = [this.cfg.maxPositions, d / 2];
    return [
      this.b.initializer('cos_cache', this.dt, dims, angles.map(Math.cos)),
      this.b.initializer('sin_cache', this.dt, dims, angles.map(Math.sin)),
    ];
  }
}

/** Llama as onnxruntime-genai exports it (see the module comment); the weights of buildLlamaLike(cfg). */
export function buildGenaiLlama(cfg: SyntheticConfig, options: FusedOptions = {}): Graph {
  const attention = options.attention ?? 'gqa-rotary';
  const e = new FusedExporter(cfg, 'llama_genai', buildLlamaLike(cfg));
  const { b } = e;
  const h = cfg.hidden;
  const d = e.headDim;
  const kvh = e.kvHeads;
  if (attention !== 'mha' && d % (attention === 'gqa' ? 8 : 16) !== 0)
    throw new RangeError(
      `onnxruntime's GroupQueryAttention needs a head size that is a multiple of 8, or of 16 with do_rotary (got ${d}).`,
    );
  if (attention === 'mha' && kvh !== cfg.heads)
    throw new RangeError('MultiHeadAttention has no grouped-query attention; leave kvHeads unset.');
  e.declareInputs();
  if (attention === 'gqa-rotary') e.g.inputs = e.g.inputs.filter((i) => i.name !== 'position_ids');
  let x = e.op('Gather', [e.embedding('model.embed_tokens.weight', [cfg.vocab, h]), 'input_ids'], { axis: 0 });
  // genai's attention-mask reformat for GroupQueryAttention.
  const seqlensK = b.Cast(b.Sub(b.ReduceSum('attention_mask', [1], false), e.i(1)), 'int32');
  const total = b.Cast(e.dim('attention_mask', 1), 'int32');
  const keyPadding = b.Cast('attention_mask', 'int32');
  const [cos, sin] = e.rotaryCaches();
  let branch: string | undefined;
  /** Adds the pending branch output to the residual stream x and normalises it. */
  const norm = (name: string): string => {
    if (!options.fusedNorms) {
      if (branch) x = b.Add(x, branch);
      return e.rmsNorm(x, name);
    }
    const gamma = e.gamma(`${name}.weight`, h);
    // onnxruntime registers SimplifiedLayerNormalization in the default ONNX domain, and genai emits it there.
    if (!branch)
      return e.ms('SimplifiedLayerNormalization', [x, gamma], [undefined], { axis: -1, epsilon: { float: 1e-5 }, stash_type: 1 }, '')[0];
    const [normed, , , sum] = e.ms('SkipSimplifiedLayerNormalization', [branch, x, gamma], [undefined, '', '', undefined], {
      epsilon: { float: 1e-5 },
    });
    x = sum;
    return normed;
  };
  const rope = (t: string) => e.ms('RotaryEmbedding', [t, 'position_ids', cos, sin], [undefined], { interleaved: 0 })[0];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `model.layers.${l}`;
    const n1 = norm(`${p}.input_layernorm`);
    let q = e.linear(n1, `${p}.self_attn.q_proj`, h, h, false);
    let k = e.linear(n1, `${p}.self_attn.k_proj`, h, kvh * d, false);
    const v = e.linear(n1, `${p}.self_attn.v_proj`, h, kvh * d, false);
    const past = [`past_key_values.${l}.key`, `past_key_values.${l}.value`];
    const present = [`present.${l}.key`, `present.${l}.value`];
    if (attention !== 'gqa-rotary') [q, k] = [rope(q), rope(k)];
    const [attn] =
      attention === 'mha'
        ? e.ms('MultiHeadAttention', [q, k, v, '', keyPadding, '', ...past], [undefined, ...present], {
            num_heads: cfg.heads,
            unidirectional: 1,
          })
        : e.ms(
            'GroupQueryAttention',
            [q, k, v, ...past, seqlensK, total, ...(attention === 'gqa-rotary' ? [cos, sin] : [])],
            [undefined, ...present],
            {
              num_heads: cfg.heads,
              kv_num_heads: kvh,
              local_window_size: -1,
              do_rotary: attention === 'gqa-rotary' ? 1 : 0,
              rotary_interleaved: 0,
            },
          );
    branch = e.linear(attn, `${p}.self_attn.o_proj`, h, h, false);
    const n2 = norm(`${p}.post_attention_layernorm`);
    const gate = e.linear(n2, `${p}.mlp.gate_proj`, h, cfg.ffn, false);
    const up = e.linear(n2, `${p}.mlp.up_proj`, h, cfg.ffn, false);
    branch = e.linear(b.Mul(b.Mul(gate, e.op('Sigmoid', [gate])), up), `${p}.mlp.down_proj`, cfg.ffn, h, false);
  }
  return e.finish(e.lmHead(norm('model.norm'), 'model.embed_tokens.weight', false));
}

/** GPT-2 as onnxruntime's transformer optimizer leaves it (see the module comment); the weights of buildGpt2Like(cfg). */
export function buildOrtGpt2(cfg: SyntheticConfig, options: Pick<FusedOptions, 'fusedNorms'> = {}): Graph {
  const e = new FusedExporter(cfg, 'gpt2_ort', buildGpt2Like(cfg));
  const { b } = e;
  const h = cfg.hidden;
  const d = e.headDim;
  if (e.kvHeads !== cfg.heads) throw new RangeError('GPT-2 has no grouped-query attention; leave kvHeads unset.');
  const pastDims = [2, 'batch_size', cfg.heads, 'past_sequence_length', d];
  e.g.inputs.push(
    valueInfo('input_ids', 'int64', ['batch_size', 'sequence_length']),
    valueInfo('attention_mask', 'int64', ['batch_size', 'total_sequence_length']),
    valueInfo('position_ids', 'int64', ['batch_size', 'sequence_length']),
    ...Array.from({ length: cfg.layers }, (_, l) => valueInfo(`past_${l}`, e.dt, pastDims)),
  );
  const wte = e.embedding('transformer.wte.weight', [cfg.vocab, h]);
  let x = e.op('Gather', [wte, 'input_ids'], { axis: 0 });
  let branch = e.op('Gather', [e.embedding('transformer.wpe.weight', [cfg.maxPositions, h]), 'position_ids'], { axis: 0 });
  let branchBias: string | undefined;
  const mask = b.Cast('attention_mask', 'int32');
  /** x + branch (+ its bias), then LayerNorm: one SkipLayerNormalization when fused. */
  const norm = (name: string): string => {
    if (!options.fusedNorms) {
      x = b.Add(x, branchBias ? b.Add(branch, branchBias) : branch);
      return e.layerNormFused(x, name);
    }
    const inputs = [branch, x, e.gamma(`${name}.weight`, h), e.bias(`${name}.bias`, h), ...(branchBias ? [branchBias] : [])];
    const [normed, , , sum] = e.ms('SkipLayerNormalization', inputs, [undefined, '', '', undefined], { epsilon: { float: 1e-5 } });
    x = sum;
    return normed;
  };
  const matmul = (t: string, name: string, n: number, m: number) => b.MatMul(t, e.matrix(`${name}.weight`, [n, m]));
  for (let l = 0; l < cfg.layers; l++) {
    const p = `transformer.h.${l}`;
    const n1 = norm(`${p}.ln_1`);
    const qkv = [e.matrix(`${p}.attn.c_attn.weight`, [h, 3 * h]), e.bias(`${p}.attn.c_attn.bias`, 3 * h)];
    const [attn] = e.ms('Attention', [n1, ...qkv, mask, `past_${l}`], [undefined, `present_${l}`], {
      num_heads: cfg.heads,
      unidirectional: 1,
    });
    [branch, branchBias] = [matmul(attn, `${p}.attn.c_proj`, h, h), e.bias(`${p}.attn.c_proj.bias`, h)];
    const fc = matmul(norm(`${p}.ln_2`), `${p}.mlp.c_fc`, h, cfg.ffn);
    const fcBias = e.bias(`${p}.mlp.c_fc.bias`, cfg.ffn);
    const act = options.fusedNorms ? e.ms('FastGelu', [fc, fcBias], [undefined])[0] : tanhGelu(e, b.Add(fc, fcBias));
    [branch, branchBias] = [matmul(act, `${p}.mlp.c_proj`, cfg.ffn, h), e.bias(`${p}.mlp.c_proj.bias`, h)];
  }
  const logits = e.lmHead(norm('transformer.ln_f'), wte, true);
  e.g.outputs.push(
    valueInfo(logits, e.dt, ['batch_size', 'sequence_length', cfg.vocab]),
    ...Array.from({ length: cfg.layers }, (_, l) =>
      valueInfo(`present_${l}`, e.dt, [2, 'batch_size', cfg.heads, 'total_sequence_length', d]),
    ),
  );
  e.g.sortTopologically();
  return e.g;
}
