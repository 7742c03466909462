/**
 * Precision variants of the synthetic models (test/fixtures/exportVariants.ts): fp16/bf16 models
 * attributed in fp32, Optimum merged decoders, quantised weights dequantised at compile time, and the
 * refusals, each checked against onnxruntime running the variant itself.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { Graph } from '../../src/engine/onnx/graph';
import { emptyGraph, makeAttribute, valueInfo } from '../../src/engine/onnx/builder';
import { encodeModel, readModel, writeModel, writeModelWithExternalData } from '../../src/engine/onnx/io';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { isExternal } from '../../src/engine/onnx/externalData';
import { float16ToFloat32, makeRawTensor, makeTensor, tensorFloats } from '../../src/engine/onnx/tensor';
import { buildGpt2Like, buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import {
  float32ToFloat16,
  mergedDecoder,
  quantizeDequantizeLinear,
  quantizeDynamic,
  quantizeMatMulNBits,
  roundedToHalf,
  toHalf,
} from '../fixtures/exportVariants';
import type { HalfType, NBitsOptions } from '../fixtures/exportVariants';
import { canonicalize } from '../../src/engine/relevance/canonicalize';
import { halfToFloat32 } from '../../src/engine/relevance/rewrites/graphPasses';
import { countEmbedded } from '../../src/engine/relevance/rewrites/quantized';
import { LrpLensError } from '../../src/engine/errors';
import { causalLmFeeds, inputSpecs, leftPad } from '../../src/engine/runtime/feeds';
import { compileModelFile } from '../../src/engine/runtime/compile';
import { Session, tensorNumbers } from '../../src/engine/runtime/session';
import { CompiledModel, budget, cloneGraph, forward, lastTokenSeed, relativeError, single } from '../support/relevanceHarness';
import type { Outputs, Values } from '../support/relevanceHarness';
import { STORIES, requireShared } from '../support/sharedFolder';

const CFG: SyntheticConfig = {
  layers: 2,
  hidden: 24,
  heads: 4,
  kvHeads: 2,
  ffn: 40,
  vocab: 40,
  maxPositions: 32,
  dtype: 'float32',
  seed: 7,
};
const IDS = [5, 17, 3, 26, 11, 38];
const BATCH = leftPad([IDS, [21, 9, 30]], 0);
const SEED = lastTokenSeed(BATCH, 13, 29);
const FLOAT = onnx.TensorProto.DataType.FLOAT;

const llama = () => buildLlamaLike(CFG);
const gpt2 = () => buildGpt2Like({ ...CFG, kvHeads: undefined });

/** Compiles `graph` (a copy), runs the left-padded batch with a contrastive seed, releases the session. */
async function attribute(graph: Graph, weightRelevance = false): Promise<{ out: Outputs; model: CompiledModel }> {
  const model = await CompiledModel.create(graph, 'attnlrp', { weightRelevance });
  try {
    return { out: await model.run(BATCH, SEED), model };
  } finally {
    await model.release();
  }
}

/** Relevance of tokens and of the residual stream per layer, relative to the reference. */
function relevanceError(a: Outputs, b: Outputs): number {
  return Math.max(relativeError(a.lrp_tokens.data, b.lrp_tokens.data), relativeError(a.lrp_layers.data, b.lrp_layers.data));
}

function assertBudgetCloses(out: Outputs): void {
  budget(out).forEach((total, r) => {
    const seed = out.lrp_seed.data[r];
    assert.ok(Math.abs(total - seed) <= 1e-4 * Math.abs(seed), `row ${r}: Σ tokens + absorbed ${total} vs seed ${seed}`);
  });
}

/** Logits of the plain forward pass, with onnxruntime's graph optimisations off (no QDQ fusion). */
async function forwardUnoptimised(graph: Graph, ids: number[]): Promise<Values> {
  const session = await Session.create(encodeModel(graph), { optimization: 'disabled' });
  try {
    const out = await session.run(causalLmFeeds(inputSpecs(graph.inputs), single(ids)), ['logits']);
    return { data: tensorNumbers(out.logits), dims: [...out.logits.dims] };
  } finally {
    await session.release();
  }
}

function opTypes(g: Graph): Set<string> {
  return new Set(g.nodes.map((n) => n.opType));
}

