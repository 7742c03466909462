/**
 * Each relevance rule against numbers worked out by hand (plain arithmetic below) on a tiny graph:
 * token embedding → op under test → linear LM head → logits. Where a rule's effect on single elements
 * matters, embeddings are one-hot (one non-zero hidden unit per token), so a token's relevance is the
 * relevance of that unit.
 */
import assert from 'node:assert/strict';
import { GraphBuilder, emptyGraph, valueInfo } from '../../src/engine/onnx/builder';
import type { Graph } from '../../src/engine/onnx/graph';
import type { RelevanceMode } from '../../src/engine/relevance/mode';
import { CompiledModel, erf, single } from '../support/relevanceHarness';
import type { Outputs } from '../support/relevanceHarness';

const EPS = 1e-6;
const VOCAB = 8; // the shape probe feeds ids up to 7

interface Tiny {
  /** Embedding rows [VOCAB][H]. */
  E: number[][];
  /** LM head [H'][VOCAB]. */
  W: number[][];
  /** Graph from the embedding x [B, S, H] to the head's input [B, S, H']. */
  body: (b: GraphBuilder, x: string) => string;
  positionIds?: boolean;
}

function tinyLm({ E, W, body, positionIds }: Tiny): Graph {
  const g = emptyGraph(17, 'tiny');
  const b = new GraphBuilder(g, '/tiny');
  g.inputs.push(valueInfo('input_ids', 'int64', ['batch', 'sequence']));
  if (positionIds) g.inputs.push(valueInfo('position_ids', 'int64', ['batch', 'sequence']));
  b.initializer('embed', 'float32', [VOCAB, E[0].length], E.flat());
  b.initializer('head', 'float32', [W.length, VOCAB], W.flat());
  const x = b.op('Gather', ['embed', 'input_ids'], { axis: 0 });
  g.nodes.push({ name: 'lm_head', opType: 'MatMul', domain: '', inputs: [body(b, x), 'head'], outputs: ['logits'], attributes: [] });
  g.outputs.push(valueInfo('logits', 'float32', ['batch', 'sequence', VOCAB]));
  return g;
}

interface Relevance {
  tokens: number[];
  seed: number;
  absorbed: Record<'bias' | 'constant' | 'softmax' | 'stabiliser', number>;
  logits: number[][];
}

/** Seed = Σ_s weights[s] · logit[s, target]. */
async function relevance(
  tiny: Tiny,
  ids: number[],
  target: number,
  weights: number[],
  mode: RelevanceMode = 'attnlrp',
): Promise<Relevance> {
  const compiled = await CompiledModel.create(tinyLm(tiny), mode);
  let out: Outputs;
  try {
    out = await compiled.run(single(ids), { targets: [ids.map(() => target)], weights: [weights] });
  } finally {
    await compiled.release();
  }
  const absorbed = (k: string) => out[`lrp_absorbed_${k}`]?.data[0] ?? 0;
  return {
    tokens: out.lrp_tokens.data,
    seed: out.lrp_seed.data[0],
    absorbed: { bias: absorbed('bias'), constant: absorbed('constant'), softmax: absorbed('softmax'), stabiliser: absorbed('stabiliser') },
    logits: ids.map((_, s) => out.logits.data.slice(s * VOCAB, (s + 1) * VOCAB)),
  };
}

