/**
 * Prompt → AttnLRP attribution. Loads a model folder, compiles (or reuses) its relevance graph, and runs
 * batches of (input, target position, target, foil) rows through one onnxruntime session.
 *
 * @example
 *   const engine = await AttributionEngine.load('../shared/models/stories260k');
 *   const r = await engine.attribute({ prompt: 'Once upon a time, there was a little girl named', target: ' Lily' });
 */
import { LrpLensError } from '../errors';
import { compileModelFile } from '../runtime/compile';
import { resolveModel, loadTokenizer, maxPositions } from '../runtime/model';
import type { ModelFolder, TokenizerLike } from '../runtime/model';
import { tensorNumbers } from '../runtime/session';
import type { Device, HostTensor } from '../runtime/session';
import { RelevanceRunners } from '../runtime/runners';
import type { ExecutionChoice, ExecutionDecision } from '../runtime/execution';
import type { Dtype } from '../hub/variants';
import { checkMemory } from '../memory/memoryGuard';
import { causalLmFeeds, padBatch, seedFeeds } from '../runtime/feeds';
import type { InputSpec } from '../onnx/graph';
import { ABSORBED_KINDS, IO } from '../relevance/ioNames';
import type { CompiledInfo } from '../relevance/compiler';
import type { RelevanceMode } from '../relevance/mode';
import type { AttributionResult, Prediction, TargetInfo } from './result';
import { checkTokenId, resolveTargetToken, tokenOffsets } from './tokens';

export interface EngineOptions {
  rule?: RelevanceMode;
  device?: Device;
  /** Fail rather than fall back to the CPU when `device` is unavailable. */
  strictDevice?: boolean;
  offline?: boolean;
  /** Hub models: the precision variant (default: the smallest the engine attributes exactly). */
  dtype?: Dtype;
  /** Reuse / write the compiled graph cache (default true). */
  cache?: boolean;
  /** Monolithic graph, block-wise (recomputing one block at a time), or chosen by a memory estimate (default). */
  execution?: ExecutionChoice;
  /** The memory a run may use (default: runtime/execution.ts memoryLimitBytes). */
  memoryLimitBytes?: number;
}

export interface AttributeRequest {
  prompt?: string;
  /** Token ids instead of a prompt (BOS included if the model expects it). */
  ids?: number[];
  target?: string;
  targetId?: number;
  foil?: string;
  foilId?: number;
  /** Attribute every token of this continuation (a target × source matrix). */
  continuation?: string;
}

export interface AttributeLimits {
  /** Refuse inputs (prompt plus continuation) longer than this many tokens, below the model's context. */
  maxTokens?: number;
}

interface Row {
  ids: number[];
  position: number;
  /** −1: the model's top-1 prediction. */
  targetId: number;
  foilId?: number;
}

/** One row's relevance, and the logits at its target position. */
type RowResult = AttributionResult['relevance'] & { logits: number[] };

export class AttributionEngine {
  private constructor(
    readonly model: ModelFolder,
    readonly tokenizer: TokenizerLike,
    private readonly runners: RelevanceRunners,
    readonly info: CompiledInfo,
    private readonly graphInputs: InputSpec[],
    readonly rule: RelevanceMode,
    readonly timing: { loadMs: number; compileMs: number; compiledFromCache: boolean },
  ) {}

  static async load(ref: string, opts: EngineOptions = {}): Promise<AttributionEngine> {
    const t0 = performance.now();
    const model = await resolveModel(ref, { offline: opts.offline, dtype: opts.dtype });
    // Loading starts the monolithic graph unless block-wise execution is forced.
    checkMemory(model.config, { tokens: 1, batch: 1 }, `Loading ${model.ref}`, {
      onnxPath: model.onnxPath,
      execution: opts.execution === 'blockwise' ? 'blockwise' : 'monolithic',
    });
    const tokenizer = await loadTokenizer(model);
    const rule = opts.rule ?? 'attnlrp';
    const compiled = await compileModelFile(model.onnxPath, { mode: rule }, opts.cache ?? true);
    const runners = await RelevanceRunners.create(model, compiled, { mode: rule }, opts);
    const inputs = compiled.info.inputs;
    return new AttributionEngine(model, tokenizer, runners, compiled.info, inputs, rule, {
      loadMs: performance.now() - t0,
      compileMs: compiled.compileMs,
      compiledFromCache: compiled.fromCache,
    });
  }

  /** The device the relevance pass runs on (after any fallback to the CPU). */
  get device(): Device {
    return this.runners.device;
  }

  encode(prompt: string): number[] {
    const ids = this.tokenizer.encode(prompt);
    if (ids.length === 0) throw new LrpLensError('bad-argument', 'The prompt is empty; give at least one token of text.');
    return ids;
  }

