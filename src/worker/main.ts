/**
 * The engine process: started by EngineClient with child_process.fork (IPC channel, JSON serialization).
 * Handles one request at a time in arrival order and keeps the last AttributionEngine warm.
 */
import { AttributionEngine } from '../engine/attribution/attribute';
import type { AttributionResult } from '../engine/attribution/result';
import { LrpLensError } from '../engine/errors';
import { inspectModel } from '../engine/runtime/inspect';
import { discoverCircuit } from '../engine/circuits/discover';
import type { CircuitRecord, DiscoverStage } from '../engine/circuits/discover';
import type { CircuitParams, CorrectParams, MakeTaskParams } from './protocol';
import { generateTaskFile } from '../engine/tasks/generators';

import { isPruneReport, runPrune } from '../engine/pruning/pruneRun';
import type { PruneReport } from '../engine/pruning/pruneRun';
import { runCorrection } from '../engine/correction/correctionRun';
import type { CorrectReport } from '../engine/correction/correctionRun';
import { prunedModelFor } from '../engine/pruning/applyMask';
import type {
  ApplyMaskParams,
  AttributeParams,
  EngineSettings,
  ErrorPayload,
  Method,
  Methods,
  PruneParams,
  RequestMemory,
  RequestMessage,
  WorkerToHost,
} from './protocol';
import { hubVariants } from '../engine/hub/hubModel';
import { setHubDefaults } from '../engine/hub/hubDefaults';
import { formatBytes } from '../engine/formatBytes';
import type { Dtype } from '../engine/hub/variants';
import type { ProgressListener } from '../engine/progress';
import { resolveModel } from '../engine/runtime/model';
import { parseMemorySize, setMemoryGuard } from '../engine/memory/memoryGuard';

type Progress = (message: string, fraction?: number, step?: { stage: string; done: number; total: number }) => void;

function send(message: WorkerToHost): void {
  process.send?.(message);
}

function log(message: string): void {
  send({ method: 'log', params: { message } });
}

function errorPayload(err: unknown): ErrorPayload {
  if (LrpLensError.is(err)) return err.toJSON();
  return { reason: 'internal', message: err instanceof Error ? err.message : String(err) };
}

/** One engine per (model, rule, device); a change of settings releases the old one. */
class WarmEngine {
  private engine?: AttributionEngine;
  private key?: string;

  async get(settings: EngineSettings, progress: Progress): Promise<AttributionEngine> {
    const key = JSON.stringify([settings.model, settings.rule, settings.device, settings.dtype, settings.execution]);
    if (this.engine && this.key === key) {
      progress('compiling relevance graph (cached: warm engine)', 0.4);
      return this.engine;
    }
    await this.release();
    progress(`loading model ${settings.model}`, 0);
    const engine = await AttributionEngine.load(settings.model, {
      rule: settings.rule,
      device: settings.device,
      offline: settings.offline,
      execution: settings.execution,
    });
    const t = engine.timing;
    progress(t.compiledFromCache ? 'compiling relevance graph (cached)' : `compiling relevance graph (${t.compileMs.toFixed(0)} ms)`, 0.4);
    log(
      `loaded ${engine.model.ref} on ${engine.device} (${engine.rule}) in ${t.loadMs.toFixed(0)} ms; relevance graph ${t.compiledFromCache ? 'from cache' : `compiled in ${t.compileMs.toFixed(0)} ms`}`,
    );
    this.engine = engine;
    this.key = key;
    return engine;
  }

  async release(): Promise<void> {
    const engine = this.engine;
    this.engine = undefined;
    this.key = undefined;
    await engine?.release();
  }
}

const warm = new WarmEngine();

/** The guard and the execution chooser read the limit and force from here, for this request only. */
async function withRequestMemory<T>(params: RequestMemory, run: () => Promise<T>): Promise<T> {
  setMemoryGuard({ limit: params.memoryLimit ? parseMemorySize(params.memoryLimit) : undefined, force: params.force });
  try {
    return await run();
  } finally {
    setMemoryGuard({});
  }
}

function attribute(params: AttributeParams, progress: Progress): Promise<AttributionResult> {
  return withRequestMemory(params, async () => {
    const engine = await warm.get(params.mask ? await prunedSettings(params, progress) : params, progress);
    progress('running', 0.5);
    const result = await engine.attribute(params.request, { maxTokens: params.maxTokens });
    progress('done', 1);
    log(`attributed ${result.tokens.length} tokens with ${engine.model.ref} on ${engine.device}: run ${result.timing.runMs.toFixed(0)} ms`);
    if (result.execution) log(`execution: ${result.execution.kind} (${result.execution.reason})`);
    return result;
  });
}

const STAGE_WORDS: Record<DiscoverStage, string> = {
  load: 'loading model',
  collect: 'scoring components on the task',
  sweep: 'sweeping sparsity',
  evaluate: 'evaluating',
  generate: 'generating',
  write: 'writing circuit files',
};

/** Circuit discovery; the engine's cancel is the process kill, so no signal is needed here. */
async function circuit(params: CircuitParams, progress: Progress): Promise<CircuitRecord> {
  const record = await withRequestMemory(params, () =>
    discoverCircuit(params, {
      onProgress: (stage, done, total, detail) => {
        const what = `${STAGE_WORDS[stage]}${detail && stage === 'sweep' ? ` (${detail})` : ''}`;
        progress(total > 1 ? `${what} ${done}/${total}` : what, total > 0 ? done / total : undefined, { stage, done, total });
      },
    }),
  );
  log(
    `circuit ${record.task.name} ${record.method}/${record.granularity}: ${(record.circuit.sparsity * 100).toFixed(1)}% pruned, ${(record.circuit.retained * 100).toFixed(1)}% of the dense ${record.task.metric} kept`,
  );
  return record;
}

