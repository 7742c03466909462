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
import { freemem } from 'node:os';
import type { Graph } from '../onnx/graph';
import { inputSpecs } from '../onnx/graph';
import { canonicalize } from '../relevance/canonicalize';
import { compileRelevance } from '../relevance/compiler';
import { IO } from '../relevance/ioNames';
import type { CompileOptions, CompiledInfo } from '../relevance/compiler';
import { analysePatterns } from '../relevance/patterns';
import { ATTENTION_CHUNKS, CHUNK_PREFIX, chunkCausalAttention } from '../relevance/attentionChunks';
import { analyseBlocks } from '../relevance/blocks';
import { SplitError, splitCompiled } from '../relevance/split';
import type { BlockwisePlan, SegmentGraph } from '../relevance/split';
import { LrpLensError } from '../errors';
import { probeShapes } from './probe';
import { Session } from './session';
import type { Device, Feeds, HostTensor, SessionOptions } from './session';
import { WeightStore } from './weightStore';
import { dropSchedule, runOrder, streamWeights } from './weightStreaming';
import type { StreamingDecision } from './weightStreaming';
import { memoryLimitBytes } from './execution';
import { productsWorthSaving } from '../memory/memoryEstimate';

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
  const chunks = options.attentionChunks ?? ATTENTION_CHUNKS;
  const shapes = await probeShapes(g);
  const chunkedLayers = chunkCausalAttention(g, shapes, chunks);
  if (chunkedLayers) {
    // The chunks' tensors, at lengths n and 2n: every chunk's size and bounds differ between them (none looks static).
    const chunked = await probeShapes(g, { sequences: [chunks, 2 * chunks], only: (t) => t.startsWith(CHUNK_PREFIX) });
    for (const [t, info] of chunked) shapes.set(t, info);
  }
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
    ...(chunkedLayers ? { attentionChunks: { layers: chunkedLayers, chunks } } : {}),
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
  /**
   * Memory the forward pass may spend on saving blocks' weight products so that their relevance graphs need
   * not recompute them (SavingVariant); by default half the weights' size (which keeps block-wise peak memory
   * within twice a plain forward's), and at most half the memory free when a run starts; none when the weights
   * are streamed (memory is what is short then).
   */
  saveBytes?: number;
}

/** One graph of a run, and the tensors to forget after it (what only it read). */
interface Step {
  seg?: SegmentGraph;
  free: string[];
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

/**
 * Runs a block-wise plan: same feeds and outputs as the monolithic relevance graph.
 *
 * Sessions keep onnxruntime's CPU arena, within a run and between runs, so the runs of one block graph reuse the
 * same memory instead of allocating (and page-faulting) every intermediate afresh: the C library keeps freed
 * blocks of up to 32 MB for reuse, but maps and unmaps larger ones, so without an arena every attention matrix
 * past 1,024 tokens was fresh memory, touched page by page. Every block has the same graphs (the token relevance
 * is the embedding's), so the arenas held are the block forward's, the block relevance's and the head's.
 */
export class BlockwiseRunner {
  /** Tensors some segment graph reads (an output among them must wait for the assembly, not go to a sink). */
  private readonly read: Set<string>;

  private constructor(
    private readonly model: BlockwiseModel,
    private readonly sessions: Map<string, Session>,
    private readonly sessionOptions: SessionOptions,
    private readonly saveBytes: number | undefined,
    readonly device: Device,
    readonly warnings: string[],
    /** Whether the weights are read per segment and dropped after it, and why. */
    readonly weightStreaming: StreamingDecision,
  ) {
    this.read = new Set(allGraphs(model.plan).flatMap((g) => g.inputs.filter((i) => i.from.kind === 'tensor').map((i) => i.from.name)));
    if (weightStreaming.stream) this.dropAfter = dropSchedule(model.plan);
  }

  /** Weights to drop after each graph (streaming only). */
  private readonly dropAfter?: Map<SegmentGraph, string[]>;

  static async create(model: BlockwiseModel, opts: RunnerOptions = {}): Promise<BlockwiseRunner> {
    const sessionOptions: SessionOptions = { device: opts.device, strictDevice: opts.strictDevice, arena: true };
    const sessions = new Map<string, Session>();
    let device: Device = 'cpu';
    const warnings = new Set<string>();
    try {
      for (const s of allGraphs(model.plan)) {
        if (sessions.has(s.key)) continue;
        const session = await Session.create(s.bytes, sessionOptions);
        sessions.set(s.key, session);
        device = session.device;
        for (const w of session.warnings) warnings.add(w);
      }
    } catch (err) {
      for (const s of sessions.values()) await s.release();
      throw err;
    }
    const streaming = streamWeights(model.weights.bytes, opts.memoryLimitBytes ?? memoryLimitBytes(), opts.streamWeights);
    // Created to check the device, and kept for the first run.
    return new BlockwiseRunner(model, sessions, { ...sessionOptions, device }, opts.saveBytes, device, [...warnings], streaming);
  }

