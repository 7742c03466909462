/**
 * The relevance pass of one compiled model in either execution: the monolithic graph's session, or the
 * block-wise runner (compiled on first use). Both take the same feeds and return the same outputs; which one
 * runs a batch is `chooseExecution`'s call. Only one holds the weights at a time: switching releases the other.
 * `load` decides from the model's sizes (config.json) before compiling anything, and compiles only what runs:
 * a model whose monolithic graph cannot fit (a big fp16 model, whose widened weights that graph would hold)
 * goes block-wise with its weights read per block, and the monolithic graph is compiled when a batch picks it.
 */
import { readModel } from '../onnx/io';
import { LrpLensError } from '../errors';
import type { CompileOptions } from '../relevance/compiler';
import type { CompiledInfo } from '../relevance/compiler';
import { compileModelFile } from './compile';
import type { CompiledModel } from './compile';
import { BlockwiseRunner, compileBlockwise } from './blockwise';
import type { BlockwiseModel, OutputSink } from './blockwise';
import { chooseExecution, memoryLimitBytes, weightStreaming } from './execution';
import type { Execution, ExecutionChoice, ExecutionDecision, ModelShape } from './execution';
import type { ModelFolder } from './model';
import { dimsFromConfig, modelFiles, parameterCounts } from '../memory/memoryEstimate';
import { Session } from './session';
import type { Device, Feeds, HostTensor } from './session';

export interface RelevanceRunner {
  /** The outputs by name; those a sink takes go to it (as their block finishes, block-wise) instead. */
  run(feeds: Feeds, sink?: OutputSink): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
  readonly device: Device;
  readonly warnings: string[];
}

export interface RunnersOptions {
  device?: Device;
  strictDevice?: boolean;
  execution?: ExecutionChoice;
  memoryLimitBytes?: number;
  /**
   * The largest batch the caller wants to run (rows, tokens), when known: the batch is reduced to what fits
   * (`batch`), and the execution `auto` picks for it starts at once, instead of the monolithic graph (whose
   * session would hold a second copy of the weights while the block-wise one compiles).
   */
  expect?: { batch: number; seq: number };
  /** Reuse / write the compiled monolithic graph's disk cache (default true; `load` only). */
  cache?: boolean;
}

type RunnersModel = Pick<ModelFolder, 'onnxPath'> & Partial<Pick<ModelFolder, 'config'>>;

/** What was compiled first, and how long it took (the monolithic graph may come from the disk cache). */
export interface FirstCompile {
  info: CompiledInfo;
  compileMs: number;
  fromCache: boolean;
}

export class RelevanceRunners {
  private current?: { execution: Execution; runner: RelevanceRunner };
  private fitting?: number;
  /** Why block-wise execution is impossible for this model, once a compile has said so. */
  private blockwiseRefused?: string;

  private constructor(
    private readonly onnxPath: string,
    /** The monolithic graph, compiled (or read from the cache) when a batch first picks it. */
    private compiled: CompiledModel | undefined,
    private readonly compileOptions: CompileOptions,
    private readonly shape: ModelShape,
    private readonly opts: RunnersOptions,
    readonly first: FirstCompile,
  ) {}

  /** The compiled graph's description (inputs, outputs, sizes): the same for either execution. */
  get info(): CompiledInfo {
    return this.first.info;
  }