function makeTask(params: MakeTaskParams): Promise<{ path: string; samples: number }> {
  return generateTaskFile(params);
}

/** The settings with the model replaced by the pruned model of the applied mask (exported once, cached). */
async function prunedSettings(params: AttributeParams, progress: Progress): Promise<EngineSettings> {
  progress('preparing the pruned model', 0);
  const pruned = await prunedModelFor(params.model, params.mask!, { offline: params.offline });
  if (!pruned.cached) log(`exported the pruned model of ${pruned.mask} to ${pruned.dir}`);
  return { ...params, model: pruned.dir };
}

const STAGE_TEXT: Record<string, string> = {
  load: 'loading the model',
  collect: 'collecting statistics on the reference',
  evaluate: 'evaluating perplexity',
  generate: 'generating',
  score: 'scoring components',
};

/** Engine progress (stage, done, total) → a progress notification with a readable message. */
function stageProgress(progress: Progress) {
  return (stage: string, done: number, total: number) => {
    const count = total > 1 ? ` ${done}/${total}` : '';
    progress(`${STAGE_TEXT[stage] ?? stage}${count}`, total > 0 ? done / total : undefined, { stage, done, total });
  };
}

async function prune(params: PruneParams, progress: Progress): Promise<PruneReport> {
  const result = await withRequestMemory(params, () => runPrune(params, { onProgress: stageProgress(progress) }));
  if (!isPruneReport(result)) throw new LrpLensError('bad-argument', 'prune needs out and sparsity; only statistics were collected.');
  log(
    `pruned ${result.model.ref} with ${result.method}: ${result.points.map((p) => `${p.sparsity} → ${p.perplexity?.toFixed(3) ?? '-'}`).join(', ')}`,
  );
  return result;
}

async function correct(params: CorrectParams, progress: Progress): Promise<CorrectReport> {
  const report = await withRequestMemory(params, () => runCorrection(params, { onProgress: stageProgress(progress) }));
  log(`corrected ${report.model.ref} with ${report.method}: chose ${report.chosen.count} ${report.granularity} → ${report.chosen.mask}`);
  return report;
}

async function applyMask(params: ApplyMaskParams, progress: Progress) {
  progress('exporting the pruned model', 0);
  const pruned = await prunedModelFor(params.model, params.mask, { offline: params.offline });
  progress('done', 1);
  return pruned;
}

/** Download progress → a progress notification ("downloading org/name/onnx/model.onnx: 12 MB of 540 MB, 8 MB/s"). */
function downloadProgress(progress: Progress): ProgressListener {
  let start = 0;
  let from = 0;
  let file = '';
  let last = 0;
  return (e) => {
    const now = Date.now();
    if (e.detail !== file) [file, start, from] = [e.detail ?? '', now, e.done];
    if (now - last < 200 && e.done < e.total) return;
    last = now;
    const rate = (e.done - from) / Math.max(0.001, (now - start) / 1000);
    const eta = rate > 0 && e.done < e.total ? `, ${Math.ceil((e.total - e.done) / rate)} s left` : '';
    progress(
      `downloading ${file}: ${formatBytes(e.done)} of ${formatBytes(e.total)} (${formatBytes(rate)}/s${eta})`,
      e.total > 0 ? e.done / e.total : undefined,
      {
        stage: e.stage,
        done: e.done,
        total: e.total,
      },
    );
  };
}

type Handler<M extends Method> = (params: Methods[M]['params'], progress: Progress) => Promise<Methods[M]['result']>;

const handlers: { [M in Method]: Handler<M> } = {
  attribute,
  inspect: (params) => inspectModel(params.model, { offline: params.offline }),
  ping: async () => ({ pid: process.pid }),
  circuit,
  makeTask,
  prune,
  correct,
  applyMask,
  modelVariants: (params) => hubVariants(params.model, { offline: params.offline }),
  fetchModel: async (params) => {
    const m = await resolveModel(params.model, { offline: params.offline, dtype: params.dtype });
    return { ref: m.ref, onnx: m.onnxPath, dtype: m.hub?.dtype ?? null };
  },
};

async function handle(req: RequestMessage): Promise<void> {
  const progress: Progress = (message, fraction, step) => send({ method: 'progress', params: { id: req.id, message, fraction, ...step } });
  setHubDefaults({ dtype: (req.params as { dtype?: Dtype } | undefined)?.dtype, onProgress: downloadProgress(progress) });
  try {
    if (!Object.hasOwn(handlers, req.method)) throw new LrpLensError('bad-argument', `Unknown method '${String(req.method)}'.`);
    const handler = handlers[req.method] as Handler<Method>;
    send({ id: req.id, result: await handler(req.params ?? {}, progress) });
  } catch (err) {
    send({ id: req.id, error: errorPayload(err) });
  }
}

let queue: Promise<void> = Promise.resolve();

process.on('message', (message: RequestMessage) => {
  queue = queue.then(() => handle(message));
});

// The host closing the IPC channel means nobody is listening any more.
process.on('disconnect', () => {
  void warm.release().finally(() => process.exit(0));
});
