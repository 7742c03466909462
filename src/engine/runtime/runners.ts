/**
 * The relevance pass of one compiled model in either execution: the monolithic graph's session, or the
 * block-wise runner (compiled on first use). Both take the same feeds and return the same outputs; which one
 * runs a batch is `chooseExecution`'s call. Only one holds the weights at a time: switching releases the other.
 */
import { readModel } from '../onnx/io';
import { LrpLensError } from '../errors';
import type { CompileOptions } from '../relevance/compiler';
import type { CompiledModel } from './compile';
import { BlockwiseRunner, compileBlockwise } from './blockwise';
import type { OutputSink } from './blockwise';
import { chooseExecution, memoryLimitBytes } from './execution';
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
}

export class RelevanceRunners {
  private current?: { execution: Execution; runner: RelevanceRunner };
  private fitting?: number;
  /** Why block-wise execution is impossible for this model, once a compile has said so. */
  private blockwiseRefused?: string;

  private constructor(
    private readonly onnxPath: string,
    private readonly compiled: CompiledModel,
    private readonly compileOptions: CompileOptions,
    private readonly shape: ModelShape,
    private readonly opts: RunnersOptions,
  ) {}

  /** The monolithic session starts at once unless block-wise execution is forced or expected (short prompts need no more). */
  static async create(
    model: Pick<ModelFolder, 'onnxPath'> & Partial<Pick<ModelFolder, 'config'>>,
    compiled: CompiledModel,
    compileOptions: CompileOptions,
    opts: RunnersOptions = {},
  ): Promise<RelevanceRunners> {
    const r = new RelevanceRunners(
      model.onnxPath,
      compiled,
      compileOptions,
      modelShape(model, compiled, !!compileOptions.weightRelevance),
      opts,
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
    if (execution === 'monolithic') return this.hold(execution, async () => monolithic(await Session.create(this.compiled.path, device)));
    // The monolithic session goes first: its weights and the block-wise compile need not be held together.
    await this.release();
    const bw = await compileBlockwise(readModel(this.onnxPath), this.compileOptions);
    if (!bw.ok) {
      this.blockwiseRefused = bw.reason;
      return undefined;
    }
    return this.hold(execution, () => BlockwiseRunner.create(bw, { ...device, memoryLimitBytes: this.opts.memoryLimitBytes }));
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

/** Sizes for the memory estimate: the compiled model's, config.json's, the weight files'. */
function modelShape(
  model: Pick<ModelFolder, 'onnxPath'> & Partial<Pick<ModelFolder, 'config'>>,
  compiled: CompiledModel,
  statistics: boolean,
): ModelShape {
  const { info } = compiled;
  const c = model.config ?? {};
  const dims = dimsFromConfig(c);
  const neurons = info.neurons ?? dims?.ffn ?? 4 * 1024;
  const files = modelFiles(model.onnxPath);
  const elementBytes = info.dtype === 'float64' ? 8 : 4;
  // fp16 and quantised files are widened to float32: count the parameters where the config gives them.
  const parameters = dims ? parameterCounts(dims).total : 0;
  return {
    layers: info.layers,
    heads: info.heads ?? dims?.heads ?? 1,
    hidden: dims?.hidden ?? Math.round(neurons / 4),
    neurons,
    vocab: info.vocabSize,
    weightBytes: Math.max(files.bytes, parameters * elementBytes),
    elementBytes,
    kvHeads: dims?.kvHeads,
    gated: dims?.gated,
    externalData: files.externalData,
    statistics,
  };
}
