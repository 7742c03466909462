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
import type { Graph } from '../onnx/graph';
import { inputSpecs } from '../onnx/graph';
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
import { Session } from './session';
import type { Device, Feeds, HostTensor } from './session';
import { WeightStore } from './weightStore';
import { dropSchedule, streamWeights } from './weightStreaming';
import type { StreamingDecision } from './weightStreaming';
import { memoryLimitBytes } from './execution';

export { WeightStore } from './weightStore';

export interface BlockwiseModel {
  plan: BlockwisePlan;
  info: CompiledInfo;
  weights: WeightStore;
}

export type BlockwiseCompile = ({ ok: true } & BlockwiseModel) | { ok: false; reason: string };

/**
 * Canonicalise, probe, compile with cuts at the residual stream, and split; or say why the model cannot be split.
 * No weight is read: external data stays in its file and derived float32 weights (fp16, quantised) stay
 * recipes, until the runner's weight store reads them per segment.
 */
export async function compileBlockwise(graph: Graph, options: CompileOptions = {}): Promise<BlockwiseCompile> {
  const canonical = canonicalize(graph, { deferWeights: true });
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

export interface RunnerOptions {
  device?: Device;
  strictDevice?: boolean;
  /** Stream the weights per segment (true) or keep them (false); by default decided by the memory limit. */
  streamWeights?: boolean;
  memoryLimitBytes?: number;
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
    /** Whether the weights are read per segment and dropped after it, and why. */
    readonly weightStreaming: StreamingDecision,
  ) {
    const { plan } = model;
    const graphs = [...plan.forward, ...plan.backward, plan.assembly].filter((s): s is SegmentGraph => !!s);
    this.read = new Set(graphs.flatMap((g) => g.inputs.filter((i) => i.from.kind === 'tensor').map((i) => i.from.name)));
    if (weightStreaming.stream) this.dropAfter = dropSchedule(model.plan);
  }

  /** Weights to drop after each graph (streaming only). */
  private readonly dropAfter?: Map<SegmentGraph, string[]>;

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
    const streaming = streamWeights(model.weights.bytes, opts.memoryLimitBytes ?? memoryLimitBytes(), opts.streamWeights);
    return new BlockwiseRunner(model, sessions, device, [...warnings], streaming);
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
    if (this.dropAfter) this.model.weights.drop(this.dropAfter.get(seg) ?? []);
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
  }
}
