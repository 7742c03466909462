/**
 * Test helpers: compile a graph, run it with a relevance seed, read outputs as plain numbers, and evaluate
 * the seed on the plain forward pass (for finite differences).
 */
import { Graph } from '../../src/engine/onnx/graph';
import { encodeModel, writeModel } from '../../src/engine/onnx/io';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTensor, tensorDims, tensorFloats } from '../../src/engine/onnx/tensor';
import type { FloatDType } from '../../src/engine/onnx/tensor';
import { compileGraph } from '../../src/engine/runtime/compile';
import { causalLmFeeds, inputSpecs, leftPad, seedFeeds } from '../../src/engine/runtime/feeds';
import type { TokenBatch } from '../../src/engine/runtime/feeds';
import { Session, tensorNumbers } from '../../src/engine/runtime/session';
import { BlockwiseRunner, compileBlockwise } from '../../src/engine/runtime/blockwise';
import type { RunnerOptions } from '../../src/engine/runtime/blockwise';
import type { HostTensor } from '../../src/engine/runtime/session';
import { findEmbeddings } from '../../src/engine/relevance/patterns';
import type { RelevanceMode } from '../../src/engine/relevance/mode';
import type { CompiledInfo, CompileOptions } from '../../src/engine/relevance/compiler';

export interface Values {
  data: number[];
  dims: number[];
}

export type Outputs = Record<string, Values>;

/**
 * The seed Σ_s w_s·logit[s, t_s] − w'_s·logit[s, f_s], per batch row and position. Positions without a
 * target have weight 0.
 */
export interface Seed {
  targets: number[][];
  weights: number[][];
  foils?: number[][];
  foilWeights?: number[][];
}

export function cloneGraph(g: Graph): Graph {
  return g.clone();
}

export function floatTypeOf(g: Graph): FloatDType {
  const t = g.outputs.find((o) => o.name === 'logits')?.type?.tensorType?.elemType;
  return t === 11 ? 'float64' : 'float32';
}

/** Target `target` (and optionally foil `foil`) at the last position of every row. */
export function lastTokenSeed(batch: TokenBatch, target: number, foil?: number): Seed {
  const zeros = batch.ids.map((r) => r.map(() => 0));
  const last = batch.ids.map((r) => r.map((_, i) => (i === r.length - 1 ? 1 : 0)));
  return {
    targets: batch.ids.map((r) => r.map(() => target)),
    weights: last,
    foils: foil === undefined ? undefined : batch.ids.map((r) => r.map(() => foil)),
    foilWeights: foil === undefined ? zeros : last,
  };
}

export function single(ids: number[]): TokenBatch {
  return leftPad([ids], 0);
}

function values(t: HostTensor): Values {
  return { data: tensorNumbers(t), dims: [...t.dims] };
}

export class CompiledModel {
  private constructor(
    readonly graph: Graph,
    readonly info: CompiledInfo,
    private readonly session: Session,
  ) {}

  /** Compiles a copy of `graph` (the original is left untouched). */
  static async create(graph: Graph, mode: RelevanceMode = 'attnlrp', options: CompileOptions = {}): Promise<CompiledModel> {
    const { graph: compiled, info } = await compileGraph(cloneGraph(graph), { ...options, mode });
    return new CompiledModel(compiled, info, await Session.create(encodeModel(compiled)));
  }

