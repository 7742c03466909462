/**
 * Walks every row of the rule table (relevance/rules.ts OPS) on a tiny graph that contains the op:
 * token embedding x [1, 3, 4] → body using the op → linear LM head → logits. For each row,
 * - gradxinput equals gradient × input by central finite differences (float64 where onnxruntime has the kernel),
 * - attnlrp conserves relevance: Σ token relevance + Σ absorbed = seed,
 * and the rows that refuse an op fail with an unsupported-op error naming the op and the node.
 */
import assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import { GraphBuilder, emptyGraph, makeAttribute, valueInfo } from '../../src/engine/onnx/builder';
import type { Graph } from '../../src/engine/onnx/graph';
import { makeTensor } from '../../src/engine/onnx/tensor';
import type { FloatDType } from '../../src/engine/onnx/tensor';
import { LrpLensError } from '../../src/engine/errors';
import { OPS, rowOf } from '../../src/engine/relevance/rules';
import { CompiledModel, budget, finiteDifferences, maxAbs, relativeError, single } from '../support/relevanceHarness';
import type { Seed } from '../support/relevanceHarness';

const VOCAB = 8; // the shape probe feeds ids up to 7
const H = 4;
const IDS = [1, 2, 5]; // distinct, for finite differences by embedding row
const TARGET = 3;
const DEFAULT_OPSET = 17;

type Body = (b: GraphBuilder, x: string, dt: FloatDType, opset: number) => string;

interface Case {
  body: Body;
  /** onnxruntime has no float64 kernel for the op. */
  float32?: true;
  /** A refusing row: compiling fails naming the op. */
  refused?: true;
  /** The opset the op needs, where newer than the default. */
  opset?: number;
}

const E = Array.from({ length: VOCAB }, (_, v) => Array.from({ length: H }, (_, i) => 1.3 * Math.sin(1.1 * v + 2 * i + 0.4)));
const W = Array.from({ length: H }, (_, i) => Array.from({ length: VOCAB }, (_, v) => Math.cos(0.7 * i + 1.9 * v) + 0.1));

function tinyLm(body: Body, dt: FloatDType, opset: number): Graph {
  const g = emptyGraph(opset, 'tiny');
  const b = new GraphBuilder(g, '/tiny');
  g.inputs.push(valueInfo('input_ids', 'int64', ['batch', 'sequence']));
  b.initializer('embed', dt, [VOCAB, H], E.flat());
  b.initializer('head', dt, [H, VOCAB], W.flat());
  const x = b.op('Gather', ['embed', 'input_ids'], { axis: 0 });
  g.nodes.push({
    name: 'lm_head',
    opType: 'MatMul',
    domain: '',
    inputs: [body(b, x, dt, opset), 'head'],
    outputs: ['logits'],
    attributes: [],
  });
  g.outputs.push(valueInfo('logits', dt, ['batch', 'sequence', VOCAB]));
  return g;
}

const SEED: Seed = { targets: [IDS.map(() => TARGET)], weights: [[1, 0.5, 1]] };

const c = (b: GraphBuilder, dt: FloatDType, v: number) => b.scalar(dt, v);
/** x² + ½: a positive relevant tensor (for Log, Sqrt, Reciprocal, a relevant denominator). */
const positive = (b: GraphBuilder, x: string, dt: FloatDType) => b.Add(b.Mul(x, x), c(b, dt, 0.5));
/** A relevant tensor chosen by a boolean computed from x (for the comparison and logic rows). */
const choose = (b: GraphBuilder, cond: string, x: string, dt: FloatDType) => b.op('Where', [cond, x, b.Mul(x, c(b, dt, -0.5))]);
const greater = (b: GraphBuilder, x: string, dt: FloatDType, v = 0.1) => b.op('Greater', [x, c(b, dt, v)]);
const reshape = (b: GraphBuilder, x: string, dims: number[]) => b.Reshape(x, b.ints(dims));
const axesOf = (b: GraphBuilder, op: string, x: string, axes: number[], attrsFrom: number, opset: number) =>
  opset >= attrsFrom ? b.op(op, [x, b.ints(axes)]) : b.op(op, [x], { axes });
const activation =
  (op: string, attrs: Record<string, number> = {}): Body =>
  (b, x) =>
    b.op(op, [x], Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, { float: v }])));