  /**
   * Decide before compiling: from config.json's sizes, the execution the expected batch (else one token) would
   * run; refused with 'out-of-memory' here when none fits. Block-wise: only the block-wise plan is compiled (no
   * weight widened for the whole model). Otherwise, or without the sizes, the monolithic graph as `create`.
   */
  static async load(model: RunnersModel, compileOptions: CompileOptions, opts: RunnersOptions = {}): Promise<RelevanceRunners> {
    const early = model.config && opts.execution !== 'monolithic' ? modelShape(model, !!compileOptions.weightRelevance) : undefined;
    if (early) {
      const at = opts.expect ?? { batch: 1, seq: 1 };
      const limit = opts.memoryLimitBytes ?? memoryLimitBytes();
      if (chooseExecution(opts.execution ?? 'auto', early, 1, at.seq, limit).execution === 'blockwise') {
        const t0 = performance.now();
        const bw = await compileBlockwise(readModel(model.onnxPath), compileOptions);
        if (bw.ok) return RelevanceRunners.startBlockwise(model, bw, compileOptions, opts, performance.now() - t0);
      }
    }
    return RelevanceRunners.create(model, await compileModelFile(model.onnxPath, compileOptions, opts.cache ?? true), compileOptions, opts);
  }

  private static async startBlockwise(
    model: RunnersModel,
    bw: BlockwiseModel,
    compileOptions: CompileOptions,
    opts: RunnersOptions,
    compileMs: number,
  ): Promise<RelevanceRunners> {
    const shape = modelShape(model, !!compileOptions.weightRelevance, bw.info);
    const r = new RelevanceRunners(model.onnxPath, undefined, compileOptions, shape, opts, { info: bw.info, compileMs, fromCache: false });
    r.fitting = opts.expect ? r.fittingBatch(opts.expect.batch, opts.expect.seq) : 1;
    await r.hold('blockwise', () => r.startBlockwiseRunner(bw));
    return r;
  }

  /** The monolithic session starts at once unless block-wise execution is forced or expected (short prompts need no more). */
  static async create(
    model: RunnersModel,
    compiled: CompiledModel,
    compileOptions: CompileOptions,
    opts: RunnersOptions = {},
  ): Promise<RelevanceRunners> {
    const r = new RelevanceRunners(
      model.onnxPath,
      compiled,
      compileOptions,
      modelShape(model, !!compileOptions.weightRelevance, compiled.info),
      opts,
      {
        info: compiled.info,
        compileMs: compiled.compileMs,
        fromCache: compiled.fromCache,
      },
    );
    const at = opts.expect ? { ...opts.expect, batch: r.fittingBatch(opts.expect.batch, opts.expect.seq) } : { batch: 1, seq: 1 };
    r.fitting = at.batch;
    const first = opts.expect ? r.decide(at.batch, at.seq).execution : opts.execution === 'blockwise' ? 'blockwise' : 'monolithic';
    // Block-wise turned out impossible: forced, refused here naming why; auto, the monolithic graph if it fits.
    if (!(await r.runner(first))) await r.runner(r.decide(at.batch, at.seq).execution);
    return r;
  }

  decide(batch: number, seq: number): ExecutionDecision {
    return chooseExecution(
      this.opts.execution ?? 'auto',
      this.shape,
      batch,
      seq,
      this.opts.memoryLimitBytes ?? memoryLimitBytes(),
      this.blockwiseRefused ?? true,
    );
  }

  /** With `expect`: the most rows of that length a batch may have and still fit (at least 1). */
  get batch(): number | undefined {
    return this.fitting;
  }

  /** The largest batch of at most `batch` rows of `seq` tokens that an execution fits; 1 when none (its run is refused). */
  fittingBatch(batch: number, seq: number): number {
    for (let b = batch; b > 1; b--) {
      try {
        this.decide(b, seq);
        return b;
      } catch (err) {
        if (!LrpLensError.is(err, 'out-of-memory')) throw err;
      }
    }
    return 1;
  }

  get device(): Device {
    return this.current?.runner.device ?? this.opts.device ?? 'cpu';
  }

  get warnings(): string[] {
    return this.current?.runner.warnings ?? [];
  }

  /** The runner for a batch of `batch` rows of `seq` tokens, and why that execution (refused when none fits). */
  async forBatch(batch: number, seq: number): Promise<{ runner: RelevanceRunner; decision: ExecutionDecision }> {
    const decision = this.decide(batch, seq);
    const runner = await this.runner(decision.execution);
    // The model could not be split after all: decide again without block-wise (a refusal naming why, if needed).
    if (!runner) return this.forBatch(batch, seq);
    return { runner, decision };
  }

