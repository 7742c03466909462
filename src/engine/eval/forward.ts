/**
 * The model's forward pass, prepared for evaluation and pruning: label log-probabilities computed inside the
 * graph (no [batch, seq, vocab] logits copied out for perplexity), prunable weights turned into graph inputs
 * so a mask applies by feeding masked copies — no recompilation per mask — and optionally Wanda's
 * statistics (Σ x² per input channel of each linear layer) as extra outputs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readModel, writeModelReferencingSource } from '../onnx/io';
import { GraphBuilder, valueInfo } from '../onnx/builder';
import type { Graph, OnnxNode } from '../onnx/graph';
import { inputSpecs } from '../onnx/graph';
import { dtypeOf } from '../onnx/tensor';
import { Session, hostTensor, int64Tensor } from '../runtime/session';
import type { Device, HostTensor } from '../runtime/session';
import { causalLmFeeds, padBatch } from '../runtime/feeds';
import type { PaddingSide } from '../runtime/feeds';
import { LrpLensError } from '../errors';
import type { Mask, PrunableWeight } from '../weights/types';
import { maskedBytes, storedBytes, storedDtype } from '../weights/weightValues';

export const FORWARD_IO = {
  labels: 'lrp_labels',
  labelLogProb: 'lrp_label_logprob',
  sumSquares: (init: string) => `lrp_sumsq/${init}`,
} as const;

export interface ForwardOptions {
  device?: Device;
  /**
   * Weights a mask may zero. They become graph inputs fed on every run: onnxruntime-node ignores feeds for
   * initializers that are also graph inputs ("overridable initializers"), so they cannot stay initializers.
   */
  prunable?: PrunableWeight[];
  /** Emit Σ x² per input channel of these weights' layers (Wanda's statistics). */
  statistics?: PrunableWeight[];
}

export class ForwardModel {
  /** The dense weights, read once (external data included); masks are applied to copies of these. */
  private readonly denseFeeds: Record<string, HostTensor>;
  private weightFeeds: Record<string, HostTensor>;

  private constructor(
    private readonly session: Session,
    private readonly graph: Graph,
    private readonly dir: string,
    private readonly specs: ReturnType<typeof inputSpecs>,
    readonly padding: PaddingSide,
    readonly vocabSize: number,
    private readonly prunable: Map<string, PrunableWeight>,
  ) {
    this.denseFeeds = Object.fromEntries([...prunable].map(([name, w]) => [name, this.tensorOf(name, w, storedBytes(graph, name))]));
    this.weightFeeds = this.denseFeeds;
  }

  /** From a model file, or a graph already read from one (its weights stay views of the file's bytes). */
  static async load(model: string | Graph, opts: ForwardOptions = {}): Promise<ForwardModel> {
    const graph = typeof model === 'string' ? readModel(model) : model;
    const specs = inputSpecs(graph.inputs);
    const prepared = prepareGraph(graph.clone(), opts);
    const dir = mkdtempSync(join(tmpdir(), 'lrp-forward-'));
    try {
      const path = writeModelReferencingSource(prepared.graph, dir, 'forward.onnx');
      const session = await Session.create(path, { device: opts.device });
      const padding = graph.nodes.some((n) => n.opType === 'GroupQueryAttention') ? 'right' : 'left';
      return new ForwardModel(
        session,
        graph,
        dir,
        specs,
        padding,
        prepared.vocabSize,
        new Map((opts.prunable ?? []).map((w) => [w.name, w])),
      );
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get device(): Device {
    return this.session.device;
  }

  /** Later runs use the model with these weights zeroed (undefined: the dense model). */
  setMask(mask: Mask | undefined): void {
    for (const name of mask?.keys() ?? []) {
      if (!this.prunable.has(name))
        throw new LrpLensError(
          'bad-argument',
          `The mask prunes '${name}', which is not a prunable weight of this model. Was the mask made for another model?`,
        );
    }
    this.weightFeeds = this.feedsFor(mask);
  }

  private feedsFor(mask: Mask | undefined): Record<string, HostTensor> {
    const feeds = { ...this.denseFeeds };
    for (const [name, m] of mask ?? []) {
      const dense = this.denseFeeds[name].data as Float32Array | Uint16Array;
      const bytes = new Uint8Array(dense.buffer, dense.byteOffset, dense.byteLength);
      feeds[name] = this.tensorOf(name, this.prunable.get(name)!, maskedBytes(bytes, dense.BYTES_PER_ELEMENT as 2 | 4, m));
    }
    return feeds;
  }

  /** A weight's stored bytes as a tensor of its stored type (copied when not aligned for a typed-array view). */
  private tensorOf(name: string, w: PrunableWeight, stored: Uint8Array): HostTensor {
    const dtype = storedDtype(this.graph, name);
    const size = dtype === 'float32' ? 4 : 2;
    const bytes = stored.byteOffset % size === 0 ? stored : new Uint8Array(stored);
    return dtype === 'float32'
      ? hostTensor(dtype, new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), w.dims)
      : hostTensor(dtype, new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2), w.dims);
  }

  /** Runs rows (token ids, any lengths) in one padded batch. */
  async run(rows: number[][], labels?: number[][]): Promise<ForwardRun> {
    const batch = padBatch(rows, 0, this.padding);
    const B = rows.length;
    const S = batch.ids[0].length;
    const offset = (r: number) => (this.padding === 'left' ? S - rows[r].length : 0);
    const flatLabels = new Array<number>(B * S).fill(0);
    labels?.forEach((l, r) => l.forEach((id, t) => (flatLabels[r * S + offset(r) + t] = id)));
    const feeds = { ...causalLmFeeds(this.specs, batch), ...this.weightFeeds, [FORWARD_IO.labels]: int64Tensor(flatLabels, [B, S, 1]) };
    const out = await this.session.run(feeds);
    return new ForwardRun(out, rows, S, this.vocabSize, offset);
  }