function assertRefused(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(LrpLensError.is(err), String(err));
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

describe('fp16 and bf16 models are attributed in fp32', () => {
  it('decodes IEEE binary16 exactly (normals, subnormals, ±0, ±∞, NaN) and round-trips every bit pattern', () => {
    const known: [number, number][] = [
      [0x0000, 0],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3555, 0.333251953125],
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0xfbff, -65504],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [bits, value] of known) assert.equal(float16ToFloat32(bits), value, `0x${bits.toString(16)}`);
    assert.ok(Object.is(float16ToFloat32(0x8000), -0));
    assert.ok(Number.isNaN(float16ToFloat32(0x7e00)));
    for (let h = 0; h < 0x10000; h++) {
      if (!Number.isNaN(float16ToFloat32(h))) assert.equal(float32ToFloat16(float16ToFloat32(h)), h, `0x${h.toString(16)}`);
    }
    // Round to nearest even, overflow to ∞, underflow through the subnormals.
    assert.equal(float32ToFloat16(1 + 2 ** -11), 0x3c00);
    assert.equal(float32ToFloat16(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(float32ToFloat16(65520), 0x7c00);
    assert.equal(float32ToFloat16(2 ** -25), 0);
    assert.equal(float32ToFloat16(3 * 2 ** -26), 0x0001);
  });

  for (const dtype of ['float16', 'bfloat16'] as HalfType[]) {
    for (const [family, build] of [
      ['Llama', llama],
      ['GPT-2', gpt2],
    ] as const) {
      it(`${family} in ${dtype}: float32 inputs/outputs, relevance of the fp32 model with ${dtype}-rounded weights, budget closed`, async () => {
        const f32 = build();
        const half = toHalf(f32, dtype);
        const code = dtype === 'float16' ? onnx.TensorProto.DataType.FLOAT16 : onnx.TensorProto.DataType.BFLOAT16;
        assert.ok([...half.initializers.values()].filter((t) => t.dataType === code).length > 10, `the variant holds ${dtype} weights`);
        assert.equal(half.outputs[0].type?.tensorType?.elemType, code);

        const canonical = canonicalize(cloneGraph(half));
        assert.equal(canonical.rewrites['fp16→fp32'], 1);
        for (const vi of [...canonical.graph.inputs, ...canonical.graph.outputs].filter((v) => /past|present|logits/.test(v.name ?? ''))) {
          assert.equal(vi.type?.tensorType?.elemType, FLOAT, `${vi.name} is float32`);
        }
        assert.ok(
          [...canonical.graph.initializers.values()].every((t) => t.dataType !== code),
          `no ${dtype} initializer is left`,
        );

        const { out, model } = await attribute(half);
        const reference = await attribute(roundedToHalf(f32, dtype));
        assert.equal(model.info.dtype, 'float32');
        assert.equal(model.graph.outputs.find((o) => o.name === 'logits')?.type?.tensorType?.elemType, FLOAT);
        const err = relevanceError(out, reference.out);
        assert.ok(err <= 1e-4, `relevance vs the ${dtype}-rounded fp32 model: ${err.toExponential(2)}`);
        assert.ok(relevanceError(out, (await attribute(f32)).out) > 1e-6, `${dtype} rounding is visible against the fp32 model`);
        assertBudgetCloses(out);
      });
    }
  }

  it('the fp32 forward pass stays close to onnxruntime running the fp16 model itself (fp16 activations)', async () => {
    const half = toHalf(llama());
    const fp16 = await forward(half, single(IDS));
    const model = await CompiledModel.create(half);
    try {
      const out = await model.run(single(IDS), lastTokenSeed(single(IDS), 13));
      const err = relativeError(out.logits.data, fp16.data.map(float16ToFloat32));
      assert.ok(err <= 5e-3, `max |Δlogits| / max |logits| = ${err.toExponential(2)}`);
    } finally {
      await model.release();
    }
  });

  it('fp16 weights kept in model.onnx_data are read from it and converted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lrp-fp16-'));
    const path = join(dir, 'model.onnx');
    const f32 = llama();
    writeModelWithExternalData(toHalf(f32), path, 'model.onnx_data');
    const file = readModel(path);
    assert.ok([...file.initializers.values()].filter((t) => isExternal(t) && t.dataType === onnx.TensorProto.DataType.FLOAT16).length > 10);
    const converted = file.clone();
    halfToFloat32(converted);
    for (const [name, t] of roundedToHalf(f32).initializers) {
      if (t.dataType === FLOAT) assert.deepEqual(tensorFloats(converted.initializers.get(name)!), tensorFloats(t), name);
    }
    const compiled = await compileModelFile(path, {}, false);
    assert.equal(compiled.info.dtype, 'float32');
  });

  it('converts Cast targets, ConstantOfShape/EyeLike dtypes, Constant values and If subgraphs; onnxruntime agrees', async () => {
    const F16 = onnx.TensorProto.DataType.FLOAT16;
    const half = (name: string, dims: number[], values: number[]) =>
      makeRawTensor(name, 'float16', dims, new Uint8Array(Uint16Array.from(values, float32ToFloat16).buffer));
    const g = emptyGraph(17);
    const attrs = (a: Record<string, Parameters<typeof makeAttribute>[1]>) => Object.entries(a).map(([k, v]) => makeAttribute(k, v));
    const branch = (value: number[]) =>
      onnx.GraphProto.create({
        name: 'branch',
        node: [
          { opType: 'Constant', output: ['c'], attribute: attrs({ value: half('', [2, 2], value) }) },
          { opType: 'Identity', input: ['c'], output: ['branch_out'] },
        ],
        output: [valueInfo('branch_out', 'float16', [2, 2])],
      });
    g.inputs = [valueInfo('x', 'float16', [2, 2]), valueInfo('n', 'int64', [2, 2])];
    g.outputs = [valueInfo('y', 'float16', [2, 2])];
    g.initializers.set('shape', makeTensor('shape', 'int64', [2], [2, 2]));
    g.initializers.set('w', half('w', [2, 2], [2 ** -20, -3.5, 65504, 0.1]));
    g.initializers.set('cond', makeTensor('cond', 'bool', [], [1]));
    const GRAPH = onnx.AttributeProto.AttributeType.GRAPH;
    g.nodes = [
      {
        name: 'fill',
        opType: 'ConstantOfShape',
        domain: '',
        inputs: ['shape'],
        outputs: ['filled'],
        attributes: attrs({ value: half('', [1], [1.5]) }),
      },
      { name: 'eye', opType: 'EyeLike', domain: '', inputs: ['x'], outputs: ['eye'], attributes: attrs({ dtype: F16 }) },
      { name: 'cast', opType: 'Cast', domain: '', inputs: ['n'], outputs: ['n_half'], attributes: attrs({ to: F16 }) },
      { name: 'castlike', opType: 'CastLike', domain: '', inputs: ['n', 'w'], outputs: ['n_like'], attributes: [] },
      {
        name: 'if',
        opType: 'If',
        domain: '',
        inputs: ['cond'],
        outputs: ['chosen'],
        attributes: [
          onnx.AttributeProto.create({ name: 'then_branch', type: GRAPH, g: branch([1, 2, 3, 4]) }),
          onnx.AttributeProto.create({ name: 'else_branch', type: GRAPH, g: branch([0, 0, 0, 0]) }),
        ],
      },
      {
        name: 'sum',
        opType: 'Sum',
        domain: '',
        inputs: ['x', 'filled', 'eye', 'n_half', 'n_like', 'w', 'chosen'],
        outputs: ['y'],
        attributes: [],
      },
    ];
    const run = async (graph: Graph, x: onnx.TensorProto.DataType) => {
      const session = await Session.create(encodeModel(graph));
      const { Tensor } = await import('onnxruntime-node');
      const xs = [0.25, -1, 3, 2 ** -16];
      const feeds = {
        x:
          x === FLOAT
            ? new Tensor('float32', Float32Array.from(xs), [2, 2])
            : new Tensor('float16', Uint16Array.from(xs, float32ToFloat16), [2, 2]),
        n: new Tensor('int64', BigInt64Array.from([1n, 2n, 3n, 4n]), [2, 2]),
      };
      const y = (await session.run(feeds)).y;
      await session.release();
      return { type: y.type, values: tensorNumbers(y) };
    };
    const fp16 = await run(g, F16);
    const converted = cloneGraph(g);
    assert.equal(halfToFloat32(converted), 'fp16→fp32');
    const model = converted.toModel();
    const types = JSON.stringify(model, (k, v) => (k === 'rawData' ? undefined : v));
    assert.ok(!/"(elemType|dataType|i|to)":(10|16)\b/.test(types), 'no float16 type is left anywhere, subgraphs included');
    const fp32 = await run(converted, FLOAT);
    assert.equal(fp32.type, 'float32');
    // w holds a subnormal (2^-20), 65504 and values fp16 cannot hold exactly: decoded exactly, summed in fp32.
    assert.deepEqual(Array.from(tensorFloats(converted.initializers.get('w')!)), [
      2 ** -20,
      -3.5,
      65504,
      float16ToFloat32(float32ToFloat16(0.1)),
    ]);
    fp32.values.forEach((v, i) =>
      assert.ok(
        Math.abs(v - float16ToFloat32(fp16.values[i])) <= 1e-3 * Math.max(1, Math.abs(v)),
        `y[${i}] = ${v} vs fp16 ${float16ToFloat32(fp16.values[i])}`,
      ),
    );
  });
});

