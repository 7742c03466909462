/**
 * The extension host's handle on the engine process (plain Node, no vscode import). Starts the process on
 * the first request; a cancel or a crash kills it and the next request starts a fresh one.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { ErrorPayload, Method, Methods, NotificationMessage, ProgressNotification, RequestMessage, WorkerToHost } from './protocol';
import { isResponse } from './protocol';

export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly reason: ErrorPayload['reason'],
    message: string,
  ) {
    super(message);
  }
}

export interface EngineClientOptions {
  /** dist/worker.js */
  workerPath: string;
  /** The engine's environment, read at each start (a function: e.g. with a token stored since). */
  env?: NodeJS.ProcessEnv | (() => NodeJS.ProcessEnv);
  /** Receives the engine's log notifications and its stderr. */
  log?: (message: string) => void;
}

export interface RequestOptions {
  onProgress?: (progress: ProgressNotification['params']) => void;
  /** The only way a request times out or is cancelled: aborting kills the engine process. */
  signal?: AbortSignal;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the process went away without the client asking. */
  unexpected: boolean;
  /** Requests that were waiting on it (they are rejected with 'engine-exited' right after the listeners run). */
  pending: number;
}

interface Pending {
  resolve: (result: unknown) => void;
  reject: (err: EngineError) => void;
  onProgress?: RequestOptions['onProgress'];
  unlisten: () => void;
}

export const RESTART_COMMAND = 'LRP Lens: Restart Engine';

export class EngineClient {
  private child?: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly exitListeners = new Set<(info: ExitInfo) => void>();
  /** Children we killed on purpose (cancel, restart, dispose), so their exit is not reported as a crash. */
  private readonly intentionalKills = new WeakSet<ChildProcess>();
  private disposed = false;
  private shutdownDone?: Promise<void>;

  constructor(private readonly options: EngineClientOptions) {}

  /** Requests sent and not yet answered. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** The engine process id, when one is running. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Called whenever an engine process exits; returns an unsubscribe function. */
  onDidExit(listener: (info: ExitInfo) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  request<M extends Method>(method: M, params: Methods[M]['params'], opts: RequestOptions = {}): Promise<Methods[M]['result']> {
    if (this.disposed) return Promise.reject(new EngineError('internal', 'The engine client has been disposed.'));
    if (opts.signal?.aborted) return Promise.reject(cancelledError());
    const child = this.ensureStarted();
    const id = this.nextId++;
    return new Promise<Methods[M]['result']>((resolve, reject) => {
      const onAbort = () => this.cancel(id);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const unlisten = () => opts.signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, { resolve: resolve as (r: unknown) => void, reject, onProgress: opts.onProgress, unlisten });
      const message: RequestMessage<M> = { id, method, params };
      child.send(message, (err) => {
        if (err) this.settle(id, { error: { reason: 'engine-exited', message: `Could not reach the engine: ${err.message}` } });
      });
    });
  }

  /** Kills the engine (pending requests reject); the next request starts a fresh one. */
  restart(): void {
    this.stop(new EngineError('cancelled', 'The engine was restarted.'));
  }

  /**
   * Stops the engine for good (pending requests reject, new ones are refused) and resolves once its process
   * has exited. Calling it again returns the same promise.
   */
  shutdown(): Promise<void> {
    if (this.shutdownDone) return this.shutdownDone;
    this.disposed = true;
    const child = this.child;
    const gone =
      child && child.exitCode === null && child.signalCode === null
        ? new Promise<void>((done) => child.once('exit', () => done()))
        : undefined;
    this.stop(new EngineError('cancelled', 'The engine was shut down.'));
    this.exitListeners.clear();
    this.shutdownDone = gone ?? Promise.resolve();
    return this.shutdownDone;
  }

  /** shutdown() without waiting for the process to exit. */
  dispose(): void {
    void this.shutdown();
  }

  private ensureStarted(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(this.options.workerPath, [], {
      execArgv: [],
      serialization: 'json',
      env: typeof this.options.env === 'function' ? this.options.env() : (this.options.env ?? process.env),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    child.on('message', (m: WorkerToHost) => this.onMessage(m));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    child.on('error', (err) => this.options.log?.(`engine process error: ${err.message}`));
    for (const stream of [child.stdout, child.stderr])
      stream?.on('data', (chunk: Buffer) => this.options.log?.(chunk.toString().trimEnd()));
    this.options.log?.(`engine process ${child.pid} started`);
    this.child = child;
    return child;
  }

  private onMessage(m: WorkerToHost): void {
    if (isResponse(m)) this.settle(m.id, m);
    else this.onNotification(m);
  }

  private onNotification(n: NotificationMessage): void {
    if (n.method === 'log') this.options.log?.(n.params.message);
    else if (n.method === 'progress') this.pending.get(n.params.id)?.onProgress?.(n.params);
  }

  private settle(id: number, outcome: { result: unknown } | { error: ErrorPayload }): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.unlisten();
    if ('error' in outcome) p.reject(new EngineError(outcome.error.reason, outcome.error.message));
    else p.resolve(outcome.result);
  }

  private rejectAll(error: EngineError): void {
    for (const id of [...this.pending.keys()]) this.settle(id, { error: { reason: error.reason, message: error.message } });
  }

  /** onnxruntime cannot be interrupted mid-run, so cancelling means killing the process. */
  private cancel(id: number): void {
    if (!this.pending.has(id)) return;
    this.settle(id, { error: cancelledError() });
    this.stop(new EngineError('cancelled', 'Cancelled: the engine was stopped to cancel another request.'));
  }

  private stop(reason: EngineError): void {
    const child = this.child;
    this.child = undefined;
    if (child) {
      this.intentionalKills.add(child);
      child.kill('SIGKILL');
    }
    this.rejectAll(reason);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const unexpected = !this.intentionalKills.has(child);
    if (this.child === child) this.child = undefined;
    if (unexpected)
      this.options.log?.(`engine process ${child.pid} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`);
    for (const listener of this.exitListeners) listener({ code, signal, unexpected, pending: this.pending.size });
    if (unexpected) {
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      this.rejectAll(
        new EngineError('engine-exited', `The LRP Lens engine stopped unexpectedly (${how}). Run "${RESTART_COMMAND}" to restart it.`),
      );
    }
  }
}

function cancelledError(): EngineError {
  return new EngineError('cancelled', 'Cancelled.');
}
