/**
 * Block-wise execution (gradient checkpointing driven from the engine): a forward pass that keeps only the
 * residual stream between blocks, then, from the head down to the embedding, one graph per block that
 * recomputes the block's forward from its saved input and propagates relevance through it. Peak memory is the
 * weights, the L+1 saved stream tensors (T × d each) and one block's activations and relevance, instead of
 * every block's attention probabilities at once. The outputs are the monolithic graph's, by name.
 *
 * @example
 *   const compiled = await compileBlockwise(readModel(path), { mode: 'attnlrp' });
 *   if (compiled.ok) { const runner = await BlockwiseRunner.create(compiled); const out = await runner.run(feeds); }
 */
import type { onnx } from 'onnx-proto';
import type { Graph } from '../onnx/graph';
import { inputSpecs } from '../onnx/graph';
import { dtypeOf, tensorDims } from '../onnx/tensor';
import { isExternal, readExternalBytes } from '../onnx/externalData';
import { canonicalize } from '../relevance/canonicalize';
import { compileRelevance } from '../relevance/compiler';
import { IO } from '../relevance/ioNames';
import type { CompileOptions, CompiledInfo } from '../relevance/compiler';
import { analysePatterns } from '../relevance/patterns';
import { analyseBlocks } from '../relevance/blocks';
import { SplitError, splitCompiled } from '../relevance/split';
import type { BlockwisePlan, SegmentGraph } from '../relevance/split';
import { LrpLensError } from '../errors';
import { probeShapes } from './probe';
import { Session, hostTensor } from './session';
import type { Device, Feeds, HostTensor } from './session';

export interface BlockwiseModel {
  plan: BlockwisePlan;
  info: CompiledInfo;
  weights: WeightStore;
}

export type BlockwiseCompile = ({ ok: true } & BlockwiseModel) | { ok: false; reason: string };

/** Canonicalise, probe, compile with cuts at the residual stream, and split; or say why the model cannot be split. */
export async function compileBlockwise(graph: Graph, options: CompileOptions = {}): Promise<BlockwiseCompile> {
  const canonical = canonicalize(graph);
  const g = canonical.graph;
  const shapes = await probeShapes(g);
  const patterns = analysePatterns(g, shapes, options.mode ?? 'attnlrp');
  const blocks = analyseBlocks(g, patterns);
  if (!blocks.ok) return blocks;
  const forwardNodes = new Set(g.nodes);
  const compiled = compileRelevance(g, shapes, canonical.weightOrigins, { ...options, cuts: blocks.blocks.stream });
  if (canonical.rewrites['com.microsoft.GroupQueryAttention']) compiled.info.padding = 'right';
  let plan: BlockwisePlan;
  try {
    plan = splitCompiled(compiled.graph, forwardNodes, patterns.relevant, blocks.blocks, shapes);
  } catch (err) {
    if (err instanceof SplitError) return { ok: false, reason: err.message };
    throw err;
  }
  const isCut = (n: string) => n.startsWith('lrp_cut_');
  const info: CompiledInfo = {
    ...compiled.info,
    outputs: compiled.info.outputs.filter((o) => !isCut(o)),
    inputs: inputSpecs(compiled.graph.inputs).filter((i) => !isCut(i.name)),
  };
  const weights = new WeightStore(new Map(plan.weights.map((w) => [w, compiled.graph.initializers.get(w)!])), compiled.graph.source?.dir);
  return { ok: true, plan, info, weights };
}

/**
 * The weights the segment graphs read, as tensors over the model's own bytes where they can be (embedded,
 * aligned float32), read from the data file otherwise. One copy serves every graph.
 */
export class WeightStore {
  private cache = new Map<string, HostTensor>();

  constructor(
    private readonly tensors: Map<string, onnx.ITensorProto>,
    private readonly dir: string | undefined,
  ) {}

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += tensorDims(t).reduce((a, b) => a * b, 1) * (dtypeOf(t.dataType ?? 0) === 'float64' ? 8 : 4);
    return n;
  }

  tensor(name: string): HostTensor {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const t = this.tensors.get(name);
    if (!t) throw new LrpLensError('unsupported-graph', `Block-wise execution needs weight '${name}', which the model does not hold.`);
    const data = values(t, this.dir);
    // A view of the weight's bytes, not a copy.
    const value = data instanceof Float32Array ? hostTensor('float32', data, tensorDims(t)) : hostTensor('float64', data, tensorDims(t));
    this.cache.set(name, value);
    return value;
  }

  /** Forget weights (streaming a model larger than memory block by block). */
  drop(names: Iterable<string>): void {
    for (const n of names) this.cache.delete(n);
  }
}

