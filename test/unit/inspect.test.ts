/** `inspect` on stories260k and on each synthetic export style; JSON validated against its schema. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Ajv from 'ajv';
import { INSPECT_SCHEMA, inspectModel } from '../../src/engine/runtime/inspect';
import type { ModelReport } from '../../src/engine/runtime/inspect';
import { buildGpt2Like, buildLlamaLike, buildOptLike } from '../fixtures/torchExports';
import { buildGenaiLlama, buildOrtGpt2 } from '../fixtures/ortFusedExports';
import { mergedDecoder, quantizeMatMulNBits, toHalf } from '../fixtures/exportVariants';
import type { SyntheticConfig } from '../fixtures/torchExports';
import type { Graph } from '../../src/engine/onnx/graph';
import { STORIES, requireShared } from '../support/sharedFolder';
import { modelFolder } from '../support/relevanceHarness';

const CLI = resolve(__dirname, '..', '..', 'dist', 'cli.js');
const validate = new Ajv({ strict: false }).compile(INSPECT_SCHEMA);
const CFG: SyntheticConfig = { layers: 2, hidden: 16, heads: 4, ffn: 32, vocab: 40, maxPositions: 32, dtype: 'float32', seed: 3 };

describe('lrp-lens inspect', function () {
  let work: string;
  before(function () {
    requireShared(this);
    work = mkdtempSync(join(tmpdir(), 'lrp-inspect-'));
  });

  it('reports stories260k as a supported Llama, through the CLI, with JSON that validates', () => {
    const r = spawnSync(process.execPath, [CLI, 'inspect', '--model', STORIES, '--json', '-'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as ModelReport;
    assert.ok(validate(report), JSON.stringify(validate.errors));
    assert.equal(report.family, 'llama');
    assert.deepEqual([report.layers, report.heads, report.kvHeads, report.hiddenSize, report.vocabSize], [5, 8, 4, 64, 512]);
    assert.equal(report.opset, 14);
    assert.deepEqual(report.precision, { float32: 37 });
    assert.equal(report.externalData, null);
    assert.equal(report.attribution.supported, true);
    assert.deepEqual([report.attribution.layers, report.attribution.heads, report.attribution.neurons], [5, 8, 172]);
    assert.match(report.exportStyle, /standard ONNX ops/);
    assert.deepEqual(report.execution?.queryChunks, { layers: 5, chunks: 8 }, 'its 5 causal layers run in query chunks block-wise');
  });

  it("counts stories260k's parameters as Hugging Face does: the tied head once, norm weights in, inv_freq out", async () => {
    const report = await inspectModel(STORIES);
    // embedding 512·64 + 11 RMSNorm weights of 64 + 5 blocks of (q 64·64, k 64·32, v 64·32, o 64·64, 3 MLP 64·172).
    assert.equal(report.parameters, 512 * 64 + 11 * 64 + 5 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 172));
  });

  it('counts a synthetic GPT-2 (tied head as Transpose, positions, biases, LayerNorms) exactly', async () => {
    const report = await inspectModel(modelFolder(work, 'gpt2-count', buildGpt2Like(CFG), { model_type: 'gpt2' }, STORIES));
    const [h, f, v, p] = [CFG.hidden, CFG.ffn, CFG.vocab, CFG.maxPositions];
    const block = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h);
    assert.equal(report.parameters, v * h + p * h + CFG.layers * block + 2 * h);
  });

  const styles: [string, () => Graph, object, (r: ModelReport) => void][] = [
    [
      'GPT-2 (Gemm, LayerNormalization)',
      () => buildGpt2Like(CFG),
      { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_layer: 2, n_head: 4, n_embd: 16, vocab_size: 40, n_positions: 32 },
      (r) => {
        assert.ok(r.rewrites.Gemm > 0 && r.rewrites.LayerNormalization > 0, JSON.stringify(r.rewrites));
        assert.equal(r.opset, 17);
      },
    ],
    [
      'OPT (decomposed LayerNorm, ReLU)',
      () => buildOptLike(CFG),
      {
        model_type: 'opt',
        architectures: ['OPTForCausalLM'],
        num_hidden_layers: 2,
        num_attention_heads: 4,
        hidden_size: 16,
        vocab_size: 40,
      },
      (r) => {
        assert.deepEqual(r.rewrites, {});
      },
    ],
    [
      'Llama (RMSNorm, RoPE, GQA, SwiGLU)',
      () => buildLlamaLike({ ...CFG, kvHeads: 2 }),
      {
        model_type: 'llama',
        architectures: ['LlamaForCausalLM'],
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        hidden_size: 16,
      },
      (r) => {
        assert.equal(r.kvHeads, 2);
      },
    ],
    [
      'onnxruntime-genai Llama (GroupQueryAttention, fused norms)',
      () => buildGenaiLlama({ ...CFG, hidden: 64, heads: 4, kvHeads: 2 }, { fusedNorms: true }),
      { model_type: 'llama', architectures: ['LlamaForCausalLM'] },
      (r) => {
        assert.match(r.exportStyle, /onnxruntime-genai/);
        assert.ok(
          r.rewrites['com.microsoft.GroupQueryAttention'] > 0 && r.rewrites['com.microsoft.SkipSimplifiedLayerNormalization'] > 0,
          JSON.stringify(r.rewrites),
        );
      },
    ],
    [
      'onnxruntime-optimised GPT-2 (Attention, SkipLayerNormalization, FastGelu)',
      () => buildOrtGpt2(CFG, { fusedNorms: true }),
      { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] },
      (r) => {
        assert.match(r.exportStyle, /onnxruntime-optimised/);
        assert.ok(r.rewrites['com.microsoft.Attention'] > 0 && r.rewrites['com.microsoft.FastGelu'] > 0, JSON.stringify(r.rewrites));
      },
    ],
    [
      'fp16 Llama',
      () => toHalf(buildLlamaLike({ ...CFG, kvHeads: 2 })),
      { model_type: 'llama', architectures: ['LlamaForCausalLM'] },
      (r) => {
        assert.ok((r.precision.float16 ?? 0) > 0, JSON.stringify(r.precision));
      },
    ],
    [
      'q4 Llama (MatMulNBits)',
      () => quantizeMatMulNBits(buildLlamaLike({ ...CFG, kvHeads: 2 })).quantized,
      { model_type: 'llama', architectures: ['LlamaForCausalLM'] },
      (r) => {
        assert.ok(r.rewrites['com.microsoft.MatMulNBits'] > 0, JSON.stringify(r.rewrites));
      },
    ],
    [
      'Optimum merged decoder (If)',
      () => mergedDecoder(buildOptLike(CFG)),
      { model_type: 'opt', architectures: ['OPTForCausalLM'] },
      (r) => {
        assert.match(r.exportStyle, /merged decoder/);
      },
    ],
  ];
  for (const [name, build, config, check] of styles) {
    it(`reports the ${name} export as supported`, async () => {
      const report = await inspectModel(modelFolder(work, name.replace(/\W+/g, '_'), build(), config, STORIES));
      assert.ok(validate(report), JSON.stringify(validate.errors));
      assert.equal(report.attribution.supported, true, report.attribution.reason ?? '');
      assert.equal(report.attribution.layers, 2);
      assert.equal(report.attribution.heads, 4);
      check(report);
    });
  }

  it('says why a model cannot be attributed, naming the op and node', async () => {
    const g = buildLlamaLike({ ...CFG, kvHeads: 2 });
    const emb = g.nodes.find((n) => n.opType === 'Gather' && n.inputs[1] === 'input_ids')!.outputs[0];
    for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === emb ? 'sin_out' : i));
    g.nodes.push({ name: 'odd/Sin', opType: 'Sin', domain: '', inputs: [emb], outputs: ['sin_out'], attributes: [] });
    g.sortTopologically();
    const report = await inspectModel(modelFolder(work, 'sin', g, { model_type: 'llama', architectures: ['LlamaForCausalLM'] }, STORIES));
    assert.ok(validate(report), JSON.stringify(validate.errors));
    assert.equal(report.attribution.supported, false);
    assert.match(report.attribution.reason ?? '', /op Sin, node 'odd\/Sin'/);
    assert.ok(report.ops.Sin >= 1, 'ops are counted');
  });
});