  async run(batch: TokenBatch, seed: Seed): Promise<Outputs> {
    const dtype = this.info.dtype;
    const b = batch.ids.length;
    const s = batch.ids[0].length;
    const feeds = causalLmFeeds(inputSpecs(this.graph.inputs), batch);
    Object.assign(
      feeds,
      seedFeeds(dtype, [b, s], {
        targetIds: seed.targets.flat(),
        targetWeights: seed.weights.flat(),
        foilIds: seed.foils?.flat(),
        foilWeights: seed.foilWeights?.flat(),
      }),
    );
    const out = await this.session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, values(v)]));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Logits of the plain forward pass. `exact`: without onnxruntime's graph optimisations, whose fused kernels
 * (e.g. its RMSNorm fusion of Gemma's (1 + w) norm) round below float64 precision.
 */
export async function forward(graph: Graph, batch: TokenBatch, exact = false): Promise<Values> {
  const session = await Session.create(encodeModel(graph), exact ? { optimization: 'disabled' } : {});
  try {
    const out = await session.run(causalLmFeeds(inputSpecs(graph.inputs), batch), ['logits']);
    return values(out.logits);
  } finally {
    await session.release();
  }
}

/** Σ_s w_s·logit[s, t_s] − w'_s·logit[s, f_s] for each batch row, from logits [b, s, vocab]. */
export function seedValue(logits: Values, seed: Seed): number[] {
  const [b, s, v] = logits.dims;
  const out: number[] = [];
  for (let r = 0; r < b; r++) {
    let total = 0;
    for (let p = 0; p < s; p++) {
      const row = (r * s + p) * v;
      total += seed.weights[r][p] * logits.data[row + seed.targets[r][p]];
      if (seed.foils && seed.foilWeights) total -= seed.foilWeights[r][p] * logits.data[row + seed.foils[r][p]];
    }
    out.push(total);
  }
  return out;
}

/** A copy of `graph` whose token-embedding row `id` is multiplied by `factor`. */
export function scaleEmbeddingRow(graph: Graph, id: number, factor: number): Graph {
  const g = cloneGraph(graph);
  const name = findEmbeddings(g)[0].inputs[0];
  const init = g.initializers.get(name)!;
  const dims = tensorDims(init);
  const data = tensorFloats(init);
  const width = dims[1];
  for (let i = id * width; i < (id + 1) * width; i++) data[i] *= factor;
  g.initializers.set(name, makeTensor(name, floatTypeOf(g), dims, data));
  return g;
}

/**
 * Gradient × input of the seed w.r.t. each token's embedding by central differences: perturbing the
 * embedding row of the token at position p by (1 ± h) gives d/dh f = e_p · ∂f/∂e_p. Tokens must be distinct.
 */
export async function finiteDifferences(graph: Graph, ids: number[], seed: Seed, h = 1e-4, exact = false): Promise<number[]> {
  if (new Set(ids).size !== ids.length) throw new RangeError('finite differences by embedding row need distinct token ids');
  const batch = single(ids);
  const out: number[] = [];
  for (const id of ids) {
    const up = seedValue(await forward(scaleEmbeddingRow(graph, id, 1 + h), batch, exact), seed)[0];
    const down = seedValue(await forward(scaleEmbeddingRow(graph, id, 1 - h), batch, exact), seed)[0];
    out.push((up - down) / (2 * h));
  }
  return out;
}

/** Rows of a [b, s] output. */
export function rows(v: Values): number[][] {
  const [b, s] = v.dims;
  return Array.from({ length: b }, (_, r) => v.data.slice(r * s, (r + 1) * s));
}

export function maxAbs(xs: number[]): number {
  return xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

/** max |a − b| / max |b|. */
export function relativeError(a: number[], b: number[]): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} ≠ ${b.length}`);
  const scale = Math.max(maxAbs(b), 1e-30);
  return maxAbs(a.map((x, i) => x - b[i])) / scale;
}

export const ABSORBED = ['bias', 'constant', 'softmax', 'stabiliser'] as const;

/** Σ tokens + Σ absorbed per batch row. */
export function budget(out: Outputs): number[] {
  return rows(out.lrp_tokens).map(
    (r, i) => r.reduce((a, b) => a + b, 0) + ABSORBED.reduce((a, k) => a + (out[`lrp_absorbed_${k}`]?.data[i] ?? 0), 0),
  );
}

/**
 * A model folder in the transformers.js layout around `graph`: config.json as given, and stories260k's
 * tokenizer files (engines load them; inspect only checks they exist).
 */
export function modelFolder(parent: string, name: string, graph: Graph, config: object, tokenizerFrom: string): string {
  const dir = join(parent, name);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  writeModel(graph, join(dir, 'onnx', 'model.onnx'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokenizerFrom, f), join(dir, f));
  return dir;
}

/** erf by its Maclaurin series (exact to double precision for |x| < 3; Abramowitz–Stegun 7.1.26 is too coarse). */
export function erf(x: number): number {
  let term = x;
  let total = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    total += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * total;
}

/** The block-wise runner's outputs for a batch and seed, and what the plan shares. */
export async function blockwise(
  graph: Graph,
  batch: TokenBatch,
  seed: Seed,
  options: CompileOptions,
  runnerOptions: RunnerOptions = {},
): Promise<{ out: Outputs; sessions: number; saved: number[]; chunkedLayers: number; specialBlocks: number }> {
  const compiled = await compileBlockwise(cloneGraph(graph), options);
  if (!compiled.ok) throw new Error(compiled.reason);
  const runner = await BlockwiseRunner.create(compiled, runnerOptions);
  try {
    const [b, s] = [batch.ids.length, batch.ids[0].length];
    const feeds = causalLmFeeds(compiled.info.inputs, batch);
    Object.assign(
      feeds,
      seedFeeds(compiled.info.dtype, [b, s], {
        targetIds: seed.targets.flat(),
        targetWeights: seed.weights.flat(),
        foilIds: seed.foils?.flat(),
        foilWeights: seed.foilWeights?.flat(),
      }),
    );
    const raw = await runner.run(feeds);
    const out = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, { data: tensorNumbers(v), dims: [...v.dims] }]));
    const saved = [...runner.savedBlocks(b, s)].sort((x, y) => x - y);
    // Distinct relevance graphs of the blocks beyond their distinct forward graphs: 0 where no block is special.
    const specialBlocks =
      new Set(compiled.plan.backward.slice(1, -1).map((g) => g?.key)).size -
      new Set(compiled.plan.forward.slice(1).map((g) => g?.key)).size;
    return { out, sessions: runner.sessionCount, saved, chunkedLayers: compiled.info.attentionChunks?.layers ?? 0, specialBlocks };
  } finally {
    await runner.release();
  }
}

/**
 * Whether element i of output `name` is a logit at a padding position: an exporter lets an all-padding row attend
 * to every key, which block-wise execution's query chunks do not see (docs/blockwise.md); no relevance reaches or
 * leaves such a row, so comparisons skip them.
 */
export function isPaddingLogit(name: string, dims: number[], mask: number[][], i: number): boolean {
  return name === 'logits' && mask.flat()[Math.floor(i / dims[dims.length - 1])] === 0;
}
