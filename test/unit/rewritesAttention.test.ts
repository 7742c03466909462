/**
 * The com.microsoft attention rewrites (rewrites/attention.ts): each contrib op as onnxruntime runs it equals
 * its canonical standard-op graph; gradient × input through the rewritten ops equals finite differences; and
 * whole fused-style models (test/fixtures/ortFusedExports.ts) attribute exactly like the same weights exported in plain style.
 */
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import type { Graph } from '../../src/engine/onnx/graph';
import { GraphBuilder, emptyGraph, valueInfo } from '../../src/engine/onnx/builder';
import type { AttrValue } from '../../src/engine/onnx/builder';
import { encodeModel } from '../../src/engine/onnx/io';
import type { DType } from '../../src/engine/onnx/tensor';
import { canonicalize, rewriteFor } from '../../src/engine/relevance/canonicalize';
import { LrpLensError } from '../../src/engine/errors';
import { Session } from '../../src/engine/runtime/session';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { buildGpt2Like, buildLlamaLike } from '../fixtures/torchExports';
import { buildGenaiLlama, buildOrtGpt2 } from '../fixtures/ortFusedExports';
import type { FusedOptions } from '../fixtures/ortFusedExports';
import { leftPad } from '../../src/engine/runtime/feeds';
import type { TokenBatch } from '../../src/engine/runtime/feeds';
import type { Values } from '../support/relevanceHarness';
import {
  CompiledModel,
  cloneGraph,
  finiteDifferences,
  forward,
  lastTokenSeed,
  maxAbs,
  relativeError,
  rows,
  single,
} from '../support/relevanceHarness';

// ---------------------------------------------------------------------------------------------------------
// (a) one contrib op: onnxruntime vs the canonical graph

interface OpInput {
  name: string;
  dtype: DType;
  dims: number[];
  /** Fixed values; random floats in [−1, 1) otherwise. */
  values?: number[];
  /** An initializer rather than a graph input. */
  constant?: boolean;
}

interface OpCase {
  name: string;
  op: string;
  inputs: (OpInput | '')[];
  attrs: Record<string, AttrValue>;
  outputs: number;
}

/** xorshift floats in [−1, 1), so every run feeds the same values. */
function randoms(n: number, seed: number): number[] {
  let s = seed * 2654435761 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 4294967296) * 2 - 1;
  });
}

function sizeOf(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function valuesOf(i: OpInput, seed: number): number[] {
  return i.values ?? randoms(sizeOf(i.dims), seed);
}

function ortTensor(i: OpInput, values: number[]): ort.Tensor {
  if (i.dtype === 'int64')
    return new ort.Tensor(
      'int64',
      BigInt64Array.from(values, (v) => BigInt(v)),
      i.dims,
    );
  if (i.dtype === 'int32') return new ort.Tensor('int32', Int32Array.from(values), i.dims);
  return new ort.Tensor('float32', Float32Array.from(values), i.dims);
}

function withMicrosoftDomain(g: Graph): Graph {
  (g.model.opsetImport as onnx.IOperatorSetIdProto[]).push({ domain: 'com.microsoft', version: 1 });
  return g;
}

/** A graph with the single contrib node, its inputs fed or stored, every output a graph output. */
function opGraph(c: OpCase): { graph: Graph; feeds: Record<string, ort.Tensor> } {
  const graph = withMicrosoftDomain(emptyGraph(17, c.name));
  const b = new GraphBuilder(graph, 'test');
  const feeds: Record<string, ort.Tensor> = {};
  c.inputs.forEach((i, k) => {
    if (!i) return;
    const values = valuesOf(i, 11 + 7 * k);
    if (i.constant) b.initializer(i.name, i.dtype, i.dims, values);
    else {
      graph.inputs.push(valueInfo(i.name, i.dtype, i.dims));
      feeds[i.name] = ortTensor(i, values);
    }
  });
  const outs = b.node(
    c.op,
    c.inputs.map((i) => (i ? i.name : '')),
    c.attrs,
    c.outputs,
    c.op,
    'com.microsoft',
  );
  graph.nodes[graph.nodes.length - 1].name = `the_${c.op}`;
  graph.outputs.push(
    ...outs.map((o) => onnx.ValueInfoProto.create({ name: o, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } })),
  );
  return { graph, feeds };
}