describe('merged decoders (If on use_cache_branch)', () => {
  it('runs the else branch (no cache): logits and relevance equal the plain decoder, and use_cache_branch is dropped', async () => {
    const plain = llama();
    // A different then_branch (with past): choosing it would change every number below.
    const merged = mergedDecoder(plain, buildLlamaLike({ ...CFG, seed: 99 }));
    assert.deepEqual(
      (await forward(merged, single(IDS))).data,
      (await forward(plain, single(IDS))).data,
      'onnxruntime runs the else branch when use_cache_branch is false',
    );
    const canonical = canonicalize(cloneGraph(merged));
    assert.equal(canonical.rewrites['merged decoder→no-cache branch'], 1);
    assert.ok(!opTypes(canonical.graph).has('If'));
    assert.ok(!canonical.graph.inputs.some((i) => i.name === 'use_cache_branch'));
    const { out, model } = await attribute(merged);
    const reference = await attribute(plain);
    assert.ok(!model.info.inputs.some((i) => i.name === 'use_cache_branch'));
    assert.equal(relevanceError(out, reference.out), 0);
    assert.deepEqual(out.logits.data, reference.out.logits.data);
  });

  it('with weights shared in the outer scope (as Optimum deduplicates them) and in fp16', async () => {
    const plain = llama();
    const merged = mergedDecoder(toHalf(plain));
    assert.equal(merged.nodes.length, 1);
    assert.ok(merged.initializers.size > 10, 'the weights live in the outer graph');
    const err = relevanceError((await attribute(merged)).out, (await attribute(roundedToHalf(plain))).out);
    assert.ok(err <= 1e-4, `relevance ${err.toExponential(2)}`);
  });
});

