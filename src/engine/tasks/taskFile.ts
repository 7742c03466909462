/**
 * Task files (`*.task.jsonl`, or a `*.prompts.jsonl` of the same lines): the reference set of circuit discovery.
 * Line 1 may be a header; every further non-blank line is one sample:
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
 *
 * Without a header the file's lines decide the metric (every sample has a foil: `logit_diff`; none: `prob`) and
 * the file's name the task's (`pronoun` for `pronoun.task.jsonl`); a header is needed only for another metric.
 * `meta.template` and `meta.name` let discovery split by template and name (`splitByTemplate`).
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
    throw bad(
      `${name} is empty; write one {"prompt", "target", "foil"} object per line (optionally after a header line {"task": {"name": …, "metric": …}}).`,
    );
  const firstLine = parseLine(lines[first], name, first + 1);
  const explicit = 'task' in firstLine ? parseHeader(firstLine, name, first + 1) : undefined;
  const objects: { o: Record<string, unknown>; line: number }[] = [];
  for (let i = explicit ? first + 1 : first; i < lines.length; i++) {
    if (lines[i].trim() !== '') objects.push({ o: parseLine(lines[i], name, i + 1), line: i + 1 });
  }
  if (objects.length === 0)
    throw bad(`${name} has a header but no samples; write one {"prompt", "target", "foil"} object per line after it.`);
  const header = explicit ?? implicitHeader(objects, name);
  const samples = objects.map(({ o, line }) => parseSample(o, header.metric, `${name}:${line}`, line));
  const task = { header, samples };
  if (tokenizer) tokenizeTask(task, tokenizer, name);
  return task;
}

/**
 * The header a file without one implies: the metric from its lines (every sample has a foil: `logit_diff`; none
 * has: `prob`), the name from the file name.
 */
function implicitHeader(objects: { o: Record<string, unknown>; line: number }[], name: string): TaskHeader {
  const withFoil = objects.filter(({ o }) => o.foil !== undefined);
  if (withFoil.length > 0 && withFoil.length < objects.length) {
    const [a, b] = [withFoil[0], objects.find(({ o }) => o.foil === undefined)!];
    throw bad(
      `${name}:${b.line}: this sample has no "foil" but line ${a.line} has one, and a file without a header takes its metric from the lines (all with a foil: logit_diff; none: prob). Give every sample a foil, none, or write a header line {"task": {"name": …, "metric": …}}.`,
    );
  }
  return { name: taskNameOf(name), metric: withFoil.length > 0 ? 'logit_diff' : 'prob' };
}

/** `pronoun` from `…/pronoun.task.jsonl` or `pronoun.prompts.jsonl`. */
export function taskNameOf(path: string): string {
  const base = path.split(/[\\/]/).pop() ?? path;
  return base.replace(/(\.(task|prompts))?\.jsonl$/i, '') || base;
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

/**
 * Discovery, in-template and out-of-template parts of a task. `outOfTemplate` holds every sample of the templates
 * held out (never seen by discovery); `inTemplate` the samples of discovery's templates that discovery did not
 * use (those with a held-out name, or, without names, a stratified share). A task without `meta.template` on at
 * least two templates is split by sample: `outOfTemplate` is empty and `by` says so.
 */
export interface TemplateSplit<T> {
  by: 'template' | 'sample';
  train: T[];
  inTemplate: T[];
  outOfTemplate: T[];
  heldOutTemplates: string[];
  heldOutNames: string[];
}

type MetaSample = { target: string; meta?: Record<string, unknown> };

const metaKey = (s: MetaSample, key: string): string | undefined => {
  const v = s.meta?.[key];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
};

/**
 * A seeded split by template (`meta.template`) and by name (`meta.name`): `heldOut` of the templates go to
 * `outOfTemplate`; of the rest, samples whose name is among `heldOut` of each target's names go to `inTemplate`.
 * With no usable names, `inTemplate` is a stratified `heldOut` share of the discovery templates' samples.
 */
export function splitByTemplate<T extends MetaSample>(
  samples: readonly T[],
  opts: { seed?: number; heldOut?: number } = {},
): TemplateSplit<T> {
  const fraction = opts.heldOut ?? 0.3;
  const seed = opts.seed ?? 0;
  const templates = [...new Set(samples.map((s) => metaKey(s, 'template')))];
  if (templates.length < 2 || templates.includes(undefined)) {
    const { train, heldOut } = splitTask(samples, { seed, heldOut: fraction });
    return { by: 'sample', train, inTemplate: heldOut, outOfTemplate: [], heldOutTemplates: [], heldOutNames: [] };
  }
  splitTask(samples, { seed, heldOut: fraction }); // the same checks on the fraction and the sample count
  const rand = mulberry32(seed);
  const held = new Set(heldShare(shuffled(rand, templates as string[]), fraction));
  const outOfTemplate = samples.filter((s) => held.has(metaKey(s, 'template')!));
  const rest = samples.filter((s) => !held.has(metaKey(s, 'template')!));
  const heldNames = new Set(heldOutNames(rest, fraction, rand));
  const named = heldNames.size > 0 && rest.some((s) => !heldNames.has(metaKey(s, 'name')!));
  const parts = named
    ? { train: rest.filter((s) => !heldNames.has(metaKey(s, 'name')!)), heldOut: rest.filter((s) => heldNames.has(metaKey(s, 'name')!)) }
    : splitTask(rest, { seed, heldOut: fraction });
  if (parts.train.length === 0 || outOfTemplate.length === 0)
    throw bad(
      `Splitting by template left no samples to ${parts.train.length === 0 ? 'discover on' : 'hold out'}; generate or write more samples per template.`,
    );
  return {
    by: 'template',
    train: parts.train,
    inTemplate: parts.heldOut,
    outOfTemplate,
    heldOutTemplates: [...held].sort((a, b) => a.localeCompare(b, undefined, { numeric: true })),
    heldOutNames: named ? [...heldNames].sort() : [],
  };
}

/** The first `fraction` of `xs` (at least one, and at least one left over). */
function heldShare<T>(xs: T[], fraction: number): T[] {
  return xs.slice(0, Math.min(xs.length - 1, Math.max(1, Math.round(xs.length * fraction))));
}

/** A share of each target's names (so both genders of a pronoun task lose names); none where a sample has no name. */
function heldOutNames(samples: readonly MetaSample[], fraction: number, rand: () => number): string[] {
  if (samples.some((s) => metaKey(s, 'name') === undefined)) return [];
  const targets = [...new Set(samples.map((s) => s.target))];
  return targets.flatMap((t) => {
    const names = [...new Set(samples.filter((s) => s.target === t).map((s) => metaKey(s, 'name')!))].sort();
    return names.length < 2 ? [] : heldShare(shuffled(rand, names), fraction);
  });
}

function bad(message: string): LrpLensError {
  return new LrpLensError('bad-argument', message);
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