async function runGraph(graph: Graph, feeds: Record<string, ort.Tensor>): Promise<Record<string, number[]>> {
  const session = await Session.create(encodeModel(graph), { optimization: 'disabled' });
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
  } finally {
    await session.release();
  }
}

const f32 = (name: string, dims: number[], extra: Partial<OpInput> = {}): OpInput => ({ name, dtype: 'float32', dims, ...extra });
const i32 = (name: string, dims: number[], values: number[]): OpInput => ({ name, dtype: 'int32', dims, values });
const i64 = (name: string, dims: number[], values: number[]): OpInput => ({ name, dtype: 'int64', dims, values });

/** Rotary caches as onnxruntime-genai stores them: cos/sin(p·θᵢ) [positions, width]. */
function caches(positions: number, width: number): [OpInput, OpInput] {
  const theta = (i: number) => 1 / 10000 ** (i / width);
  const table = (f: (x: number) => number) =>
    Array.from({ length: positions * width }, (_, k) => f(Math.floor(k / width) * theta(k % width)));
  return [
    f32('cos_cache', [positions, width], { constant: true, values: table(Math.cos) }),
    f32('sin_cache', [positions, width], { constant: true, values: table(Math.sin) }),
  ];
}

const B = 2;
const S = 5;
const POS = i64('position_ids', [B, S], [0, 1, 2, 3, 4, 3, 4, 5, 6, 7]);

function rotaryCases(): OpCase[] {
  const cases: OpCase[] = [];
  for (const layout of ['3-D [B, S, N·H]', '4-D [B, N, S, H]']) {
    for (const interleaved of [0, 1]) {
      for (const partial of [false, true]) {
        const [n, h] = [3, 8];
        const x = f32('x', layout.startsWith('3') ? [B, S, n * h] : [B, n, S, h]);
        const attrs: Record<string, AttrValue> = { interleaved, ...(partial ? { rotary_embedding_dim: 4, num_heads: n } : {}) };
        cases.push({
          name: `RotaryEmbedding ${layout}, interleaved=${interleaved}${partial ? ', rotary_embedding_dim 4 of 8' : ''}`,
          op: 'RotaryEmbedding',
          inputs: [x, POS, ...caches(12, partial ? 2 : 4)],
          attrs,
          outputs: 1,
        });
      }
    }
  }
  cases.push({
    name: 'RotaryEmbedding with a start offset as position_ids',
    op: 'RotaryEmbedding',
    inputs: [f32('x', [B, S, 16]), i64('position_ids', [1], [3]), ...caches(12, 4)],
    attrs: {},
    outputs: 1,
  });
  return cases;
}

function gqaCases(): OpCase[] {
  const [n, kv, h] = [4, 2, 8];
  const gqa = (
    name: string,
    o: {
      seqlens?: number[];
      attrs?: Record<string, AttrValue>;
      headSize?: number;
      packed?: boolean;
      rotary?: number;
      extra?: (OpInput | '')[];
      kvHeads?: number;
    } = {},
  ): OpCase => {
    const hs = o.headSize ?? h;
    const kvh = o.kvHeads ?? kv;
    const qkv = o.packed
      ? [f32('query', [B, S, (n + 2 * kvh) * hs]), '' as const, '' as const]
      : [f32('query', [B, S, n * hs]), f32('key', [B, S, kvh * hs]), f32('value', [B, S, kvh * hs])];
    const rot = o.rotary ? caches(16, o.rotary) : ['' as const, '' as const];
    const inputs: (OpInput | '')[] = [
      ...qkv,
      '',
      '',
      i32('seqlens_k', [B], o.seqlens ?? [S - 1, S - 1]),
      i32('total_sequence_length', [], [S]),
      ...rot,
      ...(o.extra ?? []),
    ];
    while (inputs[inputs.length - 1] === '') inputs.pop();
    return {
      name: `GroupQueryAttention ${name}`,
      op: 'GroupQueryAttention',
      inputs,
      attrs: { num_heads: n, kv_num_heads: kvh, ...(o.rotary ? { do_rotary: 1 } : {}), ...o.attrs },
      outputs: 3,
    };
  };
  return [
    gqa('(4 query heads, 2 KV heads)'),
    gqa('multi-query (1 KV head)', { kvHeads: 1 }),
    gqa('right-padded batch (seqlens_k 4 and 2)', { seqlens: [4, 2] }),
    gqa('packed QKV', { packed: true }),
    gqa('scale, softcap', { attrs: { scale: { float: 0.3 }, softcap: { float: 0.8 } } }),
    gqa('local_window_size 2', { attrs: { local_window_size: 2 } }),
    gqa('attention_bias', { extra: ['', f32('attention_bias', [1, 1, S, S])] }),
    gqa('do_rotary (head size 16)', { headSize: 16, rotary: 8 }),
    gqa('do_rotary, interleaved', { headSize: 16, rotary: 8, attrs: { rotary_interleaved: 1 } }),
    gqa('do_rotary on 16 of 32 channels, packed QKV', { headSize: 32, rotary: 8, packed: true }),
    gqa('do_rotary ignores position_ids on CPU (rotates at 0..S−1)', {
      headSize: 16,
      rotary: 8,
      extra: [i64('position_ids', [B, S], [0, 2, 4, 6, 8, 3, 4, 5, 6, 7])],
    }),
  ];
}