  /** A token's text as it would continue `after` (keeps the leading space SentencePiece drops at the start). */
  decode(id: number, after?: number): string {
    if (after === undefined) return this.tokenizer.decode([id], { skip_special_tokens: false });
    const prefix = this.tokenizer.decode([after], { skip_special_tokens: false });
    const both = this.tokenizer.decode([after, id], { skip_special_tokens: false });
    return both.startsWith(prefix) ? both.slice(prefix.length) : this.tokenizer.decode([id], { skip_special_tokens: false });
  }

  private checkLength(n: number, limit?: number): void {
    if (limit !== undefined && n > limit) {
      throw new LrpLensError(
        'prompt-too-long',
        `The input has ${n} tokens, more than the limit of ${limit} (maxTokens; lrpLens.maxTokens in the extension). Shorten the prompt or raise the setting.`,
      );
    }
    const max = maxPositions(this.model.config);
    if (max !== undefined && n > max) {
      throw new LrpLensError(
        'prompt-too-long',
        `The input has ${n} tokens but the model's context is ${max}. Shorten the prompt or the continuation.`,
      );
    }
  }

  /** Attributes one request; several requests at once share one batched run (left-padded). */
  async attribute(req: AttributeRequest, limits: AttributeLimits = {}): Promise<AttributionResult> {
    return (await this.attributeBatch([req], limits))[0];
  }

  async attributeBatch(reqs: AttributeRequest[], limits: AttributeLimits = {}): Promise<AttributionResult[]> {
    const plans = reqs.map((r) => this.plan(r, limits.maxTokens));
    const rows = plans.flatMap((p) => p.rows);
    const t0 = performance.now();
    const { results, decision } = await this.runRows(rows);
    const runMs = performance.now() - t0;
    let k = 0;
    return plans.map((p) => {
      const mine = results.slice(k, k + p.rows.length);
      k += p.rows.length;
      return this.assemble(p, mine, runMs, decision);
    });
  }

  /** Which execution a batch of this size would run, and why (inspect, the run log). */
  decide(batch: number, seq: number): ExecutionDecision {
    return this.runners.decide(batch, seq);
  }

  private plan(req: AttributeRequest, maxTokens?: number) {
    if (req.prompt === undefined && !req.ids) throw new LrpLensError('bad-argument', 'Give a prompt, a file or token ids to attribute.');
    if (req.prompt !== undefined && !req.ids && req.prompt.length === 0)
      throw new LrpLensError('bad-argument', 'The prompt is empty; give at least one token of text.');
    const V = this.info.vocabSize;
    const prompt = req.prompt ?? this.tokenizer.decode(req.ids!, { skip_special_tokens: true });
    const ids = req.ids ? req.ids.map((id) => checkTokenId(id, V, 'Input token')) : this.encode(prompt);
    const foilId =
      req.foilId !== undefined
        ? checkTokenId(req.foilId, V, 'Foil')
        : req.foil !== undefined
          ? resolveTargetToken(this.tokenizer, prompt, req.foil, V)
          : undefined;
    if (req.continuation) {
      const cont = this.continuationIds(prompt, ids, req.continuation);
      const input = [...ids, ...cont.slice(0, -1)];
      this.checkLength(input.length, maxTokens);
      const rows = cont.map((id, k) => ({ ids: input, position: ids.length - 1 + k, targetId: id, foilId }));
      return { prompt: prompt + req.continuation, promptIds: input, rows, continuation: true };
    }
    this.checkLength(ids.length, maxTokens);
    const targetId =
      req.targetId !== undefined
        ? checkTokenId(req.targetId, V, 'Target')
        : req.target !== undefined
          ? resolveTargetToken(this.tokenizer, prompt, req.target, V)
          : -1;
    return { prompt, promptIds: ids, rows: [{ ids, position: ids.length - 1, targetId, foilId }], continuation: false };
  }

  private continuationIds(prompt: string, ids: number[], continuation: string): number[] {
    const full = this.tokenizer.encode(prompt + continuation);
    const cont =
      full.length > ids.length && ids.every((id, i) => full[i] === id)
        ? full.slice(ids.length)
        : this.tokenizer.encode(continuation, { add_special_tokens: false });
    if (cont.length === 0) throw new LrpLensError('bad-argument', 'The continuation is empty.');
    return cont;
  }

