/**
 * The architecture coverage matrix: one synthetic model per family (test/fixtures/families.ts and the
 * GPT-2 / OPT / Llama builders), each row proved the same way — compiled logits equal onnxruntime's on the
 * original, gradxinput equals finite differences (float64), the AttnLRP and CP-LRP budgets close, layers,
 * heads and neurons are found, and attribution, a pruning mask and a neuron circuit run end to end on a
 * model folder. The rows' outcomes render the table in docs/supported-exports.md; the test fails while the
 * committed table differs (`npm run matrix` rewrites it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Graph } from '../../src/engine/onnx/graph';
import { leftPad } from '../../src/engine/runtime/feeds';
import { inspectModel } from '../../src/engine/runtime/inspect';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { PruningSession, sweep } from '../../src/engine/pruning/prune';
import { circuitCurve, evaluateTask } from '../../src/engine/circuits/search';
import type { TokenizedSample } from '../../src/engine/tasks/taskFile';
import { FAMILIES, TINY, buildFamily, familySpec, needsFloat32 } from '../fixtures/families';
import { buildGpt2Like, buildLlamaLike, buildOptLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import {
  ABSORBED,
  CompiledModel,
  blockwise,
  budget,
  finiteDifferences,
  forward,
  lastTokenSeed,
  maxAbs,
  modelFolder,
  relativeError,
  rows,
  single,
} from '../support/relevanceHarness';
import { STORIES, requireShared } from '../support/sharedFolder';
import type { Outputs } from '../support/relevanceHarness';
import { MATRIX_DOC, renderMatrix, tableIn } from '../support/architectureMatrix';
import type { MatrixRow } from '../support/architectureMatrix';

interface Row {
  family: string;
  features: string;
  build(cfg: SyntheticConfig): { graph: Graph; config: Record<string, unknown> };
}

const plain = (modelType: string, architecture: string, tied: boolean) => ({
  model_type: modelType,
  architectures: [architecture],
  num_hidden_layers: TINY.layers,
  num_attention_heads: TINY.heads,
  hidden_size: TINY.hidden,
  vocab_size: TINY.vocab,
  max_position_embeddings: TINY.maxPositions,
  tie_word_embeddings: tied,
});

const ROWS: Row[] = [
  {
    family: 'llama',
    features: 'GQA, RoPE, SwiGLU, RMSNorm, untied head (SmolLM: the same graph, tied)',
    build: (c) => ({
      graph: buildLlamaLike({ ...c, kvHeads: 2 }),
      config: { ...plain('llama', 'LlamaForCausalLM', false), num_key_value_heads: 2 },
    }),
  },
  ...FAMILIES.map((f) => ({ family: f, features: familySpec(f).features, build: (c: SyntheticConfig) => buildFamily(f, c) })),
  {
    family: 'gpt2',
    features: 'Conv1D as Gemm, LayerNormalization (opset 17), tanh-GELU, learned positions, tied head',
    build: (c) => ({ graph: buildGpt2Like(c), config: plain('gpt2', 'GPT2LMHeadModel', true) }),
  },
  {
    family: 'opt',
    features: 'learned positions with offset 2, ReLU, decomposed LayerNorm',
    build: (c) => ({ graph: buildOptLike(c), config: plain('opt', 'OPTForCausalLM', true) }),
  },
];

const IDS = [7, 31, 101, 250, 3, 77];
const results = new Map<string, MatrixRow>();

describe('architecture coverage matrix', function () {
  let work: string;
  before(function () {
    requireShared(this);
    work = mkdtempSync(join(tmpdir(), 'lrp-arch-'));
  });

  for (const row of ROWS) {
    it(`${row.family}: logits, gradxinput = finite differences, budgets, units, attribution, pruning and a neuron circuit`, async () => {
      const f64 = !needsFloat32(row.family);
      const { graph } = row.build({ ...TINY, dtype: f64 ? 'float64' : 'float32' });
      const batch = single(IDS);
      const seed = lastTokenSeed(batch, 42, 9);

      const reference = await forward(graph, batch, true);
      const grad = await CompiledModel.create(graph, 'gradxinput');
      try {
        const out = await grad.run(batch, seed);
        const logitsErr = relativeError(out.logits.data, reference.data);
        assert.ok(logitsErr < (f64 ? 1e-7 : 1e-5), `compiled logits equal the original: relative error ${logitsErr.toExponential(2)}`);
        const fd = await finiteDifferences(graph, IDS, seed, f64 ? 1e-5 : 1e-2, true);
        const err = relativeError(rows(out.lrp_tokens)[0], fd);
        assert.ok(err < (f64 ? 1e-5 : 2e-2), `gradxinput vs finite differences: relative error ${err.toExponential(2)}`);
      } finally {
        await grad.release();
      }
      let unavailable: string[] = [];
      for (const mode of ['attnlrp', 'cp-lrp'] as const) {
        const compiled = await CompiledModel.create(graph, mode);
        try {
          const out = await compiled.run(leftPad([IDS, IDS.slice(2)], 0), lastTokenSeed(leftPad([IDS, IDS.slice(2)], 0), 42, 9));
          for (const [r, total] of budget(out).entries()) {
            const s = out.lrp_seed.data[r];
            assert.ok(Math.abs(total - s) <= (f64 ? 1e-6 : 1e-4) * Math.max(Math.abs(s), 1), `${mode} row ${r}: Σ ${total} ≠ seed ${s}`);
          }
          unavailable = compiled.info.warnings;
          assert.deepEqual(unavailable, [], 'layers, heads and neurons are all found');
          // Not 1e-12 in float64: Gemma's block graphs (weights as inputs) differ by ≈ 2e-7 and Gemma 2's by 1.3e-5,
          // with or without query chunks — its block-wise logits already differ by 1e-5 (a float32 step in one of the
          // two graphs, not found yet); the three main families are held to 1e-12 in blockwise.test.ts.
          if (mode === 'attnlrp') await assertBlockwiseEquals(graph, out, 1e-4);
          assert.deepEqual([compiled.info.layers, compiled.info.heads, compiled.info.neurons], [TINY.layers, TINY.heads, TINY.ffn]);
        } finally {
          await compiled.release();
        }
      }

      const { graph: g32, config } = row.build(TINY);
      const dir = modelFolder(work, row.family, g32, config, STORIES);
      const report = await inspectModel(dir);
      assert.equal(report.attribution.supported, true, report.attribution.reason ?? '');
      assert.deepEqual(report.attribution.warnings, unavailable);
      const engine = await AttributionEngine.load(dir, { cache: false });
      try {
        const r = await engine.attribute({ ids: IDS });
        assert.equal(r.relevance.tokens.length, IDS.length);
        assert.ok(r.relevance.tokens.every(Number.isFinite));
      } finally {
        await engine.release();
      }
      await pruneAndCircuit(dir);
      results.set(row.family, {
        family: row.family,
        modelType: String(config.model_type),
        features: row.features,
        layers: report.attribution.layers,
        heads: report.attribution.heads,
        neurons: report.attribution.neurons,
        precision: f64 ? 'float64' : 'float32',
        unavailable,
      });
    });
  }

  it('an op the compiler does not know: inspect names the node, its op and what is missing, and attribution refuses with the same message', async () => {
    const { graph, config } = buildFamily('qwen2', TINY);
    const emb = graph.nodes.find((n) => n.opType === 'Gather' && n.inputs[1] === 'input_ids')!.outputs[0];
    for (const n of graph.nodes) n.inputs = n.inputs.map((i) => (i === emb ? 'odd_out' : i));
    graph.nodes.push({ name: 'odd/Sinh', opType: 'Sinh', domain: '', inputs: [emb], outputs: ['odd_out'], attributes: [] });
    graph.sortTopologically();
    const dir = modelFolder(work, 'unknown-op', graph, config, STORIES);
    const report = await inspectModel(dir);
    assert.equal(report.attribution.supported, false);
    assert.match(report.attribution.reason ?? '', /no relevance rule for this op \(op Sinh, node 'odd\/Sinh'\)/);
    await assert.rejects(AttributionEngine.load(dir, { cache: false }), (err: Error) => err.message === report.attribution.reason);
  });

  it(`the table in ${MATRIX_DOC} is the one these rows produce`, function () {
    if (results.size !== ROWS.length) this.skip();
    const table = renderMatrix(ROWS.map((r) => results.get(r.family)!));
    const doc = resolve(__dirname, '..', '..', MATRIX_DOC);
    if (process.env.LRP_LENS_WRITE_MATRIX) {
      writeFileSync(doc, readFileSync(doc, 'utf8').replace(tableIn(readFileSync(doc, 'utf8')), table));
    }
    assert.equal(tableIn(readFileSync(doc, 'utf8')), table, 'the committed matrix differs from this run: `npm run matrix` rewrites it');
  });
});

/**
 * Block-wise execution on the same padded batch: every block in query chunks and on one relevance graph, and
 * its relevance (tokens, layers, heads, neurons, absorbed budget) the monolithic graph's.
 */