  /** log p(ids[t+1] | ids[..t]) for every row and t < length − 1. */
  async nextTokenLogProbs(rows: number[][]): Promise<Float32Array[]> {
    const run = await this.run(
      rows,
      rows.map((r) => [...r.slice(1), 0]),
    );
    return rows.map((r, i) => run.labelLogProbs(i).subarray(0, r.length - 1));
  }

  /** Logits at the last position of each row. */
  async lastLogits(rows: number[][]): Promise<Float32Array[]> {
    const run = await this.run(rows);
    return rows.map((r, i) => run.logitsAt(i, r.length - 1));
  }

  async release(): Promise<void> {
    await this.session.release();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One batched run's outputs, indexed by row and unpadded position. */
export class ForwardRun {
  constructor(
    private readonly out: Record<string, HostTensor>,
    private readonly rows: number[][],
    private readonly S: number,
    private readonly V: number,
    private readonly offset: (row: number) => number,
  ) {}

  logitsAt(row: number, position: number): Float32Array {
    const data = this.out.logits.data as Float32Array;
    const at = (row * this.S + this.offset(row) + position) * this.V;
    return Float32Array.from(data.subarray(at, at + this.V));
  }

  labelLogProbs(row: number): Float32Array {
    const data = this.out[FORWARD_IO.labelLogProb].data as Float32Array;
    const at = row * this.S + this.offset(row);
    return data.slice(at, at + this.rows[row].length);
  }

  /** Σ x² per input channel for a weight's layer, over every real (unpadded) token of the batch. */
  sumSquares(weight: string): Float32Array {
    const t = this.out[FORWARD_IO.sumSquares(weight)];
    if (!t) throw new LrpLensError('bad-argument', `No statistics were collected for '${weight}'.`);
    return t.data as Float32Array;
  }
}

interface PreparedGraph {
  graph: Graph;
  vocabSize: number;
}

function prepareGraph(graph: Graph, opts: ForwardOptions): PreparedGraph {
  const logitsInfo = graph.outputs.find((o) => o.name === 'logits');
  if (!logitsInfo) throw new LrpLensError('not-causal-lm', "The model has no 'logits' output; it is not a causal language model export.");
  const vocabSize = Number(logitsInfo.type?.tensorType?.shape?.dim?.at(-1)?.dimValue ?? 0);
  const b = new GraphBuilder(graph, 'lrp_eval');
  // Labels come as [batch, sequence, 1] so no opset-dependent Unsqueeze is needed.
  graph.inputs.push(valueInfo(FORWARD_IO.labels, 'int64', ['batch', 'sequence', 1]));
  const logits = logitsAsFloat(graph, b);
  const logp = b.op('LogSoftmax', [logits], { axis: -1 });
  const picked = b.op('GatherElements', [logp, FORWARD_IO.labels], { axis: 2 });
  graph.nodes.push(node('Identity', [b.ReduceSum(picked, [2], false)], FORWARD_IO.labelLogProb));
  graph.outputs.push(valueInfo(FORWARD_IO.labelLogProb, 'float32', ['batch', 'sequence']));
  for (const w of opts.statistics ?? []) addSumSquares(graph, b, w);
  for (const w of opts.prunable ?? []) {
    graph.inputs.push(valueInfo(w.name, storedDtype(graph, w.name), w.dims));
    graph.initializers.delete(w.name);
  }
  graph.outputs = graph.outputs.filter((o) => !(o.name ?? '').startsWith('present'));
  graph.sortTopologically();
  if (!vocabSize) throw new LrpLensError('unsupported-graph', 'The logits output has no static vocabulary size.');
  return { graph, vocabSize };
}

function node(opType: string, inputs: string[], output: string): OnnxNode {
  return { name: `lrp_eval/${output}`, opType, domain: '', inputs, outputs: [output], attributes: [] };
}

function logitsAsFloat(graph: Graph, b: GraphBuilder): string {
  const dtype = graph.outputs.find((o) => o.name === 'logits')?.type?.tensorType?.elemType;
  return dtype != null && dtypeOf(dtype) === 'float32' ? 'logits' : b.Cast('logits', 'float32');
}

/** Σ over real tokens of x² for the input x of the weight's MatMul/Gemm (padding masked by attention_mask). */
function addSumSquares(graph: Graph, b: GraphBuilder, w: PrunableWeight): void {
  const consumer = graph.nodes.find((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && n.inputs[1] === w.name);
  if (!consumer) throw new LrpLensError('unsupported-graph', `No MatMul or Gemm consumes '${w.name}'.`);
  const inputs = w.outAxis === 1 ? w.dims[0] : w.dims[1];
  let x = b.Reshape(consumer.inputs[0], b.ints([-1, inputs]));
  if (storedDtype(graph, w.name) !== 'float32') x = b.Cast(x, 'float32');
  if (graph.inputs.some((i) => i.name === 'attention_mask')) {
    x = b.Mul(x, b.Reshape(b.Cast('attention_mask', 'float32'), b.ints([-1, 1])));
  }
  const out = FORWARD_IO.sumSquares(w.name);
  graph.nodes.push(node('Identity', [b.ReduceSum(b.Mul(x, x), [0], false)], out));
  graph.outputs.push(valueInfo(out, 'float32', [inputs]));
}
