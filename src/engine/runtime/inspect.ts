/**
 * `inspect`: the facts a user needs about a new model before attributing it — architecture, export style, ops,
 * which rewrites apply, precision, external data, and whether attribution is supported (and if not, why).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { LrpLensError } from '../errors';
import { readModel } from '../onnx/io';
import type { Graph } from '../onnx/graph';
import { dtypeOf, num } from '../onnx/tensor';
import { externalFiles, isExternal } from '../onnx/externalData';
import { canonicalize } from '../relevance/canonicalize';
import { compileRelevance } from '../relevance/compiler';
import type { CompiledInfo } from '../relevance/compiler';
import { analysePatterns } from '../relevance/patterns';
import { analyseBlocks } from '../relevance/blocks';
import { chooseExecution, memoryLimitBytes } from './execution';
import { probeShapes } from './probe';
import { resolveModel, maxPositions } from './model';
import type { ModelConfig } from './model';
import { cudaStatus } from './device';
import { countParameters } from './parameters';
import { ATTENTION_CHUNKS, causalAttentionLayers } from '../relevance/attentionChunks';

export interface ModelReport {
  schema: 'lrp-lens/inspect@1';
  model: { ref: string; dir: string; onnx: string; bytes: number };
  family: string | null;
  architecture: string | null;
  layers: number | null;
  heads: number | null;
  kvHeads: number | null;
  hiddenSize: number | null;
  intermediateSize: number | null;
  vocabSize: number | null;
  maxPositions: number | null;
  parameters: number;
  opset: number;
  irVersion: number;
  producer: string;
  exportStyle: string;
  /** Op counts, domain-qualified for non-standard domains. */
  ops: Record<string, number>;
  /** Canonicalisation rewrites and passes that apply, with counts. */
  rewrites: Record<string, number>;
  /** Element types of the weight matrices (count of initializers of rank ≥ 2), e.g. { float32: 37 }. */
  precision: Record<string, number>;
  externalData: { files: string[]; bytes: number } | null;
  inputs: string[];
  outputs: string[];
  attribution: {
    supported: boolean;
    reason: string | null;
    layers: number | null;
    heads: number | null;
    neurons: number | null;
    warnings: string[];
  };
  devices: { cpu: boolean; cuda: boolean };
  /** Whether block-wise execution is possible, and which execution `auto` picks at some lengths (batch 1). */
  execution?: {
    blockwise: { supported: boolean; reason: string | null };
    /** Block-wise: causal attention layers computed in query chunks (relevance/attentionChunks.ts), or null. */
    queryChunks: { layers: number; chunks: number } | null;
    limitBytes: number;
    choices: { tokens: number; execution: string | null; reason: string; monolithicBytes: number; blockwiseBytes: number }[];
  };
}

const numOrNull = (...vs: unknown[]): number | null => {
  for (const v of vs) if (typeof v === 'number') return v;
  return null;
};

function opCounts(g: Graph): Record<string, number> {
  const ops: Record<string, number> = {};
  for (const n of g.nodes) {
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
    ops[key] = (ops[key] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(ops).sort(([a], [b]) => a.localeCompare(b)));
}

function exportStyle(ops: Record<string, number>, g: Graph): string {
  const has = (op: string) => Object.keys(ops).some((k) => k === op || k.endsWith(`.${op}`));
  if (has('If') && g.inputs.some((i) => i.name === 'use_cache_branch')) return 'Optimum merged decoder (If on use_cache_branch)';
  if (has('GroupQueryAttention')) return 'onnxruntime-genai (GroupQueryAttention, fused norms)';
  if (has('Attention') || has('SkipLayerNormalization') || has('MultiHeadAttention'))
    return 'onnxruntime-optimised (fused attention and norms)';
  if (has('MatMulNBits') || has('MatMulInteger')) return 'quantised export';
  return 'standard ONNX ops (torch / Optimum export)';
}

/** Element types of the weight matrices (initializers of rank ≥ 2). */
function precisionOf(g: Graph): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of g.initializers.values()) {
    if ((t.dims ?? []).length < 2) continue;
    const d = dtypeOf(t.dataType ?? 0);
    out[d] = (out[d] ?? 0) + 1;
  }
  return out;
}

function externalDataOf(g: Graph, dir: string): ModelReport['externalData'] {
  const files = [...externalFiles(g.initializers.values())];
  if (files.length === 0) return null;
  return { files, bytes: files.reduce((a, f) => a + statSync(join(dir, f)).size, 0) };
}