async function assertBlockwiseEquals(graph: Graph, expected: Outputs, tolerance: number): Promise<void> {
  const batch = leftPad([IDS, IDS.slice(2)], 0);
  const { out, chunkedLayers, specialBlocks } = await blockwise(graph, batch, lastTokenSeed(batch, 42, 9), { mode: 'attnlrp' });
  assert.equal(chunkedLayers, TINY.layers, 'every attention layer is causal and runs in query chunks');
  assert.equal(specialBlocks, 0, 'blocks with one forward graph share one relevance graph (the first block too)');
  for (const name of ['lrp_tokens', 'lrp_layers', 'lrp_heads', 'lrp_neurons', ...ABSORBED.map((k) => `lrp_absorbed_${k}`)]) {
    const scale = Math.max(maxAbs(expected[name].data), maxAbs(expected.lrp_seed.data));
    const diff = maxAbs(out[name].data.map((x, i) => x - expected[name].data[i]));
    assert.ok(diff <= tolerance * scale, `block-wise ${name}: max |Δ| = ${diff} (scale ${scale})`);
  }
}

/** A 30% row-wise LRP mask, then a neuron circuit on a task the dense model does (its own top-1 vs bottom-1). */
async function pruneAndCircuit(dir: string): Promise<void> {
  const session = await PruningSession.open({ model: dir });
  try {
    const samples = [IDS, [9, 14, 120, 33, 61, 5], [44, 18, 300, 2, 99, 150], [11, 210, 35, 88, 7, 401]];
    const stats = await session.statistics('lrp', samples);
    const [point] = await sweep(session, session.scores(stats), [0.3], { allocation: 'row' });
    assert.ok(Math.abs(point.achieved - 0.3) < 0.05, `achieved sparsity ${point.achieved}`);
    const logits = await session.forward.lastLogits(samples);
    const task: TokenizedSample[] = samples.map((ids, i) => {
      const row = [...logits[i]];
      const targetId = row.indexOf(Math.max(...row));
      const foilId = row.indexOf(Math.min(...row));
      return { prompt: '', target: '', line: i + 1, promptIds: ids, targetId, foilId };
    });
    const dense = (await evaluateTask(session, task, 'logit_diff')).mean;
    const curve = await circuitCurve(session, 'lrp', task, task, dense, {
      metric: 'logit_diff',
      granularity: 'neurons',
      ranking: 'global',
      threshold: 0.5,
      sparsities: [0.1, 0.3],
      refine: 0,
    });
    assert.equal(curve.points.length, 2);
    assert.ok(curve.points.every((p) => Number.isFinite(p.metric) && p.achieved > 0));
  } finally {
    await session.close();
  }
}
