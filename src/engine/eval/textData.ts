/**
 * Text for reference and evaluation sets.
 *
 * A plain text file is a list of documents: separated by blank lines, or one per line when the file has no blank
 * line. Each document is tokenized on its own with the tokenizer's special tokens (so it starts with BOS when the
 * model's tokenizer adds one), the documents are concatenated into one token stream, and the stream is cut into
 * consecutive windows of L tokens (the last, shorter window is kept when it has at least 2 tokens).
 * A `*.prompts.jsonl` file gives one sample per line: the prompt followed by its target, if any.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { LrpLensError } from '../errors';
import type { TokenizerLike } from '../runtime/model';
import { checkText, isPromptsJsonl, parsePromptsJsonl } from '../attribution/promptFile';

export interface TokenSamples {
  /** Token ids per sample. */
  samples: number[][];
  /** sha256 of the file's bytes, for manifests. */
  hash: string;
  source: string;
}

export function splitDocuments(text: string): string[] {
  const normalized = text.replace(/\r\n?/g, '\n');
  const parts = /\n[ \t]*\n/.test(normalized) ? normalized.split(/\n[ \t]*\n+/) : normalized.split('\n');
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

export function tokenStream(documents: string[], tokenizer: TokenizerLike): number[] {
  const stream: number[] = [];
  for (const doc of documents) for (const id of tokenizer.encode(doc)) stream.push(id);
  return stream;
}

export function windows(stream: number[], length: number, max?: number): number[][] {
  if (!Number.isInteger(length) || length < 2)
    throw new LrpLensError('bad-argument', `The window length must be an integer ≥ 2 tokens (got ${length}).`);
  const out: number[][] = [];
  for (let at = 0; at + 1 < stream.length && (max === undefined || out.length < max); at += length) out.push(stream.slice(at, at + length));
  return out;
}

export function readTextFile(path: string, what: string): string {
  if (!existsSync(path))
    throw new LrpLensError('bad-argument', `The ${what} file ${path} does not exist. Give a plain text file or a *.prompts.jsonl file.`);
  if (statSync(path).isDirectory())
    throw new LrpLensError('bad-argument', `The ${what} ${path} is a folder; give a plain text file or a *.prompts.jsonl file.`);
  const bytes = readFileSync(path);
  const text = bytes.toString('utf8');
  checkText(text, path);
  if (text.trim().length === 0) throw new LrpLensError('bad-argument', `The ${what} file ${path} is empty. Give it some text.`);
  return text;
}

export interface SampleOptions {
  /** Window length in tokens (plain text). */
  seqLen: number;
  /** At most this many samples. */
  samples?: number;
}

/** Reads a text or prompts file into token samples (see the module comment for the chunking). */
export function loadSamples(path: string, tokenizer: TokenizerLike, opts: SampleOptions, what = 'reference'): TokenSamples {
  const text = readTextFile(path, what);
  const hash = createHash('sha256').update(text).digest('hex');
  let samples: number[][];
  if (isPromptsJsonl(path)) {
    samples = parsePromptsJsonl(text, path).map((s) => tokenizer.encode(s.prompt + (s.target ?? '')));
    if (opts.samples !== undefined) samples = samples.slice(0, opts.samples);
  } else {
    samples = windows(tokenStream(splitDocuments(text), tokenizer), opts.seqLen, opts.samples);
  }
  samples = samples.filter((s) => s.length >= 2);
  if (samples.length === 0)
    throw new LrpLensError('bad-argument', `The ${what} file ${path} gives no sample of at least 2 tokens. Add text.`);
  return { samples, hash, source: path };
}