/** A subgraph (If branch, Loop or Scan body) of the given nodes, inputs and outputs. */
function subgraph(name: string, nodes: [string, string[], string[]][], inputs: onnx.IValueInfoProto[], outputs: onnx.IValueInfoProto[]) {
  return onnx.GraphProto.create({
    name,
    node: nodes.map(([opType, input, output], i) => ({ name: `${name}/${opType}_${i}`, opType, input, output })),
    input: inputs,
    output: outputs,
  });
}

function controlFlow(
  b: GraphBuilder,
  opType: string,
  inputs: string[],
  graphs: Record<string, onnx.IGraphProto>,
  ints: Record<string, number> = {},
) {
  const out = `/tiny/${opType}_out`;
  b.graph.nodes.push({
    name: `/tiny/${opType}`,
    opType,
    domain: '',
    inputs,
    outputs: [out],
    attributes: [
      ...Object.entries(graphs).map(([k, g]) => onnx.AttributeProto.create({ name: k, type: onnx.AttributeProto.AttributeType.GRAPH, g })),
      ...Object.entries(ints).map(([k, v]) => makeAttribute(k, v)),
    ],
  });
  return out;
}

const CASES: Record<string, Case> = {
  Add: { body: (b, x, dt) => b.Add(b.Add(x, b.initializer('bias', dt, [H], [0.3, -0.2, 0.1, 0.4])), b.Mul(x, c(b, dt, 0.5))) },
  Sub: { body: (b, x, dt) => b.Sub(b.Mul(x, c(b, dt, 2)), b.Sub(b.initializer('bias', dt, [H], [0.3, -0.2, 0.1, 0.4]), x)) },
  Neg: { body: (b, x) => b.Neg(x) },
  MatMul: {
    // Weight (ε-rule), Q·Kᵀ and A·V (both relevant: uniform rule).
    body: (b, x, dt) => {
      const A = b.initializer('A', dt, [H, H], [0.5, -0.3, 0.2, 0.1, 0.4, 0.6, -0.2, 0.3, -0.1, 0.2, 0.7, -0.4, 0.3, 0.1, -0.5, 0.2]);
      return b.MatMul(b.MatMul(x, b.Transpose(x, [0, 2, 1])), b.MatMul(x, A));
    },
  },
  ReduceSum: { body: (b, x) => b.Add(x, b.ReduceSum(x, [2], true)) },
  ReduceMean: { body: (b, x, _dt, opset) => b.Add(x, axesOf(b, 'ReduceMean', x, [2], 18, opset)) },
  Mul: { body: (b, x, dt) => b.Mul(x, b.Add(x, c(b, dt, 0.7))) },
  Div: { body: (b, x, dt) => b.Div(x, positive(b, x, dt)) },
  Softmax: { body: (b, x) => b.op('Softmax', [x]) },
  Identity: { body: (b, x) => b.op('Identity', [x]) },
  Dropout: { body: (b, x) => b.op('Dropout', [x]) },
  Cast: { body: (b, x, dt) => b.Cast(x, dt) },
  Reshape: { body: (b, x) => reshape(b, reshape(b, x, [0, 0, 2, 2]), [0, 0, H]) },
  Flatten: { body: (b, x) => b.Reshape(b.op('Flatten', [x], { axis: 2 }), b.Shape(x)) },
  Squeeze: { body: (b, x) => b.op('Squeeze', [b.op('Unsqueeze', [x, b.ints([2])]), b.ints([2])]) },
  Unsqueeze: { body: (b, x) => reshape(b, b.op('Unsqueeze', [x, b.ints([3])]), [0, 0, H]) },
  Transpose: { body: (b, x) => reshape(b, b.Transpose(reshape(b, x, [0, 0, 2, 2]), [0, 1, 3, 2]), [0, 0, H]) },
  Expand: { body: (b, x) => b.Add(x, b.op('Expand', [b.op('Slice', [x, b.ints([1]), b.ints([2]), b.ints([2])]), b.ints([1, 1, H])])) },
  Concat: {
    body: (b, x) =>
      b.op(
        'Concat',
        [b.op('Slice', [x, b.ints([2]), b.ints([4]), b.ints([2])]), b.op('Slice', [x, b.ints([0]), b.ints([2]), b.ints([2])])],
        {
          axis: 2,
        },
      ),
  },
  Split: {
    body: (b, x) => {
      const [lo, hi] = b.node('Split', [x, b.ints([1, 3])], { axis: 2 }, 2);
      return b.op('Concat', [hi, lo], { axis: 2 });
    },
  },
  Slice: { body: (b, x) => sliced(b, x) },
  Gather: {
    body: (b, x) => b.Add(x, b.op('Unsqueeze', [b.op('Gather', [x, b.constant('int64', [], [1], 'idx')], { axis: 2 }), b.ints([2])])),
  },
  Where: {
    body: (b, x, dt) =>
      b.op('Where', [b.constant('bool', [H], [1, 0, 0, 1], 'cond'), x, b.initializer('other', dt, [H], [0.5, -1, 2, 0.25])]),
  },
  Relu: { body: activation('Relu') },
  Tanh: { body: activation('Tanh') },
  Sigmoid: { body: activation('Sigmoid') },
  Erf: { body: activation('Erf'), float32: true },
  Elu: { body: activation('Elu', { alpha: 0.7 }), float32: true },
  Celu: { body: activation('Celu', { alpha: 0.8 }), float32: true },
  Selu: { body: activation('Selu', { alpha: 1.5, gamma: 1.1 }), float32: true },
  LeakyRelu: { body: activation('LeakyRelu', { alpha: 0.2 }), float32: true },
  ThresholdedRelu: { body: activation('ThresholdedRelu', { alpha: 0.3 }), float32: true },
  HardSigmoid: { body: activation('HardSigmoid', { alpha: 0.25, beta: 0.45 }), float32: true },
  HardSwish: { body: (b, x, dt) => activation('HardSwish')(b, b.Mul(x, c(b, dt, 2)), dt, 0), float32: true },
  Softplus: { body: activation('Softplus'), float32: true },
  Mish: { body: activation('Mish'), float32: true, opset: 18 },
  Exp: { body: (b, x) => b.op('Exp', [x]) },
  Log: { body: (b, x, dt) => b.op('Log', [positive(b, x, dt)]) },
  Sqrt: { body: (b, x, dt) => b.op('Sqrt', [positive(b, x, dt)]) },
  Reciprocal: { body: (b, x, dt) => b.op('Reciprocal', [positive(b, x, dt)]) },
  Abs: { body: (b, x) => b.op('Abs', [x]) },
  Pow: { body: (b, x, dt) => b.op('Pow', [x, c(b, dt, 3)]) },
  If: {
    refused: true,
    body: (b, x, dt) => {
      const branch = (name: string, op: string) => subgraph(name, [[op, [x], [`${name}_y`]]], [], [valueInfo(`${name}_y`, dt, [])]);
      return controlFlow(b, 'If', [b.constant('bool', [], [1], 'flag')], {
        then_branch: branch('then', 'Identity'),
        else_branch: branch('else', 'Neg'),
      });
    },
  },
  Loop: {
    refused: true,
    body: (b, x, dt) => {
      const body = subgraph(
        'loop',
        [
          ['Identity', ['cond_in'], ['cond_out']],
          ['Identity', ['v_in'], ['v_out']],
        ],
        [valueInfo('iter', 'int64', []), valueInfo('cond_in', 'bool', []), valueInfo('v_in', dt, [])],
        [valueInfo('cond_out', 'bool', []), valueInfo('v_out', dt, [])],
      );
      return controlFlow(b, 'Loop', [b.constant('int64', [], [1], 'trips'), b.constant('bool', [], [1], 'go'), x], { body });
    },
  },
  Scan: {
    refused: true,
    body: (b, x, dt) => {
      const body = subgraph(
        'scan',
        [['Identity', ['row_in'], ['row_out']]],
        [valueInfo('row_in', dt, ['s', 'h'])],
        [valueInfo('row_out', dt, ['s', 'h'])],
      );
      return controlFlow(b, 'Scan', [x], { body }, { num_scan_inputs: 1 });
    },
  },
  LayerNormalization: {
    refused: true,
    body: (b, x, dt) => b.op('LayerNormalization', [x, b.initializer('gamma', dt, [H], [1, 1, 1, 1])], { axis: 2 }),
  },
  // Integer, boolean and shape results, consumed as constants by a relevant op.
  Shape: { body: (b, x) => b.Reshape(x, b.Shape(x)) },
  Size: { body: (b, x, dt) => b.Div(x, b.Cast(b.op('Size', [x]), dt)) },
  Equal: { body: (b, x, dt) => choose(b, b.op('Equal', [x, x]), x, dt) },
  Greater: { body: (b, x, dt) => choose(b, greater(b, x, dt), x, dt) },
  Less: { body: (b, x, dt) => choose(b, b.op('Less', [x, c(b, dt, 0.1)]), x, dt) },
  GreaterOrEqual: { body: (b, x, dt) => choose(b, b.op('GreaterOrEqual', [x, c(b, dt, 0.1)]), x, dt) },
  LessOrEqual: { body: (b, x, dt) => choose(b, b.op('LessOrEqual', [x, c(b, dt, 0.1)]), x, dt) },
  Not: { body: (b, x, dt) => choose(b, b.op('Not', [greater(b, x, dt)]), x, dt) },
  And: { body: (b, x, dt) => choose(b, b.op('And', [greater(b, x, dt), greater(b, x, dt, -1)]), x, dt) },
  Or: { body: (b, x, dt) => choose(b, b.op('Or', [greater(b, x, dt), greater(b, x, dt, 1)]), x, dt) },
  Xor: { body: (b, x, dt) => choose(b, b.op('Xor', [greater(b, x, dt), greater(b, x, dt, -1)]), x, dt) },
  ArgMax: { body: (b, x, dt) => b.Add(x, b.Cast(b.op('ArgMax', [x], { axis: 2 }), dt)) },
  ArgMin: { body: (b, x, dt) => b.Add(x, b.Cast(b.op('ArgMin', [x], { axis: 2 }), dt)) },
  NonZero: { body: (b, x, dt) => b.Add(x, b.Cast(b.ReduceSum(b.op('NonZero', [greater(b, x, dt)]), [0, 1], false), dt)) },
  IsNaN: { body: (b, x, dt) => b.op('Where', [b.op('IsNaN', [x]), c(b, dt, 0), x]) },
  IsInf: { body: (b, x, dt) => b.op('Where', [b.op('IsInf', [x]), c(b, dt, 0), x]) },
  ConstantOfShape: { body: (b, x, dt) => b.Add(x, b.op('ConstantOfShape', [b.Shape(x)], { value: makeTensor('v', dt, [1], [0.25]) })) },
  Range: { body: (b, x, dt) => b.Add(x, b.op('Range', [c(b, dt, 0), c(b, dt, H * 0.5), c(b, dt, 0.5)])) },
  EyeLike: { body: (b, x, dt) => b.MatMul(x, b.op('EyeLike', [b.initializer('square', dt, [H, H], Array<number>(H * H).fill(2))])) },
  Constant: { body: (b, x, dt) => b.Add(x, b.op('Constant', [], { value: makeTensor('k', dt, [H], [0.1, 0.2, -0.3, 0.4]) })) },
};