function values(t: onnx.ITensorProto, dir: string | undefined): Float32Array | Float64Array {
  const dtype = dtypeOf(t.dataType ?? 0);
  const wide = dtype === 'float64';
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new LrpLensError('unsupported-graph', `Weight '${t.name}' is ${dtype}; block-wise execution feeds float32 or float64 weights.`);
  const raw = isExternal(t) ? readExternalBytes(t, dir ?? '.') : t.rawData && t.rawData.length ? t.rawData : undefined;
  if (!raw) return wide ? Float64Array.from(t.doubleData ?? []) : Float32Array.from(t.floatData ?? []);
  const size = wide ? 8 : 4;
  const buffer = raw.byteOffset % size === 0 ? raw.buffer : (raw.slice().buffer as ArrayBuffer);
  const offset = raw.byteOffset % size === 0 ? raw.byteOffset : 0;
  return wide ? new Float64Array(buffer, offset, raw.byteLength / 8) : new Float32Array(buffer, offset, raw.byteLength / 4);
}

export interface RunnerOptions {
  device?: Device;
  strictDevice?: boolean;
}

/**
 * Outputs a caller consumes as they come (pruning statistics: each block's weight relevance is added to the
 * running sums as soon as its block is done), so a run never holds the whole model's worth of them at once.
 * Those the sink takes are absent from the run's result.
 */
export interface OutputSink {
  takes(name: string): boolean;
  take(name: string, value: HostTensor): void;
}

/** Runs a block-wise plan: same feeds and outputs as the monolithic relevance graph. */
export class BlockwiseRunner {
  /** Tensors some segment graph reads (an output among them must wait for the assembly, not go to a sink). */
  private readonly read: Set<string>;

  private constructor(
    private readonly model: BlockwiseModel,
    private readonly sessions: Map<string, Session>,
    readonly device: Device,
    readonly warnings: string[],
  ) {
    const { plan } = model;
    const graphs = [...plan.forward, ...plan.backward, plan.assembly].filter((s): s is SegmentGraph => !!s);
    this.read = new Set(graphs.flatMap((g) => g.inputs.filter((i) => i.from.kind === 'tensor').map((i) => i.from.name)));
  }

  static async create(model: BlockwiseModel, opts: RunnerOptions = {}): Promise<BlockwiseRunner> {
    const { plan } = model;
    const graphs = [...plan.forward, ...plan.backward, plan.assembly].filter((s): s is SegmentGraph => !!s);
    const sessions = new Map<string, Session>();
    let device: Device = 'cpu';
    const warnings = new Set<string>();
    try {
      for (const s of graphs) {
        if (sessions.has(s.key)) continue;
        // No arena: each session's arena would keep its own peak, and the block sessions' peaks would add up.
        const session = await Session.create(s.bytes, { device: opts.device, strictDevice: opts.strictDevice, arena: false });
        sessions.set(s.key, session);
        device = session.device;
        for (const w of session.warnings) warnings.add(w);
      }
    } catch (err) {
      for (const s of sessions.values()) await s.release();
      throw err;
    }
    return new BlockwiseRunner(model, sessions, device, [...warnings]);
  }

  get info(): CompiledInfo {
    return this.model.info;
  }

  /** Distinct graphs (sessions) the plan runs; blocks of the same shape share one. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  async run(feeds: Feeds, sink?: OutputSink): Promise<Record<string, HostTensor>> {
    const { plan } = this.model;
    const tensors = new Map<string, HostTensor>();
    const outputs = new Set(plan.outputs);
    const handOver = (seg: SegmentGraph) => {
      for (const { tensor } of seg.outputs) {
        if (!sink || !outputs.has(tensor) || this.read.has(tensor) || !sink.takes(tensor)) continue;
        sink.take(tensor, tensors.get(tensor)!);
        tensors.delete(tensor);
        outputs.delete(tensor);
      }
    };
    for (const seg of plan.forward) if (seg) await this.exec(seg, feeds, tensors);
    for (let k = plan.backward.length - 1; k >= 0; k--) {
      const seg = plan.backward[k];
      if (seg) {
        await this.exec(seg, feeds, tensors);
        handOver(seg);
      }
      // What only this segment read: its saved input and the gradient arriving at its output.
      if (k >= 1) tensors.delete(plan.stream[k - 1]);
      tensors.delete(IO.cutGrad(k));
    }
    await this.exec(plan.assembly, feeds, tensors);
    handOver(plan.assembly);
    const out: Record<string, HostTensor> = {};
    for (const o of outputs) out[o] = tensors.get(o)!;
    return out;
  }

  private async exec(seg: SegmentGraph, feeds: Feeds, tensors: Map<string, HostTensor>): Promise<void> {
    const inputs: Feeds = {};
    for (const { name, from } of seg.inputs) {
      const v =
        from.kind === 'feed' ? feeds[from.name] : from.kind === 'weight' ? this.model.weights.tensor(from.name) : tensors.get(from.name);
      if (!v) throw new LrpLensError('runtime-failure', `Block-wise execution: no value for '${from.name}' (${from.kind}).`);
      inputs[name] = v;
    }
    const out = await this.sessions.get(seg.key)!.run(inputs);
    for (const { name, tensor } of seg.outputs) tensors.set(tensor, out[name]);
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
  }
}
