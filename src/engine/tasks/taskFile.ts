/**
 * Task files (`*.task.jsonl`): the reference set of circuit discovery. Line 1 is the header, every further
 * non-blank line one sample:
 *
 *   {"task": {"name": "pronoun", "metric": "logit_diff", "kind": "pronoun", "description": "…"}}
 *   {"prompt": "Once upon a time, there was a little boy named Tom. One day,", "target": " he", "foil": " she"}
 *   {"prompt": "…a little girl named Lily. One day,", "target": " she", "foil": " he", "meta": {"gender": "girl"}}
 *
 * Header keys: `name` (required), `metric` (required: `logit_diff` = logit(target) − logit(foil), `accuracy` =
 * target ranked above foil, `prob` = softmax probability of target), `description` and `kind` (optional; `kind`
 * names the generator, e.g. `ioi` or `pronoun`). Sample keys: `prompt`, `target` (the next token the model
 * should predict, leading space included), `foil` (the competing token; required by `logit_diff` and
 * `accuracy`), `meta` (free-form JSON, e.g. the template or gender). Target and foil must each be one token
 * of the model's tokenizer after the prompt. Errors name the file and line, compiler-style (`f.task.jsonl:7:`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { LrpLensError } from '../errors';
import { checkText } from '../attribution/promptFile';
import type { TokenizerLike } from '../runtime/model';
import { mulberry32, shuffled } from '../random';

export type TaskMetric = 'logit_diff' | 'accuracy' | 'prob';
export const TASK_METRICS: readonly TaskMetric[] = ['logit_diff', 'accuracy', 'prob'];

export interface TaskHeader {
  name: string;
  metric: TaskMetric;
  description?: string;
  kind?: string;
}

export interface TaskSample {
  prompt: string;
  target: string;
  foil?: string;
  meta?: Record<string, unknown>;
  /** 1-based line in the file (generated samples: the line they get when written). */
  line: number;
}

export interface TaskFile {
  header: TaskHeader;
  samples: TaskSample[];
}

/** A sample with its token ids: the prompt as the model reads it, and the one-token target and foil. */
export interface TokenizedSample extends TaskSample {
  promptIds: number[];
  targetId: number;
  foilId?: number;
}

const HEADER_KEYS = new Set(['name', 'metric', 'description', 'kind']);
const SAMPLE_KEYS = new Set(['prompt', 'target', 'foil', 'meta']);

export function isTaskFile(name: string): boolean {
  return /\.task\.jsonl$/i.test(name);
}

export function metricNeedsFoil(metric: TaskMetric): boolean {
  return metric !== 'prob';
}

/** Parses and validates a task file; with a tokenizer, also checks that targets and foils are single tokens. */
export function parseTaskFile(text: string, name = 'task.jsonl', tokenizer?: TokenizerLike): TaskFile {
  checkText(text, name);
  const lines = text.split(/\r?\n/);
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0)
    throw bad(`${name} is empty; write a header line {"task": {"name": …, "metric": "logit_diff"}} and then one sample per line.`);
  const header = parseHeader(parseLine(lines[first], name, first + 1), name, first + 1);
  const samples: TaskSample[] = [];
  for (let i = first + 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    samples.push(parseSample(parseLine(lines[i], name, i + 1), header.metric, `${name}:${i + 1}`, i + 1));
  }
  if (samples.length === 0)
    throw bad(`${name} has a header but no samples; write one {"prompt", "target", "foil"} object per line after it.`);
  const task = { header, samples };
  if (tokenizer) tokenizeTask(task, tokenizer, name);
  return task;
}

export function readTaskFile(path: string, tokenizer?: TokenizerLike): TaskFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new LrpLensError('bad-argument', `Cannot read task file ${path} (${(err as Error).message}).`, err);
  }
  return parseTaskFile(text, path, tokenizer);
}

