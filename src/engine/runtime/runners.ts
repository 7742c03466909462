/**
 * The relevance pass of one compiled model in either execution: the monolithic graph's session, or the
 * block-wise runner (compiled on first use). Both take the same feeds and return the same outputs; which one
 * runs a batch is `chooseExecution`'s call. Only one holds the weights at a time: switching releases the other.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readModel } from '../onnx/io';
import type { CompileOptions } from '../relevance/compiler';
import type { CompiledModel } from './compile';
import { BlockwiseRunner, compileBlockwise } from './blockwise';
import { chooseExecution, memoryLimitBytes } from './execution';
import type { Execution, ExecutionChoice, ExecutionDecision, ModelShape } from './execution';
import type { ModelFolder } from './model';
import { Session } from './session';
import type { Device, Feeds, HostTensor } from './session';

export interface RelevanceRunner {
  run(feeds: Feeds): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
  readonly device: Device;
  readonly warnings: string[];
}

export interface RunnersOptions {
  device?: Device;
  strictDevice?: boolean;
  execution?: ExecutionChoice;
  memoryLimitBytes?: number;
}

export class RelevanceRunners {
  private current?: { execution: Execution; runner: RelevanceRunner };
  /** Why block-wise execution is impossible for this model, once a compile has said so. */
  private blockwiseRefused?: string;

  private constructor(
    private readonly onnxPath: string,
    private readonly compiled: CompiledModel,
    private readonly compileOptions: CompileOptions,
    private readonly shape: ModelShape,
    private readonly opts: RunnersOptions,
  ) {}

  /** The monolithic session starts at once unless block-wise execution is forced (short prompts need no more). */
  static async create(
    model: Pick<ModelFolder, 'onnxPath'> & Partial<Pick<ModelFolder, 'config'>>,
    compiled: CompiledModel,
    compileOptions: CompileOptions,
    opts: RunnersOptions = {},
  ): Promise<RelevanceRunners> {
    const r = new RelevanceRunners(model.onnxPath, compiled, compileOptions, modelShape(model, compiled), opts);
    // A forced block-wise execution on a model that cannot be split is refused here, naming why.
    if (!(await r.runner(opts.execution === 'blockwise' ? 'blockwise' : 'monolithic'))) r.decide(1, 1);
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
    if (execution === 'monolithic') return this.hold(execution, () => Session.create(this.compiled.path, device));
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

/** Sizes for the memory estimate: the compiled model's, the hidden size from config.json, the weight files'. */
function modelShape(model: Pick<ModelFolder, 'onnxPath'> & Partial<Pick<ModelFolder, 'config'>>, compiled: CompiledModel): ModelShape {
  const { info } = compiled;
  const c = (model.config ?? {}) as Record<string, unknown>;
  const neurons = info.neurons ?? 4 * 1024;
  const hidden = [c.hidden_size, c.n_embd, c.d_model].find((v): v is number => typeof v === 'number') ?? Math.round(neurons / 4);
  return {
    layers: info.layers,
    heads: info.heads ?? 1,
    hidden,
    neurons,
    vocab: info.vocabSize,
    weightBytes: weightFileBytes(model.onnxPath),
    elementBytes: info.dtype === 'float64' ? 8 : 4,
  };
}

/** model.onnx and its external data files (siblings whose name starts with the model's). */
function weightFileBytes(onnxPath: string): number {
  const dir = dirname(onnxPath);
  const name = basename(onnxPath);
  return readdirSync(dir)
    .filter((f) => f.startsWith(name))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}