  private async runRows(rows: Row[]): Promise<{ results: RowResult[]; decision: ExecutionDecision }> {
    const batch = padBatch(
      rows.map((r) => r.ids),
      0,
      this.info.padding,
    );
    const B = rows.length;
    const S = batch.ids[0].length;
    // Where row r's tokens start in the padded batch.
    const start = (r: Row) => (this.info.padding === 'left' ? S - r.ids.length : 0);
    const feeds = causalLmFeeds(this.graphInputs, batch);
    const tIds = new Array<number>(B * S).fill(0);
    const tW = new Array<number>(B * S).fill(0);
    const fIds = new Array<number>(B * S).fill(0);
    const fW = new Array<number>(B * S).fill(0);
    rows.forEach((r, b) => {
      const pos = start(r) + r.position;
      tIds[b * S + pos] = r.targetId;
      tW[b * S + pos] = 1;
      if (r.foilId !== undefined) {
        fIds[b * S + pos] = r.foilId;
        fW[b * S + pos] = 1;
      }
    });
    Object.assign(feeds, seedFeeds(this.info.dtype, [B, S], { targetIds: tIds, targetWeights: tW, foilIds: fIds, foilWeights: fW }));
    const { runner, decision } = await this.runners.forBatch(B, S);
    const out = await runner.run(feeds);
    const get = (name: string) => (out[name] ? tensorNumbers(out[name]) : undefined);
    const logits = out.logits;
    const tokens = get(IO.tokens)!;
    const layers = get(IO.layers);
    const heads = get(IO.heads);
    const neurons = get(IO.neurons);
    const seed = get(IO.seed)!;
    const absorbed = Object.fromEntries(ABSORBED_KINDS.map((k) => [k, get(IO.absorbed(k))]));
    const { layers: L, heads: H, neurons: N, vocabSize: V } = this.info;
    const results = rows.map((r, b) => {
      const pad = start(r);
      const end = pad + r.ids.length;
      const pos = pad + r.position;
      const perLayer = (flat: number[] | undefined, f: (l: number) => number[]) => (flat ? Array.from({ length: L }, (_, l) => f(l)) : []);
      return {
        tokens: tokens.slice(b * S + pad, b * S + end),
        layers: perLayer(layers, (l) => layers!.slice((l * B + b) * S + pad, (l * B + b) * S + end)),
        heads: perLayer(heads, (l) =>
          Array.from({ length: H ?? 0 }, (_, h) =>
            sum(heads!.slice(((l * B + b) * (H ?? 0) + h) * S, ((l * B + b) * (H ?? 0) + h + 1) * S)),
          ),
        ),
        neurons: perLayer(neurons, (l) => neurons!.slice((l * B + b) * (N ?? 0), (l * B + b + 1) * (N ?? 0))),
        seed: seed[b],
        absorbed: Object.fromEntries(
          Object.entries(absorbed)
            .filter(([, v]) => v)
            .map(([k, v]) => [k, v![b]]),
        ),
        logits: logitsRow(logits, (b * S + pos) * V, V),
      };
    });
    return { results, decision };
  }

  private targetInfo(row: Row, logits: number[], probs = softmax(logits)): TargetInfo {
    const id = row.targetId >= 0 ? row.targetId : argmax(logits);
    const after = row.ids[row.position];
    const t: TargetInfo = { id, text: this.decode(id, after), position: row.position, logit: logits[id], prob: probs[id] };
    if (row.foilId !== undefined)
      t.foil = { id: row.foilId, text: this.decode(row.foilId, after), logit: logits[row.foilId], prob: probs[row.foilId] };
    return t;
  }

  private predictions(probs: number[], after: number): Prediction[] {
    return [...probs.keys()]
      .sort((a, b) => probs[b] - probs[a])
      .slice(0, 10)
      .map((id) => ({ id, text: this.decode(id, after), prob: probs[id] }));
  }

  private assemble(
    p: ReturnType<AttributionEngine['plan']>,
    rs: RowResult[],
    runMs: number,
    decision: ExecutionDecision,
  ): AttributionResult {
    const { logits, ...relevance } = rs[0];
    const probs = softmax(logits);
    const row = p.rows[0];
    const result: AttributionResult = {
      schema: 'lrp-lens/attribution@1',
      model: { ref: this.model.ref, onnx: this.model.onnxPath, device: this.device },
      rule: this.rule,
      prompt: p.prompt,
      tokens: tokenOffsets(this.tokenizer, p.promptIds, p.prompt),
      target: this.targetInfo(row, logits, probs),
      relevance,
      predictions: this.predictions(probs, row.ids[row.position]),
      timing: { loadMs: this.timing.loadMs, compileMs: this.timing.compileMs, runMs, compiledFromCache: this.timing.compiledFromCache },
      execution: { kind: decision.execution, reason: decision.reason },
      warnings: [...this.info.warnings, ...this.runners.warnings],
    };
    if (p.continuation) {
      result.continuation = { targets: p.rows.map((r, k) => this.targetInfo(r, rs[k].logits)), matrix: rs.map((r) => r.tokens) };
    }
    return result;
  }

  async release(): Promise<void> {
    await this.runners.release();
  }
}

/** One row of logits as numbers, without converting the whole [batch, seq, vocab] tensor. */
function logitsRow(t: HostTensor, offset: number, vocab: number): number[] {
  return Array.from((t.data as Float32Array | Float64Array).subarray(offset, offset + vocab));
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

export function softmax(logits: number[]): number[] {
  const m = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - m));
  const z = sum(e);
  return e.map((x) => x / z);
}

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