/**
 * Slices with steps 1, 2 and −1, on one axis and on two: x[..., 1:3] twice + [x[..., ::2], x[..., 3::−2]]
 * + x[:, ::−1, 1:3] twice. The adjoint pads (step 1) or scatters (other steps) the gradient back.
 */
function sliced(b: GraphBuilder, x: string): string {
  const part = b.op('Slice', [x, b.ints([1]), b.ints([-1]), b.ints([2])]);
  const strided = b.op('Concat', [slice(b, x, [0], [H], 2, 2), slice(b, x, [3], [-H - 1], 2, -2)], { axis: 2 });
  const reversed = b.op('Slice', [x, b.ints([-1, 1]), b.ints([-1000, 3]), b.ints([1, 2]), b.ints([-1, 1])]);
  return b.Add(b.Add(b.op('Concat', [part, part], { axis: 2 }), strided), b.op('Concat', [reversed, reversed], { axis: 2 }));
}

function slice(b: GraphBuilder, x: string, starts: number[], ends: number[], axis: number, step = 1): string {
  return b.op('Slice', [x, b.ints(starts), b.ints(ends), b.ints([axis]), b.ints([step])]);
}

async function compiled(graph: Graph, mode: 'attnlrp' | 'gradxinput') {
  const model = await CompiledModel.create(graph, mode);
  try {
    return await model.run(single(IDS), SEED);
  } finally {
    await model.release();
  }
}