function close(actual: number, expected: number, what: string, tol = 1e-5): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: got ${actual}, expected ${expected}`);
}

function closeAll(actual: number[], expected: number[], what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => close(a, expected[i], `${what}[${i}]`, tol));
}

/** One-hot rows: token v has value vals[v] at hidden unit v mod h. */
function oneHot(h: number, vals: number[]): number[][] {
  return Array.from({ length: VOCAB }, (_, v) => Array.from({ length: h }, (_, i) => (i === v % h ? vals[v] : 0)));
}

/** A deterministic "random" matrix with entries in [-1, 1]. */
function matrix(rows: number, cols: number, salt: number): number[][] {
  return Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => Math.sin(1.7 * i + 2.3 * j + salt) * 0.9 + 0.05));
}

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
const col = (m: number[][], j: number) => m.map((r) => r[j]);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const stab = (z: number) => z + (z < 0 ? -EPS : EPS);

describe('relevance rules, hand-computed', () => {
  describe('linear (ε-rule)', () => {
    // y = x·A + c; head picks y_t: R_x_i = x_i · A[i][t] · R_t / (z_t + ε·sign z_t), bias keeps c_t · R_t / z_t.
    const A = [
      [0.8, -1.1],
      [0.3, 0.6],
    ];
    const c = [0.25, -0.4];
    const E = oneHot(2, [1, 2, -3, 0.5, 1.5, -0.7, 0.9, 2.2]);
    E[3] = [1.5, 0.5];
    const W = [
      [1, 0, 0, 0, 0, 0, 0, 0],
      [0, 1, 0, 0, 0, 0, 0, 0],
    ];
    const tiny: Tiny = {
      E,
      W,
      body: (b, x) => b.Add(b.MatMul(x, b.initializer('A', 'float32', [2, 2], A.flat())), b.initializer('c', 'float32', [2], c)),
    };
    const ids = [1, 2, 3];
    const t = 1;

    for (const mode of ['attnlrp', 'gradxinput'] as const) {
      it(`R_x = x ⊙ (R/z)·Wᵀ and the bias keeps its share (${mode})`, async () => {
        const r = await relevance(tiny, ids, t, [1, 1, 1], mode);
        const expected = ids.map((id) => {
          const x = E[id];
          const z = dot(x, col(A, t)) + c[t];
          const R = z; // the seed is the logit itself
          return x.reduce((s, xi, i) => s + (xi * A[i][t] * R) / stab(z), 0);
        });
        closeAll(r.tokens, expected, 'R_x');
        // token 1 is one-hot at unit 1, token 2 at unit 0: single elements of R_x.
        close(r.tokens[0], E[1][1] * A[1][t], 'R_x of a single unit');
        close(r.tokens[1], E[2][0] * A[0][t], 'R_x of a single unit');
        if (mode === 'attnlrp') {
          close(r.absorbed.bias, 3 * c[t], 'bias share');
          close(sum(r.tokens) + r.absorbed.bias, r.seed, 'conservation');
        }
      });
    }
  });

  describe('addition', () => {
    const W = matrix(2, VOCAB, 0.3);
    const t = 5;
    const E = matrix(VOCAB, 2, 1.1);

    it('residual a + b (both relevant): R_a = a·R/(a+b), R_b = b·R/(a+b)', async () => {
      // a = x, b = x·A + c, y = a + b; R_y_j = y_j·W[j][t].
      const A = [
        [0.5, -0.2],
        [0.7, 0.4],
      ];
      const c = [0.3, -0.6];
      const r = await relevance(
        {
          E,
          W,
          body: (b, x) =>
            b.Add(x, b.Add(b.MatMul(x, b.initializer('A', 'float32', [2, 2], A.flat())), b.initializer('c', 'float32', [2], c))),
        },
        [4, 6],
        t,
        [1, 1],
      );
      let bias = 0;
      const expected = [4, 6].map((id) => {
        const x = E[id];
        const bb = [0, 1].map((j) => dot(x, col(A, j)) + c[j]);
        const y = [0, 1].map((j) => x[j] + bb[j]);
        const Ry = y.map((yj, j) => yj * W[j][t]);
        const Ra = Ry.map((R, j) => (x[j] * R) / stab(y[j]));
        const Rb = Ry.map((R, j) => (bb[j] * R) / stab(y[j]));
        // through the linear b = x·A + c (ε-rule), the bias keeps c_j·R_b_j/b_j
        const RxFromB = x.map((xi, i) => [0, 1].reduce((s, j) => s + (xi * A[i][j] * Rb[j]) / stab(bb[j]), 0));
        bias += [0, 1].reduce((s, j) => s + (c[j] * Rb[j]) / stab(bb[j]), 0);
        return sum(Ra) + sum(RxFromB);
      });
      closeAll(r.tokens, expected, 'R_x');
      close(r.absorbed.bias, bias, 'bias');
      close(sum(r.tokens) + r.absorbed.bias, r.seed, 'conservation');
    });

    it('adding a weight constant: R_a = a·R/(a+c), absorbed as bias', async () => {
      const c = [1.25, -0.5];
      const r = await relevance({ E, W, body: (b, x) => b.Add(x, b.initializer('c', 'float32', [2], c)) }, [2, 3], t, [1, 0.5]);
      const w = [1, 0.5];
      const expected = [2, 3].map((id, s) => w[s] * dot(E[id], col(W, t)));
      closeAll(r.tokens, expected, 'R_a');
      close(r.absorbed.bias, (1 + 0.5) * dot(c, col(W, t)), 'absorbed bias');
      close(r.absorbed.constant, 0, 'absorbed constant');
    });

    it('adding a computed non-relevant tensor (position ids): absorbed as constant', async () => {
      const r = await relevance(
        {
          E,
          W,
          positionIds: true,
          body: (b, x) => b.Add(x, b.Cast(b.op('Unsqueeze', ['position_ids', b.ints([-1])]), 'float32')),
        },
        [2, 3, 7],
        t,
        [1, 1, 1],
      );
      closeAll(
        r.tokens,
        [2, 3, 7].map((id) => dot(E[id], col(W, t))),
        'R_a',
      );
      close(
        r.absorbed.constant,
        [0, 1, 2].reduce((s, p) => s + p * sum(col(W, t)), 0),
        'absorbed constant',
      );
      close(r.absorbed.bias, 0, 'absorbed bias');
    });
  });

  it('multiply / divide by a constant passes R unchanged', async () => {
    const gamma = [1.5, -0.75];
    const E = matrix(VOCAB, 2, 0.7);
    const W = matrix(2, VOCAB, 2.9);
    const t = 2;
    const r = await relevance(
      {
        E,
        W,
        body: (b, x) => b.Div(b.Mul(x, b.initializer('gamma', 'float32', [2], gamma)), b.scalar('float32', 2.5)),
      },
      [1, 5],
      t,
      [1, 1],
    );
    // R_y_j = y_j·W[j][t] with y = x·γ/2.5; R_x = R_y element-wise.
    closeAll(
      r.tokens,
      [1, 5].map((id) => sum(E[id].map((x, j) => ((x * gamma[j]) / 2.5) * W[j][t]))),
      'R_x',
    );
    for (const k of ['bias', 'constant', 'softmax', 'stabiliser'] as const) close(r.absorbed[k], 0, `absorbed ${k}`);
  });

  describe('normalisation', () => {
    const H = 3;
    const E = matrix(VOCAB, H, 0.2);
    const W = matrix(H, VOCAB, 1.9);
    const gamma = [1.2, 0.8, -0.5];
    const beta = [0.1, -0.3, 0.2];
    const t = 3;
    const ids = [2, 6];

    const rmsNorm = (b: GraphBuilder, x: string) => {
      const ms = b.op('ReduceMean', [b.op('Pow', [x, b.scalar('float32', 2)])], { axes: [-1], keepdims: 1 });
      const inv = b.Div(b.scalar('float32', 1), b.op('Sqrt', [b.Add(ms, b.scalar('float32', 1e-5))]));
      return b.Mul(b.Mul(x, inv), b.initializer('gamma', 'float32', [H], gamma));
    };

    it('RMSNorm (decomposed): identity, R_x = R_y', async () => {
      const r = await relevance({ E, W, body: rmsNorm }, ids, t, [1, 1]);
      const expected = ids.map((id) => {
        const x = E[id];
        const rms = Math.sqrt(sum(x.map((v) => v * v)) / H + 1e-5);
        return sum(x.map((v, j) => ((v * gamma[j]) / rms) * W[j][t])); // Σ R_y
      });
      closeAll(r.tokens, expected, 'R_x');
      close(sum(r.tokens), r.seed, 'conservation');
    });

    it('RMSNorm in gradxinput: x·∂f/∂x = f·ε/(mean(x²) + ε) (scale invariance)', async () => {
      const r = await relevance({ E, W, body: rmsNorm }, ids, t, [1, 1], 'gradxinput');
      const expected = ids.map((id) => {
        const x = E[id];
        const ms = sum(x.map((v) => v * v)) / H;
        const f = sum(x.map((v, j) => ((v * gamma[j]) / Math.sqrt(ms + 1e-5)) * W[j][t]));
        return (f * 1e-5) / (ms + 1e-5);
      });
      closeAll(r.tokens, expected, 'R_x', 1e-4);
    });

    // LayerNorm with σ constant: y = (x − mean)·γ/σ + β is linear in x; R_x_i = x_i·(g_i − mean(g)),
    // g_i = γ_i·W[i][t]/σ; β keeps Σ β_i·W[i][t].
    const layerNormExpected = () =>
      ids.map((id) => {
        const x = E[id];
        const mean = sum(x) / H;
        const sigma = Math.sqrt(sum(x.map((v) => (v - mean) ** 2)) / H + 1e-5);
        const g = x.map((_, i) => (gamma[i] * W[i][t]) / sigma);
        const gMean = sum(g) / H;
        return sum(x.map((v, i) => v * (g[i] - gMean)));
      });

    it('LayerNorm (decomposed, opset < 17): ε-rule through (x − mean)·γ/σ with σ constant', async () => {
      const r = await relevance(
        {
          E,
          W,
          body: (b, x) => {
            const mean = b.op('ReduceMean', [x], { axes: [-1], keepdims: 1 });
            const centred = b.Sub(x, mean);
            const variance = b.op('ReduceMean', [b.op('Pow', [centred, b.scalar('float32', 2)])], { axes: [-1], keepdims: 1 });
            const std = b.op('Sqrt', [b.Add(variance, b.scalar('float32', 1e-5))]);
            return b.Add(
              b.Mul(b.Div(centred, std), b.initializer('gamma', 'float32', [H], gamma)),
              b.initializer('beta', 'float32', [H], beta),
            );
          },
        },
        ids,
        t,
        [1, 1],
      );
      closeAll(r.tokens, layerNormExpected(), 'R_x');
      close(r.absorbed.bias, 2 * dot(beta, col(W, t)), 'β share');
      close(sum(r.tokens) + r.absorbed.bias, r.seed, 'conservation');
    });

    it('LayerNormalization (fused, opset 17): the same numbers', async () => {
      const r = await relevance(
        {
          E,
          W,
          body: (b, x) =>
            b.op('LayerNormalization', [x, b.initializer('gamma', 'float32', [H], gamma), b.initializer('beta', 'float32', [H], beta)], {
              axis: -1,
              epsilon: { float: 1e-5 },
            }),
        },
        ids,
        t,
        [1, 1],
      );
      closeAll(r.tokens, layerNormExpected(), 'R_x');
      close(r.absorbed.bias, 2 * dot(beta, col(W, t)), 'β share');
    });
  });

  describe('element-wise activations: identity rule R_x = R_y', () => {
    const xs = [-1.3, 0.4, 2.1, -0.2, 0.9, 1.6, -2.4, 0.05];
    const E = xs.map((x) => [x]);
    const W = [[0.3, -1.2, 0.8, 0.5, -0.4, 1.1, 0.7, -0.9]];
    const t = 1;
    const ids = [0, 1, 2, 3];
    const cases: { name: string; f: (x: number) => number; df: (x: number) => number; body: (b: GraphBuilder, x: string) => string }[] = [
      {
        name: 'GELU, erf form (Div/Erf/Add/Mul/Mul as torch exports it)',
        f: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
        df: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp((-x * x) / 2)) / Math.sqrt(2 * Math.PI),
        body: (b, x) =>
          b.Mul(
            b.Mul(x, b.Add(b.op('Erf', [b.Div(x, b.scalar('float32', Math.SQRT2))]), b.scalar('float32', 1))),
            b.scalar('float32', 0.5),
          ),
      },
      {
        name: 'GELU, tanh form (with Pow)',
        f: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
        df: (x) => {
          const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
          const th = Math.tanh(u);
          return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x);
        },
        body: (b, x) => {
          const half = b.Mul(x, b.scalar('float32', 0.5));
          const inner = b.Mul(
            b.Add(x, b.Mul(b.op('Pow', [x, b.scalar('float32', 3)]), b.scalar('float32', 0.044715))),
            b.scalar('float32', Math.sqrt(2 / Math.PI)),
          );
          return b.Mul(half, b.Add(b.op('Tanh', [inner]), b.scalar('float32', 1)));
        },
      },
      {
        name: 'SiLU (Sigmoid·Mul)',
        f: (x) => x / (1 + Math.exp(-x)),
        df: (x) => {
          const s = 1 / (1 + Math.exp(-x));
          return s * (1 + x * (1 - s));
        },
        body: (b, x) => b.Mul(x, b.op('Sigmoid', [x])),
      },
      { name: 'ReLU', f: (x) => Math.max(0, x), df: (x) => (x > 0 ? 1 : 0), body: (b, x) => b.op('Relu', [x]) },
    ];

    for (const c of cases) {
      it(`${c.name}: attnlrp R_x = R_y; gradxinput x·f′(x)·w`, async () => {
        const r = await relevance({ E, W, body: c.body }, ids, t, [1, 1, 1, 1]);
        const Ry = ids.map((id) => c.f(xs[id]) * W[0][t]);
        closeAll(r.tokens, Ry, 'R_x');
        close(r.absorbed.bias + r.absorbed.constant, 0, 'nothing absorbed by constants inside the activation');
        close(sum(r.tokens) + r.absorbed.stabiliser, r.seed, 'conservation with the stabiliser');
        const g = await relevance({ E, W, body: c.body }, ids, t, [1, 1, 1, 1], 'gradxinput');
        closeAll(
          g.tokens,
          ids.map((id) => xs[id] * c.df(xs[id]) * W[0][t]),
          'x·f′(x)',
        );
      });
    }
  });

  /** roll(x, 1) along the sequence: position s reads x[s + 1 mod S]. */
  const roll = (b: GraphBuilder, x: string) =>
    b.op(
      'Concat',
      [b.op('Slice', [x, b.ints([1]), b.ints([1 << 30]), b.ints([1])]), b.op('Slice', [x, b.ints([0]), b.ints([1]), b.ints([1])])],
      { axis: 1 },
    );

  describe('products of two relevant tensors: uniform rule, half to each factor', () => {
    const xs = [0.7, -1.4, 1.1, 0.6, -0.8, 1.9, 0.3, -0.5];
    const E = xs.map((x) => [x]);
    const W = [[0.4, 1.3, -0.6, 0.9, 0.2, -1.1, 0.5, 0.8]];
    const t = 1;
    const ids = [2, 5];
    const silu = (x: number) => x / (1 + Math.exp(-x));

    it('SwiGLU gate silu(a) ⊙ u: R_a = R_u = R/2', async () => {
      // position 0: y = silu(x0)·x1 (the gate reads this token, the up projection the next one).
      const r = await relevance({ E, W, body: (b, x) => b.Mul(b.Mul(x, b.op('Sigmoid', [x])), roll(b, x)) }, ids, t, [1, 0]);
      const R = silu(xs[2]) * xs[5] * W[0][t];
      closeAll(r.tokens, [R / 2, R / 2], 'R');
      close(r.seed, R, 'seed');
      const g = await relevance({ E, W, body: (b, x) => b.Mul(b.Mul(x, b.op('Sigmoid', [x])), roll(b, x)) }, ids, t, [1, 0], 'gradxinput');
      const s = 1 / (1 + Math.exp(-xs[2]));
      closeAll(g.tokens, [xs[2] * s * (1 + xs[2] * (1 - s)) * xs[5] * W[0][t], R], 'gradient × input');
    });

    it('plain product a ⊙ b: R_a = R_b = R/2', async () => {
      const r = await relevance({ E, W, body: (b, x) => b.Mul(x, roll(b, x)) }, ids, t, [1, 0]);
      const R = xs[2] * xs[5] * W[0][t];
      closeAll(r.tokens, [R / 2, R / 2], 'R');
    });
  });

  describe('attention', () => {
    const H = 2;
    const E = matrix(VOCAB, H, 0.9);
    const Aq = [
      [0.9, -0.4],
      [0.3, 1.2],
    ];
    const Ak = [
      [-0.5, 0.8],
      [1.1, 0.2],
    ];
    const Av = [
      [0.6, 0.1],
      [-0.7, 0.9],
    ];
    const ids = [3, 6, 1];
    const p = 2; // the seed sits at the last position
    const proj = (x: number[], A: number[][]) => [0, 1].map((j) => dot(x, col(A, j)));
    const q = ids.map((id) => proj(E[id], Aq));
    const k = ids.map((id) => proj(E[id], Ak));
    const v = ids.map((id) => proj(E[id], Av));
    const z = ids.map((_, i) => ids.map((__, j) => dot(q[i], k[j]))); // z = Q·Kᵀ
    const linear = (b: GraphBuilder, x: string, name: string, A: number[][]) =>
      b.MatMul(x, b.initializer(name, 'float32', [H, H], A.flat()));
    const scores = (b: GraphBuilder, x: string) => b.MatMul(linear(b, x, 'Aq', Aq), b.Transpose(linear(b, x, 'Ak', Ak), [0, 2, 1]));

    it('Q·Kᵀ: R_q = q ⊙ (R/(2z))·k, R_k = k ⊙ qᵀ·(R/(2z))', async () => {
      // r_i = Σ_j z_ij; logit = r·w; R_z[p][j] = z_pj·w.
      const W = [[0.5, -0.8, 1.2, 0.3, 0.7, -0.2, 0.9, 0.4]];
      const t = 2;
      const r = await relevance({ E, W, body: (b, x) => b.ReduceSum(scores(b, x), [2], true) }, ids, t, [0, 0, 1]);
      const Rz = z[p].map((zz) => zz * W[0][t]);
      // uniform ε-rule: half of each R_z[p][j] to q_p, half to k_j (then through the linear maps unchanged).
      const viaQ = sum(Rz) / 2;
      const viaK = Rz.map((R) => R / 2);
      closeAll(
        r.tokens,
        viaK.map((R, j) => R + (j === p ? viaQ : 0)),
        'R',
      );
      close(sum(r.tokens), r.seed, 'conservation');
    });

    it('Softmax: R_x = x ⊙ (R − s·ΣR); the rest is absorbed', async () => {
      const H3 = 3;
      const E3 = matrix(VOCAB, H3, 3.3).map((row) => row.map((x) => 2 * x));
      const W = matrix(H3, VOCAB, 0.4);
      const t = 6;
      const r = await relevance({ E: E3, W, body: (b, x) => b.op('Softmax', [x], { axis: -1 }) }, [0, 4], t, [1, 1]);
      const expected = [0, 4].map((id) => {
        const x = E3[id];
        const m = Math.max(...x);
        const e = x.map((xi) => Math.exp(xi - m));
        const s = e.map((ei) => ei / sum(e));
        const R = s.map((si, i) => si * W[i][t]);
        return sum(x.map((xi, i) => xi * (R[i] - s[i] * sum(R))));
      });
      closeAll(r.tokens, expected, 'R_x');
      close(r.absorbed.softmax, r.seed - sum(expected), 'absorbed by the softmax');
    });

    it('a whole head softmax(Q·Kᵀ)·V: uniform rule on A·V and on Q·Kᵀ, Softmax in between', async () => {
      const W = matrix(H, VOCAB, 5.1);
      const t = 4;
      const r = await relevance(
        { E, W, body: (b, x) => b.MatMul(b.op('Softmax', [scores(b, x)], { axis: -1 }), linear(b, x, 'Av', Av)) },
        ids,
        t,
        [0, 0, 1],
      );
      const m = Math.max(...z[p]);
      const e = z[p].map((zz) => Math.exp(zz - m));
      const A = e.map((ei) => ei / sum(e));
      // A·V: R_o_d = o_d·W[d][t]; uniform: R_A_j = ½·A_j·(v_j·W_t), R_v_jd = ½·A_j·v_jd·W[d][t].
      const wt = col(W, t);
      const RA = A.map((a, j) => 0.5 * a * dot(v[j], wt));
      const Rv = A.map((a, j) => 0.5 * a * dot(v[j], wt));
      // Softmax: R_z_j = z_j·A_j·(R_A_j/A_j − Σ R_A).
      const Rz = z[p].map((zz, j) => zz * A[j] * (RA[j] / A[j] - sum(RA)));
      // Q·Kᵀ: half of each R_z_j to q_p, half to k_j.
      const expected = ids.map((_, j) => Rv[j] + Rz[j] / 2 + (j === p ? sum(Rz) / 2 : 0));
      closeAll(r.tokens, expected, 'R');
      close(r.absorbed.softmax, sum(RA) - sum(Rz), 'absorbed by the softmax');
      close(sum(r.tokens) + r.absorbed.softmax, r.seed, 'conservation');
    });
    it('scaled, causally masked head: the softmax budget is summed at Q and K (no Log over the scores), −inf masks give no NaN', async () => {
      const W = matrix(H, VOCAB, 2.7);
      const t = 5;
      const c = 1.7;
      const w = [0.5, -1, 1];
      const causal = (b: GraphBuilder, x: string) => {
        const n = b.op('Gather', [b.Shape(x), b.ints([1])]);
        const ar = b.op('Range', [b.constant('int64', [], [0]), b.op('Squeeze', [n, b.ints([0])]), b.constant('int64', [], [1])]);
        const future = b.op('Less', [b.op('Unsqueeze', [ar, b.ints([1])]), b.op('Unsqueeze', [ar, b.ints([0])])]);
        return b.op('Where', [future, b.constant('float32', [], [-Infinity]), b.constant('float32', [], [0])]);
      };
      const body = (b: GraphBuilder, x: string) =>
        b.MatMul(
          b.op('Softmax', [b.Add(b.Div(scores(b, x), b.constant('float32', [], [c])), causal(b, x))], { axis: -1 }),
          linear(b, x, 'Av', Av),
        );
      const tiny = { E, W, body };
      const compiled = await CompiledModel.create(tinyLm(tiny));
      await compiled.release();
      assert.equal(compiled.graph.nodes.filter((n) => n.opType === 'Log').length, 0, 'no Log over the attention scores');
      const r = await relevance(tiny, ids, t, w);
      // Row p attends to j ≤ p.
      const wt = col(W, t);
      const Rtok = ids.map(() => 0);
      let absorbed = 0;
      for (let p = 0; p < ids.length; p++) {
        const xs = z[p].slice(0, p + 1).map((zz) => zz / c);
        const e = xs.map((x) => Math.exp(x - Math.max(...xs)));
        const A = e.map((ei) => ei / sum(e));
        const g = A.map((_, j) => 0.5 * w[p] * dot(v[j], wt)); // ∂/∂A of the uniform A·V rule
        const RA = A.map((a, j) => a * g[j]);
        const Rx = xs.map((x, j) => x * A[j] * (g[j] - sum(RA)));
        absorbed += sum(RA) - sum(Rx);
        A.forEach((a, j) => (Rtok[j] += a * g[j])); // R_v
        Rx.forEach((R, j) => {
          Rtok[p] += R / 2; // to q_p
          Rtok[j] += R / 2; // to k_j
        });
      }
      assert.ok(r.tokens.every(Number.isFinite) && Number.isFinite(r.absorbed.softmax), 'finite');
      closeAll(r.tokens, Rtok, 'R');
      close(r.absorbed.softmax, absorbed, 'absorbed by the softmax');
      close(r.absorbed.constant, 0, 'the mask is 0 where attention goes');
      close(sum(r.tokens) + r.absorbed.softmax, r.seed, 'conservation');
    });
  });

  describe('every row marked `conserves`: the softmax budget traced through it still closes', () => {
    // x → op → Softmax → head: the softmax's absorbed part is summed at the op's inputs (Backward.traceRelevance);
    // a row that did not conserve relevance would leave Σ tokens + Σ absorbed ≠ seed.
    const H = 3;
    const E = matrix(VOCAB, H, 1.9);
    const c = (b: GraphBuilder, v: number) => b.constant('float32', [], [v]);
    const cases: [string, number, (b: GraphBuilder, x: string) => string][] = [
      ['Add', H, (b, x) => b.Add(x, c(b, 0.4))],
      ['Sub', H, (b, x) => b.Sub(x, c(b, -0.7))],
      ['Neg', H, (b, x) => b.Neg(x)],
      ['MatMul', 4, (b, x) => b.MatMul(x, b.initializer('A', 'float32', [H, 4], matrix(H, 4, 0.3).flat()))],
      ['Mul', H, (b, x) => b.Mul(x, c(b, 1.6))],
      ['Div', H, (b, x) => b.Div(x, c(b, 0.8))],
      ['Identity', H, (b, x) => b.op('Identity', [x])],
      ['Dropout', H, (b, x) => b.op('Dropout', [x])],
      ['Cast', H, (b, x) => b.Cast(x, 'float32')],
      ['Reshape', H, (b, x) => b.Reshape(x, b.ints([0, 0, H]))],
      ['Flatten', H, (b, x) => b.Reshape(b.op('Flatten', [x], { axis: 2 }), b.op('Shape', [x]))],
      ['Squeeze', H, (b, x) => b.op('Squeeze', [b.op('Unsqueeze', [x, b.ints([2])]), b.ints([2])])],
      ['Transpose', H, (b, x) => b.Transpose(b.Transpose(x, [0, 2, 1]), [0, 2, 1])],
      ['Expand', H, (b, x) => b.op('Expand', [b.op('ReduceSum', [x, b.ints([2])], { keepdims: 1 }), b.op('Shape', [x])])],
      ['Concat', H + 1, (b, x) => b.op('Concat', [x, b.op('Slice', [x, b.ints([0]), b.ints([1]), b.ints([2])])], { axis: 2 })],
      ['Slice', 2, (b, x) => b.op('Slice', [x, b.ints([1]), b.ints([3]), b.ints([2])])],
      ['Gather', H, (b, x) => b.op('Gather', [b.op('Unsqueeze', [x, b.ints([0])]), b.constant('int64', [], [0])], { axis: 0 })],
      ['Where', H, (b, x) => b.op('Where', [b.op('Less', [x, c(b, 0.2)]), x, c(b, -0.3)])],
      ['ReduceSum', H, (b, x) => b.op('Expand', [b.op('ReduceSum', [x, b.ints([2])], { keepdims: 1 }), b.op('Shape', [x])])],
      ['ReduceMean', 1, (b, x) => b.op('ReduceMean', [x], { axes: [2], keepdims: 1 })],
    ];
    for (const [op, width, body] of cases) {
      it(op, async () => {
        const tiny = { E, W: matrix(width, VOCAB, 4.2), body: (b: GraphBuilder, x: string) => b.op('Softmax', [body(b, x)], { axis: -1 }) };
        const compiled = await CompiledModel.create(tinyLm(tiny));
        await compiled.release();
        assert.equal(compiled.graph.nodes.filter((n) => n.opType === 'Log').length, 0, 'traced (no Log)');
        const r = await relevance(tiny, [2, 5, 7], 3, [0.5, -1, 1]);
        const absorbed = sum(Object.values(r.absorbed));
        assert.ok(Math.abs(r.absorbed.softmax) > 1e-4, 'the softmax absorbs something');
        close(sum(r.tokens) + absorbed, r.seed, 'Σ tokens + Σ absorbed = seed');
      });
    }
  });

  describe('routing ops move relevance by their adjoint', () => {
    const H = 4;
    // Token v is one-hot at unit v mod 4 with value vals[v]: its relevance is that unit's.
    const vals = [1.5, -2, 0.75, 1.25, -0.5, 2.5, -1.75, 0.6];
    const E = oneHot(H, vals);

    it('Reshape, Transpose, Split, Concat, Slice, Where, Gather, Unsqueeze, Expand', async () => {
      const W = matrix(6, VOCAB, 0.6);
      const t = 7;
      const ids = [4, 5, 6, 7];
      const r = await relevance(
        {
          E,
          W,
          body: (b, x) => {
            // Two transposes that are not their own inverses: [B,S,2,2] → [B,2,2,S] → [B,S,2,2] with the 2×2 transposed.
            const cycled = b.Transpose(b.Reshape(x, b.ints([0, 0, 2, 2])), [0, 2, 3, 1]);
            const m = b.Reshape(b.Transpose(cycled, [0, 3, 2, 1]), b.ints([0, 0, 4])); // [x0, x2, x1, x3]
            const [lo, hi] = b.node('Split', [m, b.ints([2, 2])], { axis: 2 }, 2);
            const swapped = b.op('Concat', [hi, lo], { axis: 2 }); // [x1, x3, x0, x2]
            const sliced = b.op('Slice', [swapped, b.ints([1]), b.ints([4]), b.ints([2])]); // [x3, x0, x2]
            const cond = b.constant('bool', [3], [1, 0, 1], 'cond');
            const w = b.op('Where', [cond, sliced, b.Neg(sliced)]); // [x3, −x0, x2]
            const picked = b.op('Unsqueeze', [b.op('Gather', [w, b.constant('int64', [], [-1], 'idx')], { axis: 2 }), b.ints([-1])]); // [x2]
            const spread = b.op('Expand', [picked, b.ints([1, 1, 3])]); // [x2, x2, x2]
            return b.op('Concat', [w, spread], { axis: 2 });
          },
        },
        ids,
        t,
        [1, 1, 1, 1],
      );
      const route = (x: number[]) => [x[3], -x[0], x[2], x[2], x[2], x[2]];
      const expected = ids.map((id) => dot(route(E[id]), col(W, t)));
      closeAll(r.tokens, expected, 'R of the single hot unit');
      assert.equal(r.tokens[1], 0, 'unit 1 is dropped by the Slice: no relevance');
      for (const k of ['bias', 'constant', 'softmax', 'stabiliser'] as const) close(r.absorbed[k], 0, `absorbed ${k}`);
      close(sum(r.tokens), r.seed, 'conservation');
    });

    it('Where with a constant branch: R goes to the selected input, the constant absorbs its share', async () => {
      const W = matrix(H, VOCAB, 2.2);
      const t = 0;
      const ids = [0, 1, 2, 3];
      const c = [0.5, -1.5, 2, 0.25];
      const cond = [1, 0, 1, 0];
      const r = await relevance(
        {
          E,
          W,
          body: (b, x) => b.op('Where', [b.constant('bool', [H], cond, 'cond'), x, b.initializer('c', 'float32', [H], c)]),
        },
        ids,
        t,
        [1, 1, 1, 1],
      );
      const expected = ids.map((id) => sum(E[id].map((x, i) => (cond[i] ? x * W[i][t] : 0))));
      closeAll(r.tokens, expected, 'R_x');
      close(r.absorbed.constant, ids.length * sum(c.map((ci, i) => (cond[i] ? 0 : ci * W[i][t]))), 'absorbed constant');
    });
  });
});