  get info(): CompiledInfo {
    return this.model.info;
  }

  /** Distinct graphs (sessions) the plan may run; blocks of the same shape share one. */
  get sessionCount(): number {
    return new Set(allGraphs(this.model.plan).map((s) => s.key)).size;
  }

  /** Blocks whose weight products the forward pass saves for this batch: the last ones, as many as the budget allows. */
  savedBlocks(rows: number, tokens: number): Set<number> {
    const bytes = this.model.info.dtype === 'float64' ? 8 : 4;
    const saving = this.model.plan.saving;
    if (this.weightStreaming.stream) return new Set();
    let left = this.saveBytes ?? Math.min(this.model.weights.bytes, freemem()) / 2;
    const saved = new Set<number>();
    const heads = this.model.info.heads ?? 1;
    const worthIt = (perToken: number) => this.saveBytes !== undefined || productsWorthSaving(perToken, heads, tokens);
    for (let k = saving.length - 1; k >= 0; k--) {
      const cost = (saving[k]?.elementsPerToken ?? 0) * rows * tokens * bytes;
      if (!saving[k] || cost > left || !worthIt(saving[k]!.elementsPerToken)) continue;
      saved.add(k);
      left -= cost;
    }
    return saved;
  }

  async run(feeds: Feeds, sink?: OutputSink): Promise<Record<string, HostTensor>> {
    const [rows, tokens] = feeds.input_ids?.dims ?? [1, 1];
    const steps = this.steps(this.savedBlocks(rows, tokens));
    const tensors = new Map<string, HostTensor>();
    const outputs = new Set(this.model.plan.outputs);
    const handOver = (seg: SegmentGraph) => {
      for (const { tensor } of seg.outputs) {
        if (!sink || !outputs.has(tensor) || this.read.has(tensor) || !sink.takes(tensor)) continue;
        sink.take(tensor, tensors.get(tensor)!);
        tensors.delete(tensor);
        outputs.delete(tensor);
      }
    };
    for (const step of steps) {
      if (step.seg) {
        await this.exec(step.seg, feeds, tensors);
        handOver(step.seg);
      }
      for (const t of step.free) tensors.delete(t);
    }
    const out: Record<string, HostTensor> = {};
    for (const o of outputs) out[o] = tensors.get(o)!;
    return out;
  }

  /** Forward graphs 0 … L, relevance graphs from the head down, then the assembly. */
  private steps(saved: Set<number>): Step[] {
    const { plan } = this.model;
    // A relevance graph frees what only it read: its saved input, the gradient arriving at its output, its saved products.
    const frees = (k: number) => [IO.cutGrad(k), ...(k >= 1 ? [plan.stream[k - 1]] : []), ...(saved.has(k) ? plan.saving[k]!.tensors : [])];
    return runOrder(plan, saved).map((r) => ({ seg: r.graph, free: r.relevance ? frees(r.segment) : [] }));
  }

  private async exec(seg: SegmentGraph, feeds: Feeds, tensors: Map<string, HostTensor>): Promise<void> {
    const inputs: Feeds = {};
    for (const { name, from } of seg.inputs) {
      const v =
        from.kind === 'feed' ? feeds[from.name] : from.kind === 'weight' ? this.model.weights.tensor(from.name) : tensors.get(from.name);
      if (!v) throw new LrpLensError('runtime-failure', `Block-wise execution: no value for '${from.name}' (${from.kind}).`);
      inputs[name] = v;
    }
    const session = this.sessions.get(seg.key) ?? (await Session.create(seg.bytes, this.sessionOptions));
    this.sessions.set(seg.key, session);
    const out = await session.run(inputs);
    for (const { name, tensor } of seg.outputs) tensors.set(tensor, out[name]);
    if (this.dropAfter) this.model.weights.drop(this.dropAfter.get(seg) ?? []);
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}

/** Every graph a run may execute. */
function allGraphs(plan: BlockwisePlan): SegmentGraph[] {
  const saving = plan.saving.flatMap((v) => (v ? [v.forward, v.backward] : []));
  return [...plan.forward, ...plan.backward, ...saving, plan.assembly].filter((s): s is SegmentGraph => !!s);
}
