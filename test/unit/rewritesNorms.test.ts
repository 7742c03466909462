/**
 * Rewrites of onnxruntime's fused normalisation and GELU-family ops (rewrites/norms.ts, standard Gelu):
 * (1) the canonical graph computes what onnxruntime's kernels compute, every output included;
 * (2) gradient × input through the rewrite equals finite differences;
 * (3) in attnlrp mode the decomposition is recognised: RMSNorm is the identity, LayerNorm the ε-rule with σ
 *     constant, the activations the identity rule, and the relevance budget closes.
 */
import assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import { GraphBuilder, emptyGraph, valueInfo } from '../../src/engine/onnx/builder';
import type { AttrValue } from '../../src/engine/onnx/builder';
import type { Graph } from '../../src/engine/onnx/graph';
import { dtypeCode } from '../../src/engine/onnx/tensor';
import type { FloatDType } from '../../src/engine/onnx/tensor';
import { encodeModel } from '../../src/engine/onnx/io';
import { canonicalize } from '../../src/engine/relevance/canonicalize';
import type { RelevanceMode } from '../../src/engine/relevance/mode';
import { Session, floatTensor, tensorNumbers } from '../../src/engine/runtime/session';
import { CompiledModel, budget, cloneGraph, erf, finiteDifferences, relativeError, single } from '../support/relevanceHarness';
import type { Outputs, Seed } from '../support/relevanceHarness';

const MS = 'com.microsoft';
const VOCAB = 8; // the shape probe feeds ids up to 7
const H = 4;

/** A deterministic "random" matrix with entries in [-0.85, 0.95]. */
function matrix(rows: number, cols: number, salt: number): number[][] {
  return Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => Math.sin(1.7 * i + 2.3 * j + salt) * 0.9 + 0.05));
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const col = (m: number[][], j: number) => m.map((r) => r[j]);
const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);

const GAMMA = [1.2, 0.8, -0.5, 1.1];
const BETA = [0.1, -0.3, 0.2, 0.05];
const BIAS = [0.25, -0.15, 0.3, -0.2];

/** Appends a fused op; `present[i]` false leaves output i out (empty name). Returns the output names. */
function fused(b: GraphBuilder, op: string, inputs: string[], attrs: Record<string, AttrValue>, present: boolean[], domain = MS): string[] {
  const outs = b.node(op, inputs, attrs, present.length, op, domain);
  const node = b.graph.nodes[b.graph.nodes.length - 1];
  node.outputs = outs.map((o, i) => (present[i] ? o : ''));
  return node.outputs;
}

/** Weights in the model's float type, created once per graph. */
function weights(b: GraphBuilder, dtype: FloatDType) {
  const init = (name: string, dims: number[], values: number[]) =>
    b.graph.initializers.has(name) ? name : b.initializer(name, dtype, dims, values);
  return {
    gamma: () => init('gamma', [H], GAMMA),
    beta: () => init('beta', [H], BETA),
    bias: () => init('bias', [H], BIAS),
    A: () => init('A', [H, H], matrix(H, H, 0.7).flat()),
    C: () => init('C', [H, H], matrix(H, H, 2.9).flat()),
  };
}

type Body = (b: GraphBuilder, x: string, dtype: FloatDType) => string;

/** input_ids → embedding [VOCAB, h] → body → LM head [h', VOCAB] → logits. */
function tinyLm(dtype: FloatDType, E: number[][], W: number[][], body: Body, opset = 17): Graph {
  const g = emptyGraph(opset, 'norms');
  g.model.opsetImport!.push({ domain: MS, version: 1 });
  const b = new GraphBuilder(g, '/t');
  g.inputs.push(valueInfo('input_ids', 'int64', ['batch', 'sequence']));
  b.initializer('embed', dtype, [VOCAB, E[0].length], E.flat());
  b.initializer('head', dtype, [W.length, VOCAB], W.flat());
  const x = b.op('Gather', ['embed', 'input_ids'], { axis: 0 });
  g.nodes.push({ name: 'lm_head', opType: 'MatMul', domain: '', inputs: [body(b, x, dtype), 'head'], outputs: ['logits'], attributes: [] });
  g.outputs.push(valueInfo('logits', dtype, ['batch', 'sequence', VOCAB]));
  return g;
}