function mhaCases(): OpCase[] {
  const [n, h] = [3, 4];
  const mask = i32('key_padding_mask', [B, S], [1, 1, 1, 1, 1, 0, 0, 1, 1, 1]);
  const mha = (
    name: string,
    o: { attrs?: Record<string, AttrValue>; bias?: boolean; mask?: boolean; attnBias?: boolean; v?: number } = {},
  ): OpCase => {
    const inputs: (OpInput | '')[] = [
      f32('query', [B, S, n * h]),
      f32('key', [B, S, n * h]),
      f32('value', [B, S, n * (o.v ?? h)]),
      o.bias ? f32('bias', [n * h * 2 + n * (o.v ?? h)], { constant: true }) : '',
      o.mask ? mask : '',
      o.attnBias ? f32('attention_bias', [1, n, S, S]) : '',
    ];
    while (inputs[inputs.length - 1] === '') inputs.pop();
    return { name: `MultiHeadAttention ${name}`, op: 'MultiHeadAttention', inputs, attrs: { num_heads: n, ...o.attrs }, outputs: 3 };
  };
  return [
    mha('(bidirectional)'),
    mha('with bias, value head size 6', { bias: true, v: 6 }),
    mha('unidirectional', { attrs: { unidirectional: 1 } }),
    mha('unidirectional + left-padding key_padding_mask', { attrs: { unidirectional: 1 }, mask: true }),
    mha('key_padding_mask, mask_filter_value, scale', { mask: true, attrs: { mask_filter_value: { float: -50 }, scale: { float: 0.7 } } }),
    mha('attention_bias', { attnBias: true, attrs: { unidirectional: 1 } }),
  ];
}

