/**
 * Messages between the extension host and the engine process (one JSON object per IPC message), in the
 * JSON-RPC shape: requests carry an id, responses carry the id and a result or an error, notifications carry
 * none. Imported by both ends.
 */
import type { AttributeRequest } from '../engine/attribution/attribute';
import type { AttributionResult } from '../engine/attribution/result';
import type { LrpErrorReason } from '../engine/errors';
import type { RelevanceMode } from '../engine/relevance/mode';
import type { Device } from '../engine/runtime/device';
import type { ExecutionChoice } from '../engine/runtime/execution';
import type { ModelReport } from '../engine/runtime/inspect';
import type { CircuitRecord, DiscoverOptions } from '../engine/circuits/discover';
import type { TaskKind } from '../engine/tasks/generators';
import type { PruneReport, PruneRunOptions } from '../engine/pruning/pruneRun';
import type { CorrectReport, CorrectRunOptions } from '../engine/correction/correctionRun';
import type { PrunedModel } from '../engine/pruning/applyMask';
import type { Dtype } from '../engine/hub/variants';
import type { HubVariantList } from '../engine/hub/hubModel';

/** lrpLens.memoryLimit and Run Anyway, for one request (the memory guard and the execution chooser read them). */
export interface RequestMemory {
  /** lrpLens.memoryLimit ('8GB'); absent: the memory available. */
  memoryLimit?: string;
  /** Run past the memory estimate (the notification's Run Anyway). */
  force?: boolean;
}

export interface EngineSettings extends RequestMemory {
  /** Model folder or hub id. */
  model: string;
  rule: RelevanceMode;
  device: Device;
  offline?: boolean;
  /** Hub models: the precision variant (lrpLens.dtype; absent: the smallest the engine attributes exactly). */
  dtype?: Dtype;
  /** lrpLens.execution. */
  execution?: ExecutionChoice;
}

export interface AttributeParams extends EngineSettings {
  request: AttributeRequest;
  /** Refuse inputs longer than this many tokens (lrpLens.maxTokens). */
  maxTokens?: number;
  /** An applied mask (MASK.safetensors): attribute on the pruned model, exported once into the cache. */
  mask?: string;
}

/** `prune`: the CLI's options; a mask is always written (`out`), so the result is the report. */
export interface PruneParams extends PruneRunOptions, RequestMemory {
  out: string;
  sparsity: number[];
}

/** `applyMask`: check the mask against the model and export the pruned model into the cache. */
export interface ApplyMaskParams {
  model: string;
  mask: string;
  offline?: boolean;
}

export interface Methods {
  attribute: { params: AttributeParams; result: AttributionResult };
  inspect: { params: { model: string; offline?: boolean; dtype?: Dtype }; result: ModelReport };
  ping: { params: Record<string, never>; result: { pid: number } };
  /** Circuit discovery (the CLI's `circuit` options); writes into `out` and returns circuit.json's record. */
  circuit: { params: CircuitParams; result: CircuitRecord };
  /** Generates a task file (`lrp-lens task make`), checked against the model's tokenizer. */
  makeTask: { params: MakeTaskParams; result: { path: string; samples: number } };
  prune: { params: PruneParams; result: PruneReport };
  correct: { params: CorrectParams; result: CorrectReport };
  applyMask: { params: ApplyMaskParams; result: PrunedModel };
  /** The variants of a hub model with sizes and support; nothing is downloaded. */
  modelVariants: { params: { model: string; offline?: boolean }; result: HubVariantList };
  /** Downloads a hub model (one variant) into the hub cache, with progress; a cancel keeps the partial file. */
  fetchModel: { params: { model: string; dtype?: Dtype; offline?: boolean }; result: { ref: string; onnx: string; dtype: Dtype | null } };
}

export interface MakeTaskParams {
  kind: TaskKind;
  /** Default: DEFAULT_TASK_SAMPLES (tasks/taskDefaults.ts), capped at the generator's space. */
  n?: number;
  seed: number;
  /** Model whose tokenizer checks that targets and foils are single tokens. */
  model?: string;
  offline?: boolean;
  out: string;
}

/** `offline` travels with each request, so it holds for that request only. */
export type CircuitParams = DiscoverOptions & RequestMemory;

export type CorrectParams = CorrectRunOptions & RequestMemory;

export type Method = keyof Methods;

export interface RequestMessage<M extends Method = Method> {
  id: number;
  method: M;
  params: Methods[M]['params'];
}

export interface ErrorPayload {
  reason: LrpErrorReason | 'internal' | 'engine-exited';
  message: string;
}

export type ResponseMessage<M extends Method = Method> = { id: number; result: Methods[M]['result'] } | { id: number; error: ErrorPayload };

export interface ProgressNotification {
  method: 'progress';
  params: { id: number; message: string; fraction?: number; stage?: string; done?: number; total?: number };
}

export interface LogNotification {
  method: 'log';
  params: { message: string };
}

export type NotificationMessage = ProgressNotification | LogNotification;

export type WorkerToHost = ResponseMessage | NotificationMessage;

export function isResponse(m: WorkerToHost): m is ResponseMessage {
  return 'id' in m;
}