function parseLine(line: string, name: string, lineNo: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw bad(`${name}:${lineNo}: not valid JSON (${(err as Error).message}); write one JSON object per line.`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw bad(`${name}:${lineNo}: expected a JSON object, got ${JSON.stringify(v)}.`);
  return v as Record<string, unknown>;
}

function parseHeader(o: Record<string, unknown>, name: string, lineNo: number): TaskHeader {
  const where = `${name}:${lineNo}`;
  const h = o.task as Record<string, unknown> | undefined;
  if (typeof h !== 'object' || h === null || Array.isArray(h) || Object.keys(o).length !== 1) {
    throw bad(`${where}: the first line must be the task header {"task": {"name": …, "metric": "logit_diff" | "accuracy" | "prob"}}.`);
  }
  const unknown = Object.keys(h).filter((k) => !HEADER_KEYS.has(k));
  if (unknown.length)
    throw bad(
      `${where}: unknown header key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; the header takes ${[...HEADER_KEYS].join(', ')}.`,
    );
  if (typeof h.name !== 'string' || h.name.trim() === '') throw bad(`${where}: the header needs a non-empty "name".`);
  if (!TASK_METRICS.includes(h.metric as TaskMetric)) {
    throw bad(`${where}: "metric" must be one of ${TASK_METRICS.join(', ')} (got ${JSON.stringify(h.metric)}).`);
  }
  for (const k of ['description', 'kind'] as const) {
    if (h[k] !== undefined && typeof h[k] !== 'string') throw bad(`${where}: "${k}" must be a string.`);
  }
  return withoutUndefined({
    name: h.name,
    metric: h.metric as TaskMetric,
    description: h.description as string | undefined,
    kind: h.kind as string | undefined,
  });
}

function parseSample(o: Record<string, unknown>, metric: TaskMetric, where: string, line: number): TaskSample {
  if ('task' in o) throw bad(`${where}: a second task header; only the first line may be a header.`);
  const unknown = Object.keys(o).filter((k) => !SAMPLE_KEYS.has(k));
  if (unknown.length)
    throw bad(`${where}: unknown key ${unknown.map((k) => `"${k}"`).join(', ')}; a sample takes ${[...SAMPLE_KEYS].join(', ')}.`);
  if (typeof o.prompt !== 'string' || o.prompt.length === 0) throw bad(`${where}: each sample needs a non-empty "prompt" string.`);
  if (typeof o.target !== 'string' || o.target.length === 0) {
    throw bad(`${where}: each sample needs a non-empty "target" string, the token the model should predict next (e.g. " he").`);
  }
  if (o.foil !== undefined && (typeof o.foil !== 'string' || o.foil.length === 0))
    throw bad(`${where}: "foil" must be a non-empty string.`);
  if (o.foil === undefined && metricNeedsFoil(metric)) {
    throw bad(
      `${where}: the metric "${metric}" compares target and foil, but this sample has no "foil"; add one, or set "metric": "prob" in the header.`,
    );
  }
  if (o.foil !== undefined && o.foil === o.target)
    throw bad(`${where}: "foil" equals "target" (${JSON.stringify(o.target)}); the foil must be a competing token.`);
  if (o.meta !== undefined && (typeof o.meta !== 'object' || o.meta === null || Array.isArray(o.meta)))
    throw bad(`${where}: "meta" must be a JSON object.`);
  return withoutUndefined({
    prompt: o.prompt,
    target: o.target,
    foil: o.foil as string | undefined,
    meta: o.meta as Record<string, unknown> | undefined,
    line,
  });
}

/** Token ids of every sample; refuses targets and foils that are not one token after their prompt. */
export function tokenizeTask(task: TaskFile, tok: TokenizerLike, name = 'task.jsonl'): TokenizedSample[] {
  return task.samples.map((s) => {
    const where = `${name}:${s.line}`;
    const promptIds = tok.encode(s.prompt);
    const targetId = singleTokenOrThrow(tok, s.prompt, s.target, 'target', where);
    const foilId = s.foil === undefined ? undefined : singleTokenOrThrow(tok, s.prompt, s.foil, 'foil', where);
    if (foilId !== undefined && foilId === targetId)
      throw bad(`${where}: target and foil are the same token (${targetId}); pick a foil the tokenizer tells apart.`);
    return withoutUndefined({ ...s, promptIds, targetId, foilId });
  });
}

/**
 * The tokens `text` adds after `prompt`. Tokenizing in context matters: SentencePiece tokenizers encode " he"
 * alone as ["▁", "▁he"] but after a prompt as ["▁he"].
 */
export function continuationTokens(tok: TokenizerLike, prompt: string, text: string): number[] {
  const base = tok.encode(prompt);
  const full = tok.encode(prompt + text);
  let k = 0;
  while (k < base.length && k < full.length && base[k] === full[k]) k++;
  return full.slice(k);
}

/** The id of `text` as the next token after `prompt`, or undefined when it is not exactly one token there. */
export function singleTokenId(tok: TokenizerLike, prompt: string, text: string): number | undefined {
  const base = tok.encode(prompt);
  const full = tok.encode(prompt + text);
  const extendsPrompt = full.length === base.length + 1 && base.every((id, i) => full[i] === id);
  return extendsPrompt ? full[full.length - 1] : undefined;
}

function singleTokenOrThrow(tok: TokenizerLike, prompt: string, text: string, what: string, where: string): number {
  const id = singleTokenId(tok, prompt, text);
  if (id !== undefined) return id;
  const ids = continuationTokens(tok, prompt, text);
  const pieces = decodedPieces(tok, tok.encode(prompt + text), ids.length);
  const hint =
    ids.length > 1
      ? `use one token, e.g. its first piece ${JSON.stringify(pieces[0])}, or another word`
      : 'it merges with the end of the prompt; end the prompt before the word (e.g. with a space in the target, not the prompt)';
  throw bad(
    `${where}: ${what} ${JSON.stringify(text)} is not a single token after the prompt: it tokenizes as ${JSON.stringify(pieces)} (ids ${ids.join(', ')}); ${hint}.`,
  );
}

/** The text of each of the last `count` tokens, decoded in context so SentencePiece keeps their leading spaces. */
function decodedPieces(tok: TokenizerLike, ids: number[], count: number): string[] {
  const upTo = (n: number) => tok.decode(ids.slice(0, n), { skip_special_tokens: true });
  return Array.from({ length: count }, (_, i) => {
    const end = ids.length - count + i + 1;
    return upTo(end).slice(upTo(end - 1).length);
  });
}

/** The file text: the header line, then one sample per line (meta kept, line numbers not written). */
export function formatTaskFile(task: { header: TaskHeader; samples: Omit<TaskSample, 'line'>[] }): string {
  const header = JSON.stringify({
    task: withoutUndefined({
      name: task.header.name,
      metric: task.header.metric,
      kind: task.header.kind,
      description: task.header.description,
    }),
  });
  const samples = task.samples.map((s) =>
    JSON.stringify(withoutUndefined({ prompt: s.prompt, target: s.target, foil: s.foil, meta: s.meta })),
  );
  return [header, ...samples].join('\n') + '\n';
}

export function writeTaskFile(path: string, task: { header: TaskHeader; samples: Omit<TaskSample, 'line'>[] }): void {
  writeFileSync(path, formatTaskFile(task));
}

export interface TaskSplit<T> {
  train: T[];
  heldOut: T[];
}

/**
 * A seeded train / held-out split, stratified by target (a pronoun task's held-out part gets both
 * genders in proportion). Both parts keep file order. `heldOut` is the fraction held out (default 0.3).
 */
export function splitTask<T extends { target: string }>(
  samples: readonly T[],
  opts: { seed?: number; heldOut?: number } = {},
): TaskSplit<T> {
  const fraction = opts.heldOut ?? 0.3;
  if (!(fraction > 0 && fraction < 1)) throw bad(`The held-out fraction must lie strictly between 0 and 1 (got ${fraction}).`);
  if (samples.length < 2)
    throw bad(`A task needs at least 2 samples to split into train and held-out parts (has ${samples.length}); generate or write more.`);
  const n = samples.length;
  const h = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
  const groups = [...new Set(samples.map((s) => s.target))];
  const order = shuffled(
    mulberry32(opts.seed ?? 0),
    samples.map((_, i) => i),
  );
  order.sort((a, b) => groups.indexOf(samples[a].target) - groups.indexOf(samples[b].target));
  // Systematic sampling over the group-sorted order: exactly h picks, each group in proportion.
  const held = new Set(order.filter((_, i) => Math.floor(((i + 1) * h) / n) > Math.floor((i * h) / n)));
  return { train: samples.filter((_, i) => !held.has(i)), heldOut: samples.filter((_, i) => held.has(i)) };
}

function bad(message: string): LrpLensError {
  return new LrpLensError('bad-argument', message);
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