  /** The runner of one execution; undefined when block-wise execution turns out impossible for this model. */
  async runner(execution: Execution): Promise<RelevanceRunner | undefined> {
    if (this.current?.execution === execution) return this.current.runner;
    const device = { device: this.opts.device, strictDevice: this.opts.strictDevice };
    if (execution === 'monolithic')
      return this.hold(execution, async () => {
        this.compiled ??= await compileModelFile(this.onnxPath, this.compileOptions, this.opts.cache ?? true);
        return monolithic(await Session.create(this.compiled.path, device));
      });
    // The monolithic session goes first: its weights and the block-wise compile need not be held together.
    await this.release();
    const bw = await compileBlockwise(readModel(this.onnxPath), this.compileOptions);
    if (!bw.ok) {
      this.blockwiseRefused = bw.reason;
      return undefined;
    }
    return this.hold(execution, () => this.startBlockwiseRunner(bw));
  }

  /** The weights are streamed exactly when the estimate counted them streamed (one decision, from the same sizes). */
  private startBlockwiseRunner(bw: BlockwiseModel): Promise<BlockwiseRunner> {
    const limit = this.opts.memoryLimitBytes ?? memoryLimitBytes();
    return BlockwiseRunner.create(bw, {
      device: this.opts.device,
      strictDevice: this.opts.strictDevice,
      memoryLimitBytes: limit,
      streamWeights: weightStreaming(this.shape, limit).stream,
    });
  }

  /** Only one execution holds the weights at a time: the other is released first. */
  private async hold(execution: Execution, start: () => Promise<RelevanceRunner>): Promise<RelevanceRunner> {
    await this.release();
    const runner = await start();
    this.current = { execution, runner };
    return runner;
  }

  async release(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    await c?.runner.release();
  }
}

/** The monolithic graph's session as a runner: a sink gets its outputs after the run (they all come at once). */
function monolithic(session: Session): RelevanceRunner {
  return {
    device: session.device,
    warnings: session.warnings,
    release: () => session.release(),
    async run(feeds, sink) {
      const out = await session.run(feeds);
      for (const name of Object.keys(out)) {
        if (!sink?.takes(name)) continue;
        sink.take(name, out[name]);
        delete out[name];
      }
      return out;
    },
  };
}

/**
 * Sizes for the memory estimate: the compiled model's (when compiled), config.json's, the weight files'.
 * Before compiling, config.json must give them (else undefined).
 */
function modelShape(model: RunnersModel, statistics: boolean, info: CompiledInfo): ModelShape;
function modelShape(model: RunnersModel, statistics: boolean): ModelShape | undefined;
function modelShape(model: RunnersModel, statistics: boolean, info?: CompiledInfo): ModelShape | undefined {
  const dims = model.config ? dimsFromConfig(model.config) : undefined;
  if (!info && !dims) return undefined;
  const neurons = info?.neurons ?? dims?.ffn ?? 4 * 1024;
  const files = modelFiles(model.onnxPath);
  const elementBytes = info?.dtype === 'float64' ? 8 : 4;
  // fp16 and quantised files are widened to float32: count the parameters where the config gives them.
  const parameters = dims ? parameterCounts(dims).total : 0;
  return {
    layers: info?.layers ?? dims!.layers,
    heads: info?.heads ?? dims?.heads ?? 1,
    hidden: dims?.hidden ?? Math.round(neurons / 4),
    neurons,
    vocab: info?.vocabSize ?? dims!.vocab,
    weightBytes: Math.max(files.bytes, parameters * elementBytes),
    elementBytes,
    kvHeads: dims?.kvHeads,
    gated: dims?.gated,
    tied: dims?.tied,
    externalData: files.externalData,
    statistics,
  };
}