async function runGraph(g: Graph, dtype: FloatDType, feeds: Record<string, number[]>, dims: number[]): Promise<Record<string, number[]>> {
  const session = await Session.create(encodeModel(g));
  try {
    const fed = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, floatTensor(dtype, v, dims)]));
    const out = await session.run(fed);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, tensorNumbers(v)]));
  } finally {
    await session.release();
  }
}

async function relevance(g: Graph, mode: RelevanceMode, ids: number[], seed: Seed): Promise<Outputs> {
  const compiled = await CompiledModel.create(g, mode);
  try {
    return await compiled.run(single(ids), seed);
  } finally {
    await compiled.release();
  }
}

function closeAll(actual: number[], expected: number[], what: string, tol: number): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) =>
    assert.ok(Math.abs(a - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: got ${a}, expected ${expected[i]}`),
  );
}

interface Case {
  name: string;
  op: string;
  domain?: string;
  opset?: number;
  /** Emits the op on x [2, 3, H]; returns every output to compare (onnxruntime vs canonical). */
  build: (b: GraphBuilder, x: string) => string[];
  /** Input magnitude: small inputs make ε matter, so a wrong default ε shows. */
  scale?: number;
  /** Input type (float32 unless said) and each output's type where it differs. */
  dtype?: FloatDType;
  outputTypes?: FloatDType[];
}

const rms = (v: number[], eps: number) => 1 / Math.sqrt(sum(v.map((x) => x * x)) / v.length + eps);

describe('rewrites of onnxruntime normalisation and GELU ops', () => {
  describe('(1) canonical graph = onnxruntime kernel, all outputs', () => {
    const w = (b: GraphBuilder) => weights(b, 'float32');
    // onnxruntime registers SimplifiedLayerNormalization in the default domain only (com.microsoft fails to load).
    const cases: Case[] = [
      {
        name: 'SimplifiedLayerNormalization (Y, inv_std_var)',
        op: 'SimplifiedLayerNormalization',
        domain: '',
        build: (b, x) =>
          fused(b, 'SimplifiedLayerNormalization', [x, w(b).gamma()], { axis: -1, epsilon: { float: 1e-6 } }, [true, true], ''),
      },
      {
        name: 'SimplifiedLayerNormalization in float64 (inv_std_var in the stash type, float)',
        op: 'SimplifiedLayerNormalization',
        domain: '',
        dtype: 'float64',
        outputTypes: ['float64', 'float32'],
        build: (b, x) =>
          fused(
            b,
            'SimplifiedLayerNormalization',
            [x, b.initializer('gamma', 'float64', [H], GAMMA)],
            { epsilon: { float: 1e-6 } },
            [true, true],
            '',
          ),
      },
      {
        name: 'SimplifiedLayerNormalization, default ε, small inputs',
        op: 'SimplifiedLayerNormalization',
        domain: '',
        scale: 3e-3,
        build: (b, x) => fused(b, 'SimplifiedLayerNormalization', [x, w(b).gamma()], {}, [true], ''),
      },
      {
        name: 'SimplifiedLayerNormalization over the last two axes',
        op: 'SimplifiedLayerNormalization',
        domain: '',
        build: (b, x) =>
          fused(
            b,
            'SimplifiedLayerNormalization',
            [x, b.initializer('gamma2', 'float32', [3, H], matrix(3, H, 4.4).flat())],
            { axis: -2 },
            [true, true],
            '',
          ),
      },
      {
        name: 'SkipSimplifiedLayerNormalization with bias (output, inv_std_var, sum), opset 21',
        op: 'SkipSimplifiedLayerNormalization',
        opset: 21,
        build: (b, x) =>
          fused(
            b,
            'SkipSimplifiedLayerNormalization',
            [x, b.MatMul(x, w(b).A()), w(b).gamma(), w(b).bias()],
            { epsilon: { float: 1e-6 } },
            [true, false, true, true],
          ),
      },
      {
        name: 'SkipSimplifiedLayerNormalization, no bias, default ε, small inputs',
        op: 'SkipSimplifiedLayerNormalization',
        scale: 3e-3,
        build: (b, x) =>
          fused(b, 'SkipSimplifiedLayerNormalization', [x, b.MatMul(x, w(b).A()), w(b).gamma()], {}, [true, false, false, true]),
      },
      {
        name: 'SkipSimplifiedLayerNormalization, 2-D skip broadcast over the batch',
        op: 'SkipSimplifiedLayerNormalization',
        build: (b, x) =>
          fused(
            b,
            'SkipSimplifiedLayerNormalization',
            [x, b.initializer('skip', 'float32', [3, H], matrix(3, H, 1.3).flat()), w(b).gamma()],
            { epsilon: { float: 1e-5 } },
            [true],
          ),
      },
      {
        name: 'SkipLayerNormalization with beta and bias (all four outputs), opset 21',
        op: 'SkipLayerNormalization',
        opset: 21,
        build: (b, x) =>
          fused(
            b,
            'SkipLayerNormalization',
            [x, b.MatMul(x, w(b).A()), w(b).gamma(), w(b).beta(), w(b).bias()],
            { epsilon: { float: 1e-5 } },
            [true, true, true, true],
          ),
      },
      {
        name: 'SkipLayerNormalization, no beta, bias, default ε, small inputs',
        op: 'SkipLayerNormalization',
        scale: 3e-3,
        build: (b, x) =>
          fused(b, 'SkipLayerNormalization', [x, b.MatMul(x, w(b).A()), w(b).gamma(), '', w(b).bias()], {}, [true, false, false, true]),
      },
      {
        name: 'SkipLayerNormalization, no beta, no bias',
        op: 'SkipLayerNormalization',
        build: (b, x) => fused(b, 'SkipLayerNormalization', [x, b.MatMul(x, w(b).A()), w(b).gamma()], { epsilon: { float: 1e-5 } }, [true]),
      },
      { name: 'Gelu', op: 'Gelu', scale: 2, build: (b, x) => fused(b, 'Gelu', [x], {}, [true]) },
      { name: 'BiasGelu', op: 'BiasGelu', scale: 2, build: (b, x) => fused(b, 'BiasGelu', [x, w(b).bias()], {}, [true]) },
      { name: 'FastGelu', op: 'FastGelu', scale: 2, build: (b, x) => fused(b, 'FastGelu', [x], {}, [true]) },
      { name: 'FastGelu with bias', op: 'FastGelu', scale: 2, build: (b, x) => fused(b, 'FastGelu', [x, w(b).bias()], {}, [true]) },
      { name: 'QuickGelu, default α', op: 'QuickGelu', scale: 2, build: (b, x) => fused(b, 'QuickGelu', [x], {}, [true]) },
      {
        name: 'QuickGelu, α = 1.3',
        op: 'QuickGelu',
        scale: 2,
        build: (b, x) => fused(b, 'QuickGelu', [x], { alpha: { float: 1.3 } }, [true]),
      },
      {
        name: 'Gelu (opset 20), approximate none',
        op: 'Gelu',
        domain: '',
        opset: 20,
        scale: 2,
        build: (b, x) => fused(b, 'Gelu', [x], {}, [true], ''),
      },
      {
        name: 'Gelu (opset 20), approximate tanh',
        op: 'Gelu',
        domain: '',
        opset: 20,
        scale: 2,
        build: (b, x) => fused(b, 'Gelu', [x], { approximate: 'tanh' }, [true], ''),
      },
    ];

    for (const c of cases) {
      it(c.name, async () => {
        const g = emptyGraph(c.opset ?? 17, 'op');
        g.model.opsetImport!.push({ domain: MS, version: 1 });
        const b = new GraphBuilder(g, '/op');
        const dtype = c.dtype ?? 'float32';
        g.inputs.push(valueInfo('x', dtype, [2, 3, H]));
        const outs = c.build(b, 'x').filter((o) => o);
        outs.forEach((o, i) =>
          g.outputs.push(
            onnx.ValueInfoProto.create({ name: o, type: { tensorType: { elemType: dtypeCode(c.outputTypes?.[i] ?? dtype) } } }),
          ),
        );
        const x = Array.from({ length: 2 * 3 * H }, (_, i) => (c.scale ?? 1) * Math.sin(1.3 * i + 0.4) * 1.5);

        const canonical = canonicalize(cloneGraph(g));
        const label = c.domain === '' ? c.op : `${MS}.${c.op}`;
        assert.equal(canonical.rewrites[label], 1, `${label} rewritten`);
        assert.ok(!canonical.graph.nodes.some((n) => n.opType === c.op || n.domain === MS), 'no fused op left');

        const expected = await runGraph(g, dtype, { x }, [2, 3, H]);
        const actual = await runGraph(canonical.graph, dtype, { x }, [2, 3, H]);
        for (const o of outs) {
          const scale = Math.max(1, ...expected[o].map(Math.abs));
          const err = Math.max(...actual[o].map((v, i) => Math.abs(v - expected[o][i]))) / scale;
          assert.equal(actual[o].length, expected[o].length, `${o}: size`);
          assert.ok(err <= 1e-5, `${o}: max error ${err}`);
        }
      });
    }

    it('SkipSimplifiedLayerNormalization whose mean output is read is left alone (refused)', () => {
      const g = emptyGraph(17, 'op');
      g.model.opsetImport!.push({ domain: MS, version: 1 });
      const b = new GraphBuilder(g, '/op');
      g.inputs.push(valueInfo('x', 'float32', [2, 3, H]));
      const [y, mean] = fused(b, 'SkipSimplifiedLayerNormalization', ['x', 'x', weights(b, 'float32').gamma()], {}, [true, true]);
      g.outputs.push(valueInfo(y, 'float32', [2, 3, H]), valueInfo(mean, 'float32', [2, 3, 1]));
      const canonical = canonicalize(g);
      assert.equal(canonical.rewrites[`${MS}.SkipSimplifiedLayerNormalization`], undefined);
      assert.ok(canonical.graph.nodes.some((n) => n.opType === 'SkipSimplifiedLayerNormalization'));
    });
  });

  describe('(2) gradxinput through the rewrite = finite differences', () => {
    const E = matrix(VOCAB, H, 0.2);
    const W = matrix(H, VOCAB, 1.9);
    const ids = [1, 4, 6];
    const seed: Seed = { targets: [[5, 5, 5]], weights: [[0.5, -1, 1]] };
    // Float64 where onnxruntime has double kernels for every op of the rewritten graph (not Erf).
    const cases: { name: string; dtype: FloatDType; opset?: number; body: Body }[] = [
      {
        name: 'SimplifiedLayerNormalization, Y and inv_std_var read',
        dtype: 'float64',
        body: (b, x, dt) => {
          const [y, inv] = fused(
            b,
            'SimplifiedLayerNormalization',
            [x, weights(b, dt).gamma()],
            { axis: -1, epsilon: { float: 1e-5 }, stash_type: 11 },
            [true, true],
            '',
          );
          return b.Add(b.MatMul(y, weights(b, dt).C()), b.Mul(x, inv));
        },
      },
      {
        name: 'SkipSimplifiedLayerNormalization with bias, all three outputs read',
        dtype: 'float64',
        body: (b, x, dt) => {
          const w = weights(b, dt);
          const [y, , inv, s] = fused(
            b,
            'SkipSimplifiedLayerNormalization',
            [b.MatMul(x, w.A()), x, w.gamma(), w.bias()],
            { epsilon: { float: 1e-5 } },
            [true, false, true, true],
          );
          return b.Add(b.Add(s, b.MatMul(y, w.C())), inv);
        },
      },
      {
        name: 'SkipLayerNormalization with beta and bias, all four outputs read',
        dtype: 'float64',
        body: (b, x, dt) => {
          const w = weights(b, dt);
          const [y, mean, inv, s] = fused(
            b,
            'SkipLayerNormalization',
            [b.MatMul(x, w.A()), x, w.gamma(), w.beta(), w.bias()],
            { epsilon: { float: 1e-5 } },
            [true, true, true, true],
          );
          return b.Add(b.Add(s, b.MatMul(y, w.C())), b.Mul(mean, inv));
        },
      },
      {
        name: 'FastGelu with bias',
        dtype: 'float64',
        body: (b, x, dt) => fused(b, 'FastGelu', [b.MatMul(x, weights(b, dt).A()), weights(b, dt).bias()], {}, [true])[0],
      },
      {
        name: 'QuickGelu',
        dtype: 'float64',
        body: (b, x, dt) => fused(b, 'QuickGelu', [b.MatMul(x, weights(b, dt).A())], { alpha: { float: 1.5 } }, [true])[0],
      },
      {
        name: 'Gelu (opset 20), approximate tanh',
        dtype: 'float64',
        opset: 20,
        body: (b, x, dt) => fused(b, 'Gelu', [b.MatMul(x, weights(b, dt).A())], { approximate: 'tanh' }, [true], '')[0],
      },
      { name: 'Gelu', dtype: 'float32', body: (b, x, dt) => fused(b, 'Gelu', [b.MatMul(x, weights(b, dt).A())], {}, [true])[0] },
      {
        name: 'BiasGelu',
        dtype: 'float32',
        body: (b, x, dt) => fused(b, 'BiasGelu', [b.MatMul(x, weights(b, dt).A()), weights(b, dt).bias()], {}, [true])[0],
      },
      {
        name: 'Gelu (opset 20), approximate none',
        dtype: 'float32',
        opset: 20,
        body: (b, x, dt) => fused(b, 'Gelu', [b.MatMul(x, weights(b, dt).A())], {}, [true], '')[0],
      },
    ];

    for (const c of cases) {
      it(`${c.name} (${c.dtype})`, async () => {
        const g = tinyLm(c.dtype, E, W, c.body, c.opset);
        // The fused op may have no double kernel: differentiate the canonical graph, which is what gets compiled.
        const fd = await finiteDifferences(canonicalize(cloneGraph(g)).graph, ids, seed, c.dtype === 'float64' ? 1e-4 : 1e-2);
        const out = await relevance(g, 'gradxinput', ids, seed);
        const err = relativeError(out.lrp_tokens.data, fd);
        assert.ok(err <= 1e-3, `relative error ${err}: ${out.lrp_tokens.data.join(', ')} vs ${fd.join(', ')}`);
      });
    }
  });

  describe('(3) attnlrp: the decomposition is recognised', () => {
    const E = matrix(VOCAB, H, 0.2);
    const W = matrix(H, VOCAB, 1.9);
    const ids = [2, 6, 3];
    const t = 3;
    const seed: Seed = { targets: [ids.map(() => t)], weights: [[1, 1, 1]] };
    const closesBudget = (out: Outputs) => closeAll(budget(out), out.lrp_seed.data, 'Σ tokens + Σ absorbed = seed', 1e-6);

    it('SimplifiedLayerNormalization: RMSNorm is the identity, R_x = R_y', async () => {
      const body: Body = (b, x, dt) =>
        fused(b, 'SimplifiedLayerNormalization', [x, weights(b, dt).gamma()], { epsilon: { float: 1e-5 } }, [true], '')[0];
      const out = await relevance(tinyLm('float64', E, W, body), 'attnlrp', ids, seed);
      const Ry = ids.map((id) => sum(E[id].map((x, j) => x * rms(E[id], 1e-5) * GAMMA[j] * W[j][t])));
      closeAll(out.lrp_tokens.data, Ry, 'R_x', 1e-9);
      closesBudget(out);
    });

    it('SkipSimplifiedLayerNormalization: RMSNorm is the identity, R_x = R_y through input + skip', async () => {
      // skip = x/2: the sum 1.5·x passes R_y unchanged back to the token (no constant on the way).
      const body: Body = (b, x, dt) =>
        fused(
          b,
          'SkipSimplifiedLayerNormalization',
          [x, b.Mul(x, b.scalar(dt, 0.5)), weights(b, dt).gamma()],
          { epsilon: { float: 1e-5 } },
          [true],
        )[0];
      const out = await relevance(tinyLm('float64', E, W, body), 'attnlrp', ids, seed);
      const Ry = ids.map((id) => {
        const s = E[id].map((x) => 1.5 * x);
        return sum(s.map((v, j) => v * rms(s, 1e-5) * GAMMA[j] * W[j][t]));
      });
      closeAll(out.lrp_tokens.data, Ry, 'R_x', 1e-9);
      for (const k of ['bias', 'constant', 'softmax', 'stabiliser'])
        assert.equal(out[`lrp_absorbed_${k}`].data[0], 0, `nothing absorbed (${k})`);
    });

    it('SkipSimplifiedLayerNormalization as a residual block (bias, sum output read): the budget closes', async () => {
      const body: Body = (b, x, dt) => {
        const w = weights(b, dt);
        const [y, , , s] = fused(
          b,
          'SkipSimplifiedLayerNormalization',
          [b.MatMul(x, w.A()), x, w.gamma(), w.bias()],
          { epsilon: { float: 1e-5 } },
          [true, false, false, true],
        );
        return b.Add(s, b.MatMul(y, w.C()));
      };
      const out = await relevance(tinyLm('float64', E, W, body), 'attnlrp', ids, seed);
      assert.ok(Math.abs(out.lrp_absorbed_bias.data[0]) > 1e-3, 'the bias keeps a share');
      closesBudget(out);
    });

    it('onnxruntime-genai block (opset 21): the residual stream is followed through the input_skip_bias_sum outputs', async () => {
      // SimplifiedLayerNormalization → "attention" (one Softmax) → SkipSimplified(attn, x, bias) → "MLP" →
      // SkipSimplified(mlp, sum) as the final norm. The block input is the embedding itself.
      const body: Body = (b, x, dt) => {
        const w = weights(b, dt);
        const [n1] = fused(b, 'SimplifiedLayerNormalization', [x, w.gamma()], {}, [true], '');
        const attn = b.MatMul(b.op('Softmax', [b.MatMul(n1, w.A())], { axis: -1 }), w.C());
        const [n2, , , s1] = fused(b, 'SkipSimplifiedLayerNormalization', [attn, x, w.gamma(), w.bias()], { epsilon: { float: 1e-5 } }, [
          true,
          false,
          false,
          true,
        ]);
        return fused(b, 'SkipSimplifiedLayerNormalization', [b.MatMul(n2, w.A()), s1, w.gamma()], { epsilon: { float: 1e-5 } }, [true])[0];
      };
      const out = await relevance(tinyLm('float64', E, W, body, 21), 'attnlrp', ids, seed);
      assert.ok(out.lrp_layers, 'per-layer relevance is available');
      closeAll(out.lrp_layers.data, out.lrp_tokens.data, 'relevance at the block input = token relevance', 1e-9);
      closesBudget(out);
    });

    it('SkipLayerNormalization: ε-rule through (x − mean)·γ/σ with σ constant; β absorbed; the budget closes', async () => {
      const body: Body = (b, x, dt) => {
        const w = weights(b, dt);
        return fused(b, 'SkipLayerNormalization', [x, b.Mul(x, b.scalar(dt, 0.5)), w.gamma(), w.beta()], { epsilon: { float: 1e-5 } }, [
          true,
        ])[0];
      };
      const out = await relevance(tinyLm('float64', E, W, body), 'attnlrp', ids, seed);
      // R_x = Σ_i s_i·(g_i − mean g), s = 1.5·x, g_i = γ_i·W[i][t]/σ(s).
      const expected = ids.map((id) => {
        const s = E[id].map((x) => 1.5 * x);
        const mean = sum(s) / H;
        const sigma = Math.sqrt(sum(s.map((v) => (v - mean) ** 2)) / H + 1e-5);
        const g = s.map((_, i) => (GAMMA[i] * W[i][t]) / sigma);
        return sum(s.map((v, i) => v * (g[i] - sum(g) / H)));
      });
      closeAll(out.lrp_tokens.data, expected, 'R_x', 1e-9);
      closeAll(out.lrp_absorbed_bias.data, [ids.length * dot(BETA, col(W, t))], 'β share', 1e-9);
      closesBudget(out);
    });

    describe('GELU family: identity rule, R into the activation = R out', () => {
      // One hidden unit: token v's embedding is xs[v]; the bias variants add b before the activation, so the
      // token gets x/(x + b) of R_y and the bias b/(x + b).
      const xs = [-1.3, 0.4, 2.1, -0.2, 0.9, 1.6, -2.4, 0.05];
      const E1 = xs.map((x) => [x]);
      const W1 = [[0.3, -1.2, 0.8, 0.5, -0.4, 1.1, 0.7, -0.9]];
      const t1 = 1;
      const ids1 = [0, 1, 2, 3];
      const seed1: Seed = { targets: [ids1.map(() => t1)], weights: [ids1.map(() => 1)] };
      const geluErf = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
      const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      const bias = 0.35;
      const cases: { name: string; dtype: FloatDType; opset?: number; f: (x: number) => number; biased?: boolean; body: Body }[] = [
        { name: 'Gelu', dtype: 'float32', f: geluErf, body: (b, x) => fused(b, 'Gelu', [x], {}, [true])[0] },
        {
          name: 'BiasGelu',
          dtype: 'float32',
          f: geluErf,
          biased: true,
          body: (b, x, dt) => fused(b, 'BiasGelu', [x, b.initializer('b1', dt, [1], [bias])], {}, [true])[0],
        },
        { name: 'FastGelu', dtype: 'float64', f: geluTanh, body: (b, x) => fused(b, 'FastGelu', [x], {}, [true])[0] },
        {
          name: 'FastGelu with bias',
          dtype: 'float64',
          f: geluTanh,
          biased: true,
          body: (b, x, dt) => fused(b, 'FastGelu', [x, b.initializer('b1', dt, [1], [bias])], {}, [true])[0],
        },
        {
          name: 'QuickGelu',
          dtype: 'float64',
          f: (x) => x / (1 + Math.exp(-1.702 * x)),
          body: (b, x) => fused(b, 'QuickGelu', [x], {}, [true])[0],
        },
        {
          name: 'Gelu (opset 20), approximate none',
          dtype: 'float32',
          opset: 20,
          f: geluErf,
          body: (b, x) => fused(b, 'Gelu', [x], {}, [true], '')[0],
        },
        {
          name: 'Gelu (opset 20), approximate tanh',
          dtype: 'float64',
          opset: 20,
          f: geluTanh,
          body: (b, x) => fused(b, 'Gelu', [x], { approximate: 'tanh' }, [true], '')[0],
        },
      ];
      for (const c of cases) {
        it(`${c.name} (${c.dtype})`, async () => {
          const g = tinyLm(c.dtype, E1, W1, c.body, c.opset);
          const canonical = canonicalize(cloneGraph(g)).graph;
          assert.ok(
            canonical.nodes.some((n) => ['Erf', 'Tanh', 'Sigmoid'].includes(n.opType)),
            'decomposed',
          );
          const out = await relevance(g, 'attnlrp', ids1, seed1);
          const b = c.biased ? bias : 0;
          const Ry = ids1.map((id) => c.f(xs[id] + b) * W1[0][t1]);
          // The identity rule divides by the activation's input z stabilised to z ± 1e-6.
          const z = ids1.map((id) => xs[id] + b);
          const stab = z.map((v) => v + (v < 0 ? -1e-6 : 1e-6));
          const tol = c.dtype === 'float64' ? 1e-9 : 1e-5;
          closeAll(
            out.lrp_tokens.data,
            Ry.map((R, i) => (R * xs[ids1[i]]) / stab[i]),
            'R_x',
            tol,
          );
          closeAll(out.lrp_absorbed_bias.data, [sum(Ry.map((R, i) => (R * b) / stab[i]))], 'bias share', tol);
          closeAll(out.lrp_absorbed_constant.data, [0], 'no constant inside the activation', tol);
          closeAll(budget(out), out.lrp_seed.data, 'budget (with the stabiliser)', c.dtype === 'float64' ? 1e-6 : 1e-5);
        });
      }
    });
  });
});
