/**
 * Prompt files. `*.prompt` / `*.prompt.txt`: the file is the prompt, optionally after a header between `---`
 * lines that sets the target, foil or continuation:
 *
 *   ---
 *   target: " Lily"          (JSON string, so leading spaces survive; or bare text)
 *   foil: " Tom"
 *   continuation: ", who"
 *   target-id: 317           (instead of target)
 *   ---
 *   Once upon a time, there was a little girl named
 *
 * The prompt is the text after the header with one trailing newline removed (editors add one).
 * `*.prompts.jsonl`: one sample per line, `{ "prompt": …, "target"?: …, "foil"?: … }` (pruning, circuits and
 * correction read the same format).
 */
import { LrpLensError } from '../errors';
import type { AttributeRequest } from './attribute';

export interface PromptFile {
  request: AttributeRequest & { prompt: string };
  /** Offset (UTF-16) of the prompt's first character in the file, to map token offsets to the document. */
  promptOffset: number;
}

export interface PromptSample {
  prompt: string;
  target?: string;
  foil?: string;
  /** 1-based line in the file. */
  line: number;
}

const HEADER_KEYS = new Set(['target', 'foil', 'continuation', 'target-id', 'foil-id']);

export function isPromptFile(name: string): boolean {
  return /\.prompt(\.txt)?$/i.test(name);
}

export function isPromptsJsonl(name: string): boolean {
  return /\.prompts\.jsonl$/i.test(name);
}

/** Refuses content that is not text (NUL bytes or mostly replacement characters). */
export function checkText(text: string, name: string): void {
  if (text.includes('\u0000') || (text.length > 0 && (text.match(/\uFFFD/g)?.length ?? 0) / text.length > 0.1)) {
    throw new LrpLensError('bad-argument', `${name} is not a text file; open a prompt file (UTF-8 text).`);
  }
}

export function parsePromptFile(text: string, name = 'prompt file'): PromptFile {
  checkText(text, name);
  const header = /^---\r?\n([\s\S]*?)\r?\n---\r?\n/.exec(text);
  const promptOffset = header ? header[0].length : 0;
  const prompt = text.slice(promptOffset).replace(/\r?\n$/, '');
  if (prompt.trim().length === 0)
    throw new LrpLensError('bad-argument', `${name} holds no prompt text; write the prompt below the header.`);
  const request: PromptFile['request'] = { prompt };
  if (header) {
    header[1].split(/\r?\n/).forEach((line, i) => applyHeaderLine(request, line, i + 2, name));
  }
  return { request, promptOffset };
}

function applyHeaderLine(request: AttributeRequest, line: string, lineNo: number, name: string): void {
  if (line.trim() === '' || line.trimStart().startsWith('#')) return;
  const m = /^\s*([\w-]+)\s*:\s?(.*)$/.exec(line);
  if (!m || !HEADER_KEYS.has(m[1])) {
    throw new LrpLensError(
      'bad-argument',
      `${name}, line ${lineNo}: expected one of ${[...HEADER_KEYS].join(', ')} as "key: value", got '${line}'.`,
    );
  }
  const [, key, raw] = m;
  if (key === 'target-id' || key === 'foil-id') {
    const id = Number(raw.trim());
    if (!Number.isInteger(id) || id < 0)
      throw new LrpLensError('bad-argument', `${name}, line ${lineNo}: ${key} must be a token id (a non-negative integer).`);
    if (key === 'target-id') request.targetId = id;
    else request.foilId = id;
    return;
  }
  const value = headerString(raw, `${name}, line ${lineNo}`);
  if (key === 'target') request.target = value;
  else if (key === 'foil') request.foil = value;
  else request.continuation = value;
}

function headerString(raw: string, where: string): string {
  const t = raw.trim();
  if (!t.startsWith('"')) return t;
  try {
    const v: unknown = JSON.parse(t);
    if (typeof v === 'string') return v;
  } catch {
    // fall through
  }
  throw new LrpLensError('bad-argument', `${where}: ${t} is not a valid JSON string (escape quotes as \\").`);
}

export function parsePromptsJsonl(text: string, name = 'prompts file'): PromptSample[] {
  checkText(text, name);
  const samples: PromptSample[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new LrpLensError('bad-argument', `${name}, line ${i + 1}: not valid JSON (${(err as Error).message}).`);
    }
    const o = v as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.prompt !== 'string' || o.prompt.length === 0) {
      throw new LrpLensError('bad-argument', `${name}, line ${i + 1}: each line needs a non-empty "prompt" string.`);
    }
    for (const k of ['target', 'foil'] as const) {
      if (o[k] !== undefined && typeof o[k] !== 'string')
        throw new LrpLensError('bad-argument', `${name}, line ${i + 1}: "${k}" must be a string.`);
    }
    samples.push({ prompt: o.prompt, target: o.target as string | undefined, foil: o.foil as string | undefined, line: i + 1 });
  });
  if (samples.length === 0) throw new LrpLensError('bad-argument', `${name} has no samples; write one JSON object per line.`);
  return samples;
}