describe('rule table: every row', () => {
  it('has a case here for each row, and no case without a row', () => {
    assert.deepEqual(Object.keys(CASES).sort(), Object.keys(OPS).sort());
  });

  for (const [op, row] of Object.entries(OPS)) {
    const test = CASES[op];
    if (!test) continue;
    const dt: FloatDType = test.float32 ? 'float32' : 'float64';
    for (const opset of row.opsets ?? [test.opset ?? DEFAULT_OPSET]) {
      const at = row.opsets ? ` (opset ${opset})` : '';
      const graph = () => tinyLm(test.body, dt, opset);
      if (test.refused) {
        it(`${op}${at}: refused, naming the op and the node`, async () => {
          await assert.rejects(
            () => compiled(graph(), 'attnlrp'),
            (e: unknown) => LrpLensError.is(e, 'unsupported-op') && e.message.includes(op) && e.message.includes(`'/tiny/${op}`),
          );
        });
        continue;
      }
      it(`${op}${at}: gradxinput = finite differences (${dt})${row.rule === 'none' ? '' : ', attnlrp conserves'}`, async () => {
        const g = graph();
        assert.ok(
          g.nodes.some((n) => n.opType === op),
          `the graph contains ${op}`,
        );
        const exact = await compiled(g, 'gradxinput');
        const fd = await finiteDifferences(g, IDS, SEED, dt === 'float64' ? 1e-5 : 3e-3);
        assert.ok(maxAbs(fd) > 1e-3, `the seed depends on the tokens (${fd})`);
        const err = relativeError(exact.lrp_tokens.data, fd);
        assert.ok(err < (dt === 'float64' ? 1e-6 : 5e-3), `gradxinput ${exact.lrp_tokens.data} vs finite differences ${fd}: ${err}`);
        if (row.rule === 'none') return;
        const lrp = await compiled(g, 'attnlrp');
        const seed = lrp.lrp_seed.data[0];
        const tol = dt === 'float64' ? 1e-9 : 1e-4;
        assert.ok(Math.abs(budget(lrp)[0] - seed) <= tol * Math.max(1, Math.abs(seed)), `Σ R + absorbed ${budget(lrp)[0]} vs seed ${seed}`);
      });
    }
  }

  it('a strided Slice routes the gradient back to the slots it read (hand-computed, both modes)', async () => {
    // y = [x₃, x₁, x₁, x₃] (x[..., 3::−2] then x[..., 1::2]), so R_t = w_t·(x₃(W₀ + W₃) + x₁(W₁ + W₂)) at the target.
    const g = tinyLm(
      (b, x) => b.op('Concat', [slice(b, x, [3], [-H - 1], 2, -2), slice(b, x, [1], [H], 2, 2)], { axis: 2 }),
      'float64',
      17,
    );
    const w = (j: number) => W[j][TARGET];
    const expected = IDS.map((id, t) => SEED.weights[0][t] * (E[id][3] * (w(0) + w(3)) + E[id][1] * (w(1) + w(2))));
    for (const mode of ['gradxinput', 'attnlrp'] as const) {
      const out = await compiled(g, mode);
      assert.ok(relativeError(out.lrp_tokens.data, expected) < 1e-12, `${mode}: ${out.lrp_tokens.data} vs ${expected}`);
    }
  });

  it('a graph below opset 13 is refused with the fix', async () => {
    await assert.rejects(
      () =>
        compiled(
          tinyLm((b, x) => b.op('Softmax', [x], { axis: 2 }), 'float64', 11),
          'attnlrp',
        ),
      (e: unknown) => LrpLensError.is(e, 'unsupported-graph') && /opset 11.*opset 13/.test(e.message),
    );
  });

  it('an op without a row on a relevant path is an error naming the op type and the node', async () => {
    const g = tinyLm((b, x) => b.op('Sin', [x], {}, 'sine'), 'float64', DEFAULT_OPSET);
    for (const mode of ['attnlrp', 'gradxinput'] as const)
      await assert.rejects(
        () => compiled(g, mode),
        (e: unknown) => LrpLensError.is(e, 'unsupported-op') && /op Sin, node '\/tiny\/sine_\d+'/.test(e.message),
      );
  });

  it('rowOf reads only the table’s own rows', () => {
    assert.equal(rowOf('toString'), undefined);
    assert.equal(rowOf('Gelu'), undefined, 'Gelu is always decomposed by canonicalisation');
  });
});