function attentionCases(): OpCase[] {
  const [n, h] = [3, 4];
  const hidden = n * h;
  const mask = i32('mask_index', [B, S], [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  const att = (name: string, o: { attrs?: Record<string, AttrValue>; mask?: OpInput; sizes?: number[]; past?: boolean } = {}): OpCase => {
    const width = (o.sizes ?? [hidden, hidden, hidden]).reduce((a, c) => a + c, 0);
    const inputs: (OpInput | '')[] = [
      f32('input', [B, S, hidden]),
      f32('weights', [hidden, width], { constant: true }),
      f32('bias', [width], { constant: true }),
      o.mask ?? '',
      o.past ? f32('past', [2, B, n, 0, h]) : '',
    ];
    while (inputs[inputs.length - 1] === '') inputs.pop();
    return {
      name: `Attention ${name}`,
      op: 'Attention',
      inputs,
      attrs: { num_heads: n, ...(o.sizes ? { qkv_hidden_sizes: o.sizes } : {}), ...o.attrs },
      outputs: o.past ? 2 : 1,
    };
  };
  return [
    att('unidirectional (GPT-2)', { attrs: { unidirectional: 1 } }),
    att('unidirectional + left-padded 2-D mask + empty past → present', { attrs: { unidirectional: 1 }, mask, past: true }),
    att('bidirectional with 2-D mask', { mask }),
    att('3-D mask [B, S, T]', {
      mask: i32(
        'mask_index',
        [B, S, S],
        Array.from({ length: B * S * S }, (_, k) => ((k * 7) % 5 === 0 ? 0 : 1)),
      ),
    }),
    att('qkv_hidden_sizes (value 6), scale', { sizes: [hidden, hidden, 6], attrs: { unidirectional: 1, scale: { float: 0.4 } } }),
  ];
}

describe('attention rewrites: the contrib op in onnxruntime equals its canonical graph (float32)', () => {
  for (const c of [...rotaryCases(), ...gqaCases(), ...mhaCases(), ...attentionCases()]) {
    it(c.name, async () => {
      const { graph, feeds } = opGraph(c);
      const canonical = canonicalize(cloneGraph(graph));
      assert.deepEqual(
        canonical.graph.nodes.filter((n) => n.domain),
        [],
        'no contrib op is left',
      );
      assert.equal(canonical.rewrites[`com.microsoft.${c.op}`], 1);
      const expected = await runGraph(graph, feeds);
      const actual = await runGraph(canonical.graph, feeds);
      for (const [name, want] of Object.entries(expected)) {
        const got = actual[name];
        assert.equal(got.length, want.length, `${name}: ${got.length} values, onnxruntime gives ${want.length}`);
        const diff = maxAbs(got.map((x, i) => x - want[i]));
        assert.ok(maxAbs(want) > 0.05, `${name} is not trivial`);
        assert.ok(diff <= 1e-5, `${name}: max |Δ| = ${diff.toExponential(2)}`);
      }
    });
  }
});

describe('attention rewrites refuse what they do not model, naming the op and node', () => {
  const refusals: [string, OpCase, RegExp][] = [
    ['GroupQueryAttention with head_sink', gqaWith({ extra: ['', '', f32('head_sink', [4])] }), /head_sink/],
    ['GroupQueryAttention with smooth_softmax', gqaWith({ attrs: { smooth_softmax: 1 } }), /smooth_softmax/],
    [
      'MultiHeadAttention with packed QKV',
      { name: 'packed', op: 'MultiHeadAttention', inputs: [f32('query', [B, S, 3, 3, 4])], attrs: { num_heads: 3 }, outputs: 1 },
      /packed/,
    ],
    [
      'Attention with a 1-D mask_index',
      { ...attentionCases()[0], inputs: [...attentionCases()[0].inputs, i32('mask_index', [B], [5, 3])] },
      /mask_index/,
    ],
  ];
  for (const [label, c, why] of refusals) {
    it(label, () => {
      const { graph } = opGraph(c);
      assert.throws(
        () => canonicalize(graph),
        (err: unknown) => {
          assert.ok(LrpLensError.is(err, 'unsupported-op'), String(err));
          assert.match(err.message, why);
          assert.match(err.message, new RegExp(`com\\.microsoft\\.${c.op}, node 'the_${c.op}'`));
          return true;
        },
      );
    });
  }

  it('a past key/value computed inside the graph (not the empty cache the compiler feeds)', () => {
    const { graph } = opGraph(gqaWith({}));
    const node = graph.nodes[0];
    graph.nodes.unshift({ name: 'make_past', opType: 'Identity', domain: '', inputs: ['key'], outputs: ['past'], attributes: [] });
    node.inputs[3] = node.inputs[4] = 'past';
    graph.invalidate();
    assert.throws(
      () => canonicalize(graph),
      /past key\/value that is not a model input.*GroupQueryAttention, node 'the_GroupQueryAttention'/,
    );
  });
});

function gqaWith(o: { attrs?: Record<string, AttrValue>; extra?: (OpInput | '')[] }): OpCase {
  const inputs = [
    f32('query', [B, S, 16]),
    f32('key', [B, S, 8]),
    f32('value', [B, S, 8]),
    '' as const,
    '' as const,
    i32('seqlens_k', [B], [4, 4]),
    i32('total_sequence_length', [], [S]),
    '' as const,
    '' as const,
    ...(o.extra ?? []),
  ];
  return { name: 'gqa', op: 'GroupQueryAttention', inputs, attrs: { num_heads: 4, kv_num_heads: 2, ...o.attrs }, outputs: 3 };
}

// ---------------------------------------------------------------------------------------------------------
// (b), (c) whole models: fused export vs the plain export of the same weights

interface Variant {
  name: string;
  fused: (c: SyntheticConfig, o?: FusedOptions) => Graph;
  plain: (c: SyntheticConfig) => Graph;
  options: FusedOptions;
  cfg: Omit<SyntheticConfig, 'dtype'>;
  /** The ops the fusedNorms export adds (rewritten on another branch; its test skips until they are). */
  normOps: string[];
  /** The op models left padding (GroupQueryAttention does not: its batches here have equal lengths). */
  leftPadding: boolean;
}

const BASE: Omit<SyntheticConfig, 'dtype'> = { layers: 2, hidden: 16, heads: 4, ffn: 24, vocab: 40, maxPositions: 32, seed: 5 };
const LLAMA_NORMS = ['SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization'];

const VARIANTS: Variant[] = [
  {
    name: 'onnxruntime-genai Llama (GroupQueryAttention with do_rotary)',
    fused: buildGenaiLlama,
    plain: buildLlamaLike,
    options: {},
    cfg: { ...BASE, hidden: 32, heads: 2, kvHeads: 1, seed: 6 },
    normOps: LLAMA_NORMS,
    leftPadding: false,
  },
  {
    name: 'Llama with RotaryEmbedding + GroupQueryAttention',
    fused: buildGenaiLlama,
    plain: buildLlamaLike,
    options: { attention: 'gqa' },
    cfg: { ...BASE, hidden: 32, kvHeads: 2, seed: 7 },
    normOps: LLAMA_NORMS,
    leftPadding: false,
  },
  {
    name: 'Llama with RotaryEmbedding + MultiHeadAttention',
    fused: buildGenaiLlama,
    plain: buildLlamaLike,
    options: { attention: 'mha' },
    cfg: { ...BASE, seed: 8 },
    normOps: LLAMA_NORMS,
    leftPadding: true,
  },
  {
    name: 'onnxruntime-optimised GPT-2 (Attention)',
    fused: buildOrtGpt2,
    plain: buildGpt2Like,
    options: {},
    cfg: { ...BASE, seed: 9 },
    normOps: ['SkipLayerNormalization', 'FastGelu'],
    leftPadding: true,
  },
];

/** Distinct ids (finite differences perturb one embedding row per position); targets stay out of the prompt. */
const PROMPT = [5, 17, 3, 26, 11, 38];
const SPREAD = { targets: [PROMPT.map((_, i) => [1, 2, 4, 6, 7, 8][i])], weights: [PROMPT.map((_, i) => 0.5 + 0.25 * i)] };

const OUTPUTS = ['lrp_tokens', 'lrp_layers', 'lrp_heads', 'lrp_neurons'];

/** A single prompt, a batch of two equal-length rows and, where the op models it, a left-padded batch. */
function batches(leftPadding: boolean): TokenBatch[] {
  return [single(PROMPT), leftPad([PROMPT, [...PROMPT].reverse()], 0), ...(leftPadding ? [leftPad([PROMPT, [30, 21, 9]], 0)] : [])];
}

/** Logits at real (unpadded) positions: padding rows are never read and the exports fill them differently. */
function realLogits(logits: Values, batch: TokenBatch): number[] {
  const v = logits.dims[2];
  return batch.mask.flat().flatMap((m, p) => (m ? logits.data.slice(p * v, (p + 1) * v) : []));
}

/** Logits and relevance outputs of the fused and the plain export agree. */
async function assertSameAttribution(fused: Graph, plain: Graph, mode: 'attnlrp' | 'gradxinput', v: Variant): Promise<void> {
  const [a, b] = await Promise.all([CompiledModel.create(fused, mode), CompiledModel.create(plain, mode)]);
  try {
    assert.deepEqual(a.info.warnings, [], 'layers, heads and neurons are recognised');
    assert.deepEqual([a.info.layers, a.info.heads, a.info.neurons], [v.cfg.layers, v.cfg.heads, v.cfg.ffn]);
    for (const batch of batches(v.leftPadding)) {
      const seed = batch.ids.length === 1 ? SPREAD : lastTokenSeed(batch, 13, 29);
      const [x, y] = [await a.run(batch, seed), await b.run(batch, seed)];
      const logitsError = relativeError(realLogits(x.logits, batch), realLogits(y.logits, batch));
      assert.ok(logitsError <= 1e-5, `logits differ by ${logitsError.toExponential(2)}`);
      for (const name of mode === 'attnlrp' ? OUTPUTS : ['lrp_tokens']) {
        const err = relativeError(x[name].data, y[name].data);
        assert.ok(maxAbs(y[name].data) > 1e-3, `${name} is not trivial`);
        assert.ok(
          err <= 1e-4,
          `${mode} ${name}: relative error ${err.toExponential(2)}\n fused ${x[name].data.slice(0, 8).join(' ')}\n plain ${y[name].data.slice(0, 8).join(' ')}`,
        );
      }
    }
  } finally {
    await Promise.all([a.release(), b.release()]);
  }
}

for (const v of VARIANTS) {
  describe(`fused export: ${v.name}`, () => {
    const cfg32: SyntheticConfig = { ...v.cfg, dtype: 'float32' };
    const fused = v.fused(cfg32, v.options);
    const plain = v.plain(cfg32);

    it('onnxruntime runs it with the logits of the plain export of the same weights', async () => {
      for (const batch of batches(v.leftPadding)) {
        const err = relativeError(realLogits(await forward(fused, batch), batch), realLogits(await forward(plain, batch), batch));
        assert.ok(err <= 1e-5, `relative error ${err.toExponential(2)}`);
      }
    });

    it("compiled, it keeps onnxruntime's forward pass of the fused export (a left-padded batch too)", async () => {
      // For GroupQueryAttention this pins onnxruntime's own left-padding behaviour (padding keys attended).
      const compiled = await CompiledModel.create(fused, 'attnlrp');
      try {
        for (const batch of [single(PROMPT), leftPad([PROMPT, [30, 21, 9]], 0)]) {
          const got = realLogits((await compiled.run(batch, lastTokenSeed(batch, 13))).logits, batch);
          const err = relativeError(got, realLogits(await forward(fused, batch), batch));
          assert.ok(err <= 1e-5, `relative error ${err.toExponential(2)}`);
        }
      } finally {
        await compiled.release();
      }
    });

    for (const mode of ['attnlrp', 'gradxinput'] as const) {
      it(`${mode}: compiled, it attributes like the plain export (tokens, layers, heads, neurons) and keeps its logits`, async () => {
        await assertSameAttribution(fused, plain, mode, v);
      });
    }

    it('gradxinput through the rewritten ops equals central finite differences (float64, canonical graph)', async () => {
      // onnxruntime's contrib attention ops have float kernels only; the canonical graph (equal to them, see
      // above) runs in double.
      const canonical = canonicalize(v.fused({ ...v.cfg, dtype: 'float64' }, v.options)).graph;
      const compiled = await CompiledModel.create(canonical, 'gradxinput');
      try {
        const lrp = rows((await compiled.run(single(PROMPT), SPREAD)).lrp_tokens)[0];
        const fd = await finiteDifferences(canonical, PROMPT, SPREAD);
        assert.ok(maxAbs(fd) > 1e-3, 'relevance is not trivial');
        const err = relativeError(lrp, fd);
        assert.ok(err <= 1e-4, `relative error ${err.toExponential(2)}\n lrp ${lrp.join(' ')}\n fd  ${fd.join(' ')}`);
      } finally {
        await compiled.release();
      }
    });

    describe(`with fusedNorms (${v.normOps.join(', ')})`, () => {
      const fusedNorms = v.fused(cfg32, { ...v.options, fusedNorms: true });

      it('onnxruntime runs it with the logits of the plain export', async () => {
        const [x, y] = [await forward(fusedNorms, single(PROMPT)), await forward(plain, single(PROMPT))];
        assert.ok(relativeError(x.data, y.data) <= 1e-5, `relative error ${relativeError(x.data, y.data).toExponential(2)}`);
      });

      it('attributes like the plain export (fused norms and activations rewritten too)', async () => {
        const missing = fusedNorms.nodes
          .filter((n) => v.normOps.includes(n.opType) && !rewriteFor(n))
          .map((n) => `${n.domain || 'ai.onnx'}.${n.opType}`);
        assert.deepEqual(missing, [], 'every fused norm and activation has a rewrite');
        await assertSameAttribution(fusedNorms, plain, 'attnlrp', v);
      });
    });
  });
}