export async function inspectModel(ref: string, opts: { offline?: boolean } = {}): Promise<ModelReport> {
  const model = await resolveModel(ref, { offline: opts.offline });
  const graph = readModel(model.onnxPath);
  const c: ModelConfig = model.config;
  const ops = opCounts(graph);
  const report: ModelReport = {
    schema: 'lrp-lens/inspect@1',
    model: { ref, dir: model.dir, onnx: model.onnxPath, bytes: statSync(model.onnxPath).size },
    family: (c.model_type as string | undefined) ?? null,
    architecture: c.architectures?.[0] ?? null,
    layers: numOrNull(c.num_hidden_layers, c.n_layer),
    heads: numOrNull(c.num_attention_heads, c.n_head),
    kvHeads: numOrNull(c.num_key_value_heads, c.num_attention_heads, c.n_head),
    hiddenSize: numOrNull(c.hidden_size, c.n_embd, c.d_model),
    intermediateSize: numOrNull(c.intermediate_size, c.n_inner, c.ffn_dim),
    vocabSize: numOrNull(c.vocab_size),
    maxPositions: maxPositions(c) ?? null,
    parameters: countParameters(graph, c.tie_word_embeddings as boolean | undefined),
    opset: graph.opset,
    irVersion: num(graph.model.irVersion),
    producer: `${graph.model.producerName ?? ''} ${graph.model.producerVersion ?? ''}`.trim(),
    exportStyle: exportStyle(ops, graph),
    ops,
    rewrites: {},
    precision: precisionOf(graph),
    externalData: [...graph.initializers.values()].some(isExternal) ? externalDataOf(graph, graph.source!.dir) : null,
    inputs: graph.inputs.map((i) => i.name ?? ''),
    outputs: graph.outputs.map((o) => o.name ?? ''),
    attribution: { supported: false, reason: null, layers: null, heads: null, neurons: null, warnings: [] },
    devices: { cpu: true, cuda: cudaStatus().installed },
  };
  try {
    // Deferred: shapes are all the report needs; fp16 / quantised weights are not widened for the whole model.
    const canonical = canonicalize(graph, { deferWeights: true });
    report.rewrites = canonical.rewrites;
    const shapes = await probeShapes(canonical.graph);
    const blocks = analyseBlocks(canonical.graph, analysePatterns(canonical.graph, shapes, 'attnlrp'));
    const causal = blocks.ok ? causalAttentionLayers(canonical.graph, shapes) : 0;
    const { info } = compileRelevance(canonical.graph, shapes, canonical.weightOrigins, {});
    report.execution = {
      ...executionReport(report, info, blocks.ok ? true : blocks.reason, c.tie_word_embeddings !== false),
      queryChunks: causal ? { layers: causal, chunks: ATTENTION_CHUNKS } : null,
    };
    report.attribution = {
      supported: true,
      reason: null,
      layers: info.layers,
      heads: info.heads,
      neurons: info.neurons,
      warnings: info.warnings,
    };
  } catch (err) {
    if (!LrpLensError.is(err)) throw err;
    report.attribution.reason = err.message;
  }
  return report;
}

/** Which execution `auto` would pick for one prompt of a few lengths, and the estimates behind it. */
function executionReport(
  r: ModelReport,
  info: CompiledInfo,
  blockwise: true | string,
  tied: boolean,
): Omit<NonNullable<ModelReport['execution']>, 'queryChunks'> {
  const limitBytes = memoryLimitBytes();
  const shape = {
    layers: info.layers,
    heads: info.heads ?? 1,
    hidden: r.hiddenSize ?? Math.round((info.neurons ?? 4096) / 4),
    neurons: info.neurons ?? 4096,
    vocab: info.vocabSize,
    // Held as float32 whatever the file's precision (fp16 and quantised weights are widened).
    weightBytes: Math.max(r.model.bytes + (r.externalData?.bytes ?? 0), r.parameters * 4),
    elementBytes: info.dtype === 'float64' ? 8 : 4,
    kvHeads: r.kvHeads ?? undefined,
    externalData: !!r.externalData,
    tied,
  };
  const context = r.maxPositions ?? 4096;
  const lengths = [...new Set([512, 2048, context].filter((n) => n <= context))].sort((a, b) => a - b);
  const choices = lengths.map((tokens) => {
    try {
      const d = chooseExecution('auto', shape, 1, tokens, limitBytes, blockwise);
      return { tokens, execution: d.execution as string | null, reason: d.reason, ...d.estimate };
    } catch (err) {
      if (!LrpLensError.is(err)) throw err;
      return { tokens, execution: null, reason: err.message, monolithicBytes: NaN, blockwiseBytes: NaN };
    }
  });
  return { blockwise: { supported: blockwise === true, reason: blockwise === true ? null : blockwise }, limitBytes, choices };
}

/** JSON Schema of ModelReport (documented in docs/formats.md). */
export const INSPECT_SCHEMA = {
  $id: 'https://lrp-lens.dev/schema/inspect-1.json',
  type: 'object',
  required: [
    'schema',
    'model',
    'family',
    'layers',
    'heads',
    'kvHeads',
    'hiddenSize',
    'opset',
    'exportStyle',
    'ops',
    'rewrites',
    'precision',
    'externalData',
    'attribution',
    'devices',
  ],
  properties: {
    schema: { const: 'lrp-lens/inspect@1' },
    model: { type: 'object', required: ['ref', 'dir', 'onnx', 'bytes'] },
    family: { type: ['string', 'null'] },
    architecture: { type: ['string', 'null'] },
    layers: { type: ['integer', 'null'] },
    heads: { type: ['integer', 'null'] },
    kvHeads: { type: ['integer', 'null'] },
    hiddenSize: { type: ['integer', 'null'] },
    intermediateSize: { type: ['integer', 'null'] },
    vocabSize: { type: ['integer', 'null'] },
    maxPositions: { type: ['integer', 'null'] },
    parameters: { type: 'integer', minimum: 0 },
    opset: { type: 'integer' },
    irVersion: { type: 'integer' },
    producer: { type: 'string' },
    exportStyle: { type: 'string' },
    ops: { type: 'object', additionalProperties: { type: 'integer' } },
    rewrites: { type: 'object', additionalProperties: { type: 'integer' } },
    precision: { type: 'object', additionalProperties: { type: 'integer' } },
    externalData: { oneOf: [{ type: 'null' }, { type: 'object', required: ['files', 'bytes'] }] },
    inputs: { type: 'array', items: { type: 'string' } },
    outputs: { type: 'array', items: { type: 'string' } },
    attribution: {
      type: 'object',
      required: ['supported', 'reason', 'layers', 'heads', 'neurons', 'warnings'],
      properties: {
        supported: { type: 'boolean' },
        reason: { type: ['string', 'null'] },
        warnings: { type: 'array', items: { type: 'string' } },
      },
    },
    devices: { type: 'object', required: ['cpu', 'cuda'] },
  },
} as const;
