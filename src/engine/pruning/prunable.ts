/**
 * Which weights can be pruned: 2-D float initializers consumed by MatMul or Gemm, classified by block and
 * linear-layer kind from the node and initializer names that exporters write (HF, llama2.c, GPT-2, OPT).
 */
import type { onnx } from 'onnx-proto';
import type { Graph, OnnxNode } from '../onnx/graph';
import { attrInt } from '../onnx/graph';
import { dtypeOf, tensorDims } from '../onnx/tensor';
import { LrpLensError } from '../errors';
import type { LinearKind, PrunableWeight } from '../weights/types';

const KIND_BY_TOKEN: Record<string, LinearKind> = {
  q: 'q',
  q_proj: 'q',
  query: 'q',
  wq: 'q',
  k: 'k',
  k_proj: 'k',
  key: 'k',
  wk: 'k',
  v: 'v',
  v_proj: 'v',
  value: 'v',
  wv: 'v',
  c_attn: 'qkv',
  qkv: 'qkv',
  qkv_proj: 'qkv',
  query_key_value: 'qkv',
  wqkv: 'qkv',
  o: 'o',
  o_proj: 'o',
  out_proj: 'o',
  wo: 'o',
  g: 'gate',
  gate_proj: 'gate',
  w1: 'gate',
  gate: 'gate',
  u: 'up',
  up_proj: 'up',
  w3: 'up',
  up: 'up',
  d: 'down',
  down_proj: 'down',
  w2: 'down',
  down: 'down',
  fc1: 'fc1',
  c_fc: 'fc1',
  fc_in: 'fc1',
  dense_h_to_4h: 'fc1',
  fc2: 'fc2',
  fc_out: 'fc2',
  dense_4h_to_h: 'fc2',
  lm_head: 'lm_head',
};
const BLOCK_TOKENS = new Set(['layers', 'layer', 'h', 'blocks', 'block']);

export const BLOCK_KINDS: LinearKind[] = ['q', 'k', 'v', 'qkv', 'o', 'up', 'gate', 'down', 'fc1', 'fc2', 'other'];

function nameTokens(node: OnnxNode, init: string): string[] {
  return `${node.name}/${init}`
    .toLowerCase()
    .split(/[/.]/)
    .filter((t) => t.length > 0);
}

function blockIndex(tokens: string[]): number | null {
  for (let i = 0; i + 1 < tokens.length; i++) {
    if (BLOCK_TOKENS.has(tokens[i]) && /^\d+$/.test(tokens[i + 1])) return Number(tokens[i + 1]);
    const fused = /^(?:layers?|h|blocks?)_?(\d+)$/.exec(tokens[i]);
    if (fused) return Number(fused[1]);
  }
  return null;
}

function linearKind(tokens: string[]): LinearKind {
  for (let i = tokens.length - 1; i >= 0; i--) {
    const t = tokens[i];
    if (t === 'c_proj' || t === 'dense') return tokens.some((x) => x === 'attn' || x === 'attention' || x === 'self_attn') ? 'o' : 'fc2';
    const kind = KIND_BY_TOKEN[t];
    if (kind) return kind;
  }
  return 'other';
}

function weightDims(t: onnx.ITensorProto): [number, number] | undefined {
  const dims = tensorDims(t);
  const dtype = dtypeOf(t.dataType ?? 0);
  return dims.length === 2 && (dtype === 'float32' || dtype === 'float16') ? [dims[0], dims[1]] : undefined;
}

/** Every linear weight of the graph, in graph order; the last one outside the blocks is the LM head. */
export function findLinearWeights(graph: Graph): PrunableWeight[] {
  const out: PrunableWeight[] = [];
  const seen = new Set<string>();
  for (const node of graph.nodes) {
    if ((node.opType !== 'MatMul' && node.opType !== 'Gemm') || node.domain) continue;
    const init = node.inputs[1];
    const tensor = graph.initializers.get(init);
    const dims = tensor && weightDims(tensor);
    if (!dims || seen.has(init) || (node.opType === 'Gemm' && attrInt(node, 'transA', 0))) continue;
    seen.add(init);
    const tokens = nameTokens(node, init);
    const outAxis = node.opType === 'Gemm' && attrInt(node, 'transB', 0) ? 0 : 1;
    out.push({ name: init, dims, outAxis, layer: blockIndex(tokens), kind: linearKind(tokens) });
  }
  const outside = out.filter((w) => w.layer === null);
  const head = outside[outside.length - 1];
  if (head && head.kind === 'other') head.kind = 'lm_head';
  return out;
}

export interface WeightSelection {
  /** Linear-layer kinds to include (default: every kind inside the blocks). */
  kinds?: LinearKind[];
  /** Inclusive block range. */
  layers?: [number, number];
  /** Also prune the LM head. */
  lmHead?: boolean;
  /** Exactly these initializers (a mask's), whatever their kind; overrides the other fields. */
  names?: string[];
}

/** The weights to prune: the linear layers inside the blocks by default; the LM head only on request. */
export function selectWeights(all: PrunableWeight[], sel: WeightSelection = {}): PrunableWeight[] {
  if (sel.names) return namedWeights(all, sel.names);
  const picked = all.filter((w) => {
    if (w.kind === 'lm_head') return !!sel.lmHead;
    if (w.layer === null) return false;
    if (sel.kinds && !sel.kinds.includes(w.kind)) return false;
    return !sel.layers || (w.layer >= sel.layers[0] && w.layer <= sel.layers[1]);
  });
  if (picked.length === 0) {
    const found = all.map((w) => `${w.kind}@${w.layer ?? '-'}`).join(', ') || 'none';
    throw new LrpLensError(
      'bad-argument',
      `No prunable linear weights match the selection (found: ${found}). Widen the layer kinds or range; quantized weights (MatMulNBits, MatMulInteger) cannot be pruned — use the float export.`,
    );
  }
  return picked;
}

function namedWeights(all: PrunableWeight[], names: string[]): PrunableWeight[] {
  const byName = new Map(all.map((w) => [w.name, w]));
  return names.map((n) => {
    const w = byName.get(n);
    if (!w) throw new LrpLensError('bad-argument', `'${n}' is not a linear weight of this model. Was the mask made for another model?`);
    return w;
  });
}

/** Parses a `--layers` value: kinds and/or a block range, e.g. `gate,up,down` or `2-4` or `fc1:0-3`. */
export function parseWeightSelection(spec: string | undefined, lmHead = false): WeightSelection {
  const sel: WeightSelection = { lmHead };
  if (!spec) return sel;
  for (const part of spec
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (range) {
      sel.layers = [Number(range[1]), Number(range[2] ?? range[1])];
    } else if ((BLOCK_KINDS as string[]).includes(part)) {
      sel.kinds = [...(sel.kinds ?? []), part as LinearKind];
    } else {
      throw new LrpLensError(
        'bad-argument',
        `Unknown layer selector '${part}'. Use kinds (${BLOCK_KINDS.join(', ')}) and/or a block range like 0-3.`,
      );
    }
  }
  return sel;
}