describe('quantised weights', () => {
  const NBITS: NBitsOptions[] = [
    { bits: 4, blockSize: 16, zeroPoints: 'packed' },
    { bits: 4, blockSize: 32, zeroPoints: 'none' },
    { bits: 4, blockSize: 16, zeroPoints: 'float' },
    { bits: 8, blockSize: 16, zeroPoints: 'packed' },
    { bits: 2, blockSize: 16, zeroPoints: 'packed' },
  ];
  const linears = 7 * CFG.layers + 1;

  for (const opts of NBITS) {
    it(`MatMulNBits ${opts.bits}-bit, block ${opts.blockSize}, zero points ${opts.zeroPoints}: dequantised exactly, relevance of the dequantised float model`, async () => {
      const { quantized, dequantized } = quantizeMatMulNBits(llama(), opts);
      assert.equal(quantized.nodes.filter((n) => n.opType === 'MatMulNBits').length, linears);
      const canonical = canonicalize(cloneGraph(quantized));
      assert.equal(canonical.rewrites['com.microsoft.MatMulNBits'], linears);
      assert.ok(canonical.graph.initializers.has(`model.layers.0.mlp.down_proj.weight_Q${opts.bits}.dequantized`));
      const logitsErr = relativeError((await forward(canonical.graph, single(IDS))).data, (await forward(quantized, single(IDS))).data);
      assert.ok(logitsErr <= 1e-4, `canonical vs onnxruntime's MatMulNBits logits: ${logitsErr.toExponential(2)}`);
      const { out } = await attribute(quantized);
      const err = relevanceError(out, (await attribute(dequantized)).out);
      assert.ok(err <= 1e-5, `relevance vs the dequantised float model: ${err.toExponential(2)}`);
      assertBudgetCloses(out);
    });
  }

  it('weight relevance of a MatMulNBits layer is reported for its dequantised weight <B>.dequantized', async () => {
    const { quantized, dequantized } = quantizeMatMulNBits(llama(), { bits: 4, blockSize: 16 });
    const q = await attribute(quantized, true);
    const d = await attribute(dequantized, true);
    const name = 'model.layers.1.mlp.down_proj.weight';
    const r = q.out[q.model.info.weightOutputs[`${name}_Q4.dequantized`]];
    assert.ok(r, `outputs: ${Object.keys(q.model.info.weightOutputs).join(', ')}`);
    assert.deepEqual(r.dims, [CFG.ffn, CFG.hidden]);
    const err = relativeError(r.data, d.out[d.model.info.weightOutputs[name]].data);
    assert.ok(err <= 1e-5, `weight relevance ${err.toExponential(2)}`);
  });

  it('accepts a g_idx equal to k / block_size; refuses an act-order g_idx and other bit widths, naming op, node and fix', async () => {
    const { quantized, dequantized } = quantizeMatMulNBits(llama(), { bits: 4, blockSize: 16, zeroPoints: 'none' });
    const withGIdx = (order: (k: number) => number) => {
      const g = cloneGraph(quantized);
      for (const n of g.nodes.filter((m) => m.opType === 'MatMulNBits')) {
        const K = Number(n.attributes.find((a) => a.name === 'K')?.i);
        const name = `${n.name}_g_idx`;
        g.initializers.set(
          name,
          makeTensor(
            name,
            'int32',
            [K],
            Array.from({ length: K }, (_, k) => order(k)),
          ),
        );
        n.inputs = [...n.inputs, '', name];
      }
      return g;
    };
    const err = relevanceError((await attribute(withGIdx((k) => Math.floor(k / 16)))).out, (await attribute(dequantized)).out);
    assert.ok(err <= 1e-5, `trivial g_idx: ${err.toExponential(2)}`);
    const K = CFG.hidden;
    assertRefused(
      () => canonicalize(withGIdx((k) => (k * 7) % Math.ceil(K / 16))),
      /g_idx/,
      /com\.microsoft\.MatMulNBits/,
      /node '/,
      /onnx\/model\.onnx \(fp32\)/,
    );
    const threeBit = cloneGraph(quantized);
    threeBit.nodes.find((n) => n.opType === 'MatMulNBits')!.attributes = threeBit.nodes
      .find((n) => n.opType === 'MatMulNBits')!
      .attributes.map((a) => (a.name === 'bits' ? makeAttribute('bits', 3) : a));
    assertRefused(() => canonicalize(threeBit), /3-bit/, /MatMulNBits/, /onnx\/model\.onnx/);
  });

  const DYNAMIC = [
    { label: 'int8 per tensor', opts: {} },
    { label: 'uint8 per channel, quantised embeddings', opts: { weightType: 'uint8' as const, perChannel: true, embeddings: true } },
    { label: 'fused DynamicQuantizeMatMul', opts: { fused: true, perChannel: true } },
  ];
  for (const { label, opts } of DYNAMIC) {
    it(`quantize_dynamic (${label}): float MatMul of the dequantised weights; relevance of the dequantised model, logits within 3% of the quantised run`, async () => {
      const { quantized, dequantized } = quantizeDynamic(llama(), opts);
      const canonical = canonicalize(cloneGraph(quantized));
      for (const op of ['DynamicQuantizeLinear', 'MatMulInteger', 'DynamicQuantizeMatMul', 'DequantizeLinear'])
        assert.ok(!opTypes(canonical.graph).has(op), `${op} is gone`);
      const { out } = await attribute(quantized);
      const err = relevanceError(out, (await attribute(dequantized)).out);
      assert.ok(err <= 1e-5, `relevance vs the dequantised float model: ${err.toExponential(2)}`);
      assertBudgetCloses(out);
      // The quantised model also rounds activations to 8 bits at run time; the compiled graph does not.
      const logitsErr = relativeError((await forward(canonical.graph, single(IDS))).data, (await forward(quantized, single(IDS))).data);
      assert.ok(logitsErr > 1e-5 && logitsErr <= 3e-2, `logits vs onnxruntime's quantised run: ${logitsErr.toExponential(2)}`);
    });
  }

  for (const perChannel of [false, true]) {
    it(`DequantizeLinear int8 weights (${perChannel ? 'per channel' : 'per tensor'}): folded, logits and relevance of the dequantised model`, async () => {
      const { quantized, dequantized } = quantizeDequantizeLinear(llama(), perChannel);
      const canonical = canonicalize(cloneGraph(quantized));
      assert.ok(!opTypes(canonical.graph).has('DequantizeLinear'));
      const logitsErr = relativeError((await forward(canonical.graph, single(IDS))).data, (await forwardUnoptimised(quantized, IDS)).data);
      assert.ok(logitsErr <= 1e-5, `logits vs onnxruntime (no QDQ fusion): ${logitsErr.toExponential(2)}`);
      const err = relevanceError((await attribute(quantized)).out, (await attribute(dequantized)).out);
      assert.ok(err <= 1e-5, `relevance ${err.toExponential(2)}`);
    });
  }

  it('DequantizeLinear folding equals onnxruntime per tensor, per axis, blocked, for int8, uint8 and int32', async () => {
    const x = Array.from({ length: 24 }, (_, i) => ((i * 37) % 251) - 120);
    const cases: {
      type: 'int8' | 'uint8' | 'int32';
      dims: number[];
      axis?: number;
      blockSize?: number;
      scale: number[];
      scaleDims: number[];
      zp?: number[];
    }[] = [
      { type: 'int8', dims: [4, 6], scale: [0.05], scaleDims: [], zp: [3] },
      { type: 'uint8', dims: [4, 6], axis: 0, scale: [0.1, 0.2, 0.3, 0.4], scaleDims: [4], zp: [128, 120, 0, 255] },
      { type: 'int8', dims: [2, 3, 4], axis: -2, scale: [0.5, 0.25, 0.125], scaleDims: [3] },
      {
        type: 'int8',
        dims: [4, 6],
        axis: 1,
        blockSize: 4,
        scale: [1, 2, 3, 4, 5, 6, 7, 8],
        scaleDims: [4, 2],
        zp: [0, 1, 2, 3, -1, -2, -3, -4],
      },
      { type: 'int32', dims: [24], scale: [0.001], scaleDims: [] },
    ];
    for (const c of cases) {
      const g = emptyGraph(21);
      const values = c.type === 'uint8' ? x.map((v) => v + 128) : x;
      g.initializers.set(
        'x',
        c.type === 'int8'
          ? makeRawTensor('x', 'int8', c.dims, new Uint8Array(Int8Array.from(values).buffer))
          : makeTensor('x', c.type, c.dims, values),
      );
      g.initializers.set('scale', makeTensor('scale', 'float32', c.scaleDims, c.scale));
      if (c.zp)
        g.initializers.set(
          'zp',
          c.type === 'int8'
            ? makeRawTensor('zp', 'int8', c.scaleDims, new Uint8Array(Int8Array.from(c.zp).buffer))
            : makeTensor('zp', c.type, c.scaleDims, c.zp),
        );
      const attrs = [
        ...(c.axis !== undefined ? [makeAttribute('axis', c.axis)] : []),
        ...(c.blockSize ? [makeAttribute('block_size', c.blockSize)] : []),
      ];
      g.nodes = [
        {
          name: 'dq',
          opType: 'DequantizeLinear',
          domain: '',
          inputs: ['x', 'scale', ...(c.zp ? ['zp'] : [])],
          outputs: ['y'],
          attributes: attrs,
        },
      ];
      g.outputs = [valueInfo('y', 'float32', c.dims)];
      const session = await Session.create(encodeModel(g), { optimization: 'disabled' });
      const expected = tensorNumbers((await session.run({})).y);
      await session.release();
      const folded = canonicalize(cloneGraph(g)).graph;
      assert.equal(folded.nodes.length, 0);
      assert.deepEqual(Array.from(tensorFloats(folded.initializers.get('y')!)), expected, JSON.stringify(c));
    }
  });

  it('refuses what it cannot dequantise, naming the op or type, the node and the fp32 export', () => {
    // Static activation quantisation: QuantizeLinear → DequantizeLinear before the LM head.
    const qdq = cloneGraph(llama());
    const head = qdq.producer('logits')!;
    qdq.initializers.set('act_scale', makeTensor('act_scale', 'float32', [], [0.05]));
    qdq.initializers.set('act_zp', makeTensor('act_zp', 'uint8', [], [128]));
    qdq.nodes.push(
      {
        name: 'act_q',
        opType: 'QuantizeLinear',
        domain: '',
        inputs: [head.inputs[0], 'act_scale', 'act_zp'],
        outputs: ['act_u8'],
        attributes: [],
      },
      {
        name: 'act_dq',
        opType: 'DequantizeLinear',
        domain: '',
        inputs: ['act_u8', 'act_scale', 'act_zp'],
        outputs: ['act_f32'],
        attributes: [],
      },
    );
    head.inputs[0] = 'act_f32';
    qdq.invalidate();
    qdq.sortTopologically();
    assertRefused(
      () => canonicalize(cloneGraph(qdq)),
      /QuantizeLinear|DequantizeLinear of activations/,
      /node 'act_/,
      /onnx\/model\.onnx \(fp32\)/,
    );

    // MatMulInteger whose output is not Cast to float and scaled (not quantize_dynamic's chain).
    const { quantized } = quantizeDynamic(llama());
    const odd = cloneGraph(quantized);
    const cast = odd.nodes.find((n) => n.opType === 'Cast' && odd.producer(n.inputs[0])?.opType === 'MatMulInteger')!;
    cast.attributes = [makeAttribute('to', onnx.TensorProto.DataType.DOUBLE)];
    assertRefused(() => canonicalize(odd), /MatMulInteger/, /node '/, /onnx\/model\.onnx/);

    // int4 weights read through DequantizeLinear (opset 21).
    const int4 = emptyGraph(21);
    int4.initializers.set('x', onnx.TensorProto.create({ name: 'x', dataType: 22, dims: [4], rawData: new Uint8Array([0x21, 0x43]) }));
    int4.initializers.set('scale', makeTensor('scale', 'float32', [], [0.5]));
    int4.nodes = [{ name: 'dq4', opType: 'DequantizeLinear', domain: '', inputs: ['x', 'scale'], outputs: ['y'], attributes: [] }];
    assertRefused(() => canonicalize(int4), /int4/, /DequantizeLinear/, /node 'dq4'/, /onnx\/model\.onnx/);

    // onnxruntime-genai's block-quantised embedding table.
    const genai = cloneGraph(llama());
    genai.nodes[0] = { ...genai.nodes[0], name: 'embed_q4', opType: 'GatherBlockQuantized', domain: 'com.microsoft' };
    assertRefused(() => canonicalize(genai), /com\.microsoft\.GatherBlockQuantized/, /node 'embed_q4'/, /onnx\/model\.onnx/);

    // Weights converted at compile time stay embedded: past protobuf's 2 GiB the fp32 export is the answer.
    assertRefused(() => countEmbedded(cloneGraph(genai), 2 ** 31), /GiB/, /onnx\/model\.onnx with model\.onnx_data/);
  });
});

describe('stories260k exported in fp16 and as a merged decoder, through the engine', function () {
  before(function () {
    requireShared(this);
  });

  /** A model folder holding stories260k's tokenizer and `transform` of its ONNX graph. */
  function variantFolder(transform: (g: Graph) => Graph): string {
    const dir = mkdtempSync(join(tmpdir(), 'lrp-stories-'));
    mkdirSync(join(dir, 'onnx'));
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(STORIES, f), join(dir, f));
    writeModel(transform(readModel(join(STORIES, 'onnx', 'model.onnx'))), join(dir, 'onnx', 'model.onnx'));
    return dir;
  }

  it('attributes " Lily" as the fp32 file does (fp16: within fp16 rounding; merged: identically)', async () => {
    const prompt = 'Once upon a time, there was a little girl named';
    const fp32 = await AttributionEngine.load(STORIES, { offline: true, cache: false });
    const reference = await fp32.attribute({ prompt });
    await fp32.release();
    for (const [label, transform, tolerance] of [
      ['fp16', (g: Graph) => toHalf(g), 1e-3],
      ['merged', (g: Graph) => mergedDecoder(g), 1e-6],
    ] as const) {
      const engine = await AttributionEngine.load(variantFolder(transform), { offline: true, cache: false });
      try {
        const r = await engine.attribute({ prompt });
        assert.equal(engine.info.dtype, 'float32');
        assert.equal(r.target.text, ' Lily', label);
        const err = relativeError(r.relevance.tokens, reference.relevance.tokens);
        assert.ok(err <= tolerance, `${label}: token relevance ${err.toExponential(2)}`);
      } finally {
        await engine.release();
      }
    }
  });
});
