/**
 * The only module that imports onnxruntime-node. Sessions, feeds and fetches go through here so the
 * execution provider can change without touching callers.
 */
import type * as Ort from 'onnxruntime-node';
import { LrpLensError } from '../errors';
import { CUDA_INSTALL_HINT, chooseDevice } from './device';
import type { Device } from './device';
import { runtimeMissingMessage } from './nativeRuntime';

let loaded: typeof Ort | undefined;

/**
 * onnxruntime-node, loaded on first use: the extension host imports this module without loading the native
 * library (activation stays fast), and a package without this machine's binary becomes a clear error.
 */
export function onnxRuntime(): typeof Ort {
  if (!loaded) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require('onnxruntime-node') as typeof Ort;
    } catch (err) {
      throw new LrpLensError('runtime-failure', runtimeMissingMessage(firstLine(err)), err);
    }
  }
  return loaded;
}

export type { Device } from './device';
export type HostTensor = Ort.Tensor;
export type Feeds = Record<string, Ort.Tensor>;

export interface SessionOptions {
  device?: Device;
  /** Fail instead of falling back to the CPU when the requested device is unavailable. */
  strictDevice?: boolean;
  /** Threads for one operator; 0 lets onnxruntime choose. */
  intraOpThreads?: number;
  /** Graph optimisations; 'disabled' for one-off probe sessions, where optimising costs more than running. */
  optimization?: 'disabled' | 'basic' | 'all';
  /** onnxruntime's CPU arena; off for probe sessions, whose thousands of small fetched outputs fragment it. */
  arena?: boolean;
}

function sessionOptions(opts: SessionOptions, device: Device): Ort.InferenceSession.SessionOptions {
  return {
    executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: opts.optimization ?? 'all',
    intraOpNumThreads: opts.intraOpThreads ?? 0,
    logSeverityLevel: 3,
    // A relevance graph keeps forward activations alive for the backward pass; onnxruntime's memory pattern
    // pre-plans one block for all of them and raised peak RSS by a third (124M GPT-2, 512 tokens: 4.1 → 3.0 GB)
    // without changing the time. Plain forward sessions get the same options, so comparisons stay fair.
    enableMemPattern: false,
    enableCpuMemArena: opts.arena ?? true,
  };
}

export class Session {
  private constructor(
    private readonly inner: Ort.InferenceSession,
    /** The provider the session runs on (after any fallback). */
    readonly device: Device,
    /** Why the requested device was not used, if it was not. */
    readonly warnings: string[],
  ) {}

  static async create(model: string | Uint8Array, opts: SessionOptions = {}): Promise<Session> {
    const choice = chooseDevice(opts.device ?? 'cpu', opts.strictDevice ?? false);
    const warnings = choice.warning ? [choice.warning] : [];
    if (choice.device === 'cuda') {
      try {
        return new Session(await load(model, sessionOptions(opts, 'cuda')), 'cuda', warnings);
      } catch (err) {
        const why = `The CUDA execution provider failed to start (${firstLine(err)}).`;
        if (opts.strictDevice) throw new LrpLensError('runtime-failure', `${why} ${CUDA_INSTALL_HINT}`, err);
        warnings.push(`${why} Running on the CPU.`);
      }
    }
    const options = sessionOptions(opts, 'cpu');
    try {
      return new Session(await load(model, options), 'cpu', warnings);
    } catch (err) {
      if (LrpLensError.is(err)) throw err;
      // onnxruntime's extended fusions do not check types: x·σ(x) in double becomes QuickGelu, which has only a
      // float kernel, and the session fails to load. Basic optimisations never fuse into contrib ops.
      if (/Failed to find kernel/.test((err as Error).message)) {
        try {
          return new Session(await load(model, { ...options, graphOptimizationLevel: 'basic' }), 'cpu', warnings);
        } catch {
          // report the first failure
        }
      }
      throw new LrpLensError('runtime-failure', `onnxruntime could not load the model: ${(err as Error).message}`, err);
    }
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  async run(feeds: Feeds, fetches?: string[]): Promise<Record<string, Ort.Tensor>> {
    try {
      return await this.inner.run(feeds, fetches ?? [...this.inner.outputNames]);
    } catch (err) {
      throw new LrpLensError('runtime-failure', `onnxruntime failed while running the model: ${(err as Error).message}`, err);
    }
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

function load(model: string | Uint8Array, options: Ort.InferenceSession.SessionOptions): Promise<Ort.InferenceSession> {
  const ort = onnxRuntime();
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

function firstLine(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0];
}

/** Element types a host tensor may hold, with their typed arrays. */
export interface HostData {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  bool: Uint8Array;
}

/** A host tensor over `data` as it is (no copy). */
export function hostTensor<T extends keyof HostData>(dtype: T, data: HostData[T], dims: readonly number[]): HostTensor {
  return new (onnxRuntime().Tensor)(dtype, data, dims);
}

export function int64Tensor(values: number[], dims: number[]): Ort.Tensor {
  return new (onnxRuntime().Tensor)(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
}

export function floatTensor(dtype: 'float32' | 'float64', values: ArrayLike<number>, dims: number[]): Ort.Tensor {
  return dtype === 'float32'
    ? hostTensor('float32', Float32Array.from(values), dims)
    : hostTensor('float64', Float64Array.from(values), dims);
}

/** Any tensor's values as plain numbers. */
export function tensorNumbers(t: Ort.Tensor): number[] {
  const d = t.data as ArrayLike<number | bigint>;
  return Array.from(d, (x) => Number(x));
}
