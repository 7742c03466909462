/**
 * Behaviour metrics for targeted correction (what the pruning should reduce), chosen on the command line as
 * `--metric repetition | word-rate[:WORDS] | command:CMD`:
 *
 * - `repetition`: the Response Uniqueness Ratio of a greedy continuation, unique ÷ total token ids
 *   (Hatefi et al. 2025, Eq. 11). 1 = no token repeats; a loop drives it towards 0. Higher is better.
 * - `word-rate`: how much the model favours given words: the probability of their first tokens as the next
 *   token at the prompt's end (`wordProbability`), or their frequency in continuations (`wordFrequency`).
 *   Lower is better. A user word list is a local stand-in for a toxicity classifier.
 * - `command`: an external scorer. The command runs in a shell with the continuation text on stdin and
 *   prints one number on stdout (its last non-empty line is read; logs go to stderr). Lower is better.
 */
import { spawn } from 'node:child_process';
import { LrpLensError } from '../errors';
import type { TokenizerLike } from '../runtime/model';
import { continuationTokens } from '../tasks/taskFile';

export type BehaviourMetricSpec =
  | { kind: 'repetition' }
  /** words undefined: the caller supplies them (e.g. the undesired set's targets). */
  | { kind: 'word-rate'; words?: string[] }
  | { kind: 'command'; command: string };

export const METRIC_SPEC_FORMS = 'repetition, word-rate, word-rate:WORD[,WORD…] or command:CMD';

/** Parses `repetition`, `word-rate`, `word-rate:Lily,Tom` or `command:python score.py`. */
export function parseBehaviourMetric(spec: string): BehaviourMetricSpec {
  const s = spec.trim();
  if (s === 'repetition') return { kind: 'repetition' };
  if (s === 'word-rate') return { kind: 'word-rate' };
  if (s.startsWith('word-rate:')) {
    const words = s
      .slice('word-rate:'.length)
      .split(',')
      .map((w) => w.trim())
      .filter((w) => w !== '');
    if (words.length === 0)
      throw new LrpLensError(
        'bad-argument',
        `--metric ${spec}: no words after "word-rate:"; list them separated by commas, e.g. word-rate:Lily,Tom.`,
      );
    return { kind: 'word-rate', words };
  }
  if (s.startsWith('command:')) {
    const command = s.slice('command:'.length).trim();
    if (command === '')
      throw new LrpLensError('bad-argument', `--metric ${spec}: no command after "command:"; e.g. command:"python score.py".`);
    return { kind: 'command', command };
  }
  throw new LrpLensError('bad-argument', `--metric '${spec}' is not a behaviour metric; use ${METRIC_SPEC_FORMS}.`);
}

/** Whether a larger value of the metric is the wanted behaviour (for choosing a point on a sweep). */
export function higherIsBetter(spec: BehaviourMetricSpec): boolean {
  return spec.kind === 'repetition';
}

/** Response Uniqueness Ratio (paper Eq. 11): distinct ÷ total token ids; an empty continuation repeats nothing (1). */
export function uniquenessRatio(ids: readonly number[]): number {
  return ids.length === 0 ? 1 : new Set(ids).size / ids.length;
}

export function meanUniquenessRatio(continuations: readonly (readonly number[])[]): number {
  if (continuations.length === 0) throw new LrpLensError('bad-argument', 'No continuations to score; the prompt set is empty.');
  return continuations.reduce((a, c) => a + uniquenessRatio(c), 0) / continuations.length;
}

/**
 * The distinct first tokens of each word as the next token after `prompt` (" Lily" after "…named"): a word
 * follows the prompt after a space unless the prompt already ends in whitespace.
 */
export function wordFirstTokenIds(tok: TokenizerLike, prompt: string, words: readonly string[]): number[] {
  const space = /\s$/.test(prompt) ? '' : ' ';
  const ids = words.map((w) => {
    const t = continuationTokens(tok, prompt, space + w.trim());
    if (t.length === 0)
      throw new LrpLensError('bad-argument', `The word ${JSON.stringify(w)} adds no token after the prompt; give a non-empty word.`);
    return t[0];
  });
  return [...new Set(ids)];
}

/** Softmax probability mass of `ids` in one logits row (the next-token distribution at the prompt's end). */
export function wordProbability(row: Float32Array, ids: readonly number[]): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return [...new Set(ids)].reduce((p, id) => {
    if (!Number.isInteger(id) || id < 0 || id >= row.length)
      throw new LrpLensError('unknown-token', `Token id ${id} is outside the vocabulary (0..${row.length - 1}).`);
    return p + Math.exp(row[id] - max) / sum;
  }, 0);
}

/** Occurrences of the words (whole words, case-insensitive) ÷ the number of words in `text`; 0 for no words. */
export function wordFrequency(text: string, words: readonly string[]): number {
  const tokens = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
  if (tokens.length === 0) return 0;
  const wanted = new Set(words.map((w) => w.trim().toLowerCase()));
  return tokens.filter((t) => wanted.has(t)).length / tokens.length;
}

export interface ScorerOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  cwd?: string;
}

/** Runs an external scorer: `text` on stdin, one number on stdout. */
export function runScorer(command: string, text: string, opts: ScorerOptions = {}): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    // Its own process group on POSIX, so a timeout kills the shell and what it started.
    const child = spawn(command, { shell: true, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: process.platform !== 'win32' });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child.pid);
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.stdin.on('error', () => undefined); // a scorer that never reads stdin closes the pipe early
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new LrpLensError('runtime-failure', `The scorer command '${command}' could not start (${err.message}).`, err));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut)
        return reject(
          new LrpLensError(
            'runtime-failure',
            `The scorer command '${command}' did not finish within ${timeoutMs / 1000} s and was stopped; make it faster or raise the timeout.`,
          ),
        );
      if (code !== 0) {
        const why = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
        return reject(
          new LrpLensError(
            'runtime-failure',
            `The scorer command '${command}' ${why}${stderrTail(stderr)}. It must read the text on stdin and exit 0.`,
          ),
        );
      }
      try {
        resolve(parseScore(stdout, command));
      } catch (err) {
        reject(err);
      }
    });
    child.stdin.end(text);
  });
}

function parseScore(stdout: string, command: string): number {
  const last = stdout.trim().split(/\r?\n/).pop()?.trim() ?? '';
  const value = last === '' ? NaN : Number(last);
  if (!Number.isFinite(value)) {
    throw new LrpLensError(
      'bad-argument',
      `The scorer command '${command}' printed ${last === '' ? 'nothing' : JSON.stringify(last.slice(0, 80))} on stdout; it must print one number (e.g. 0.42) as its last line.`,
    );
  }
  return value;
}

function stderrTail(stderr: string): string {
  const lines = stderr
    .trim()
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  return lines.length ? ` (stderr: ${lines.slice(-3).join(' | ').slice(0, 300)})` : '';
}

function killTree(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(process.platform === 'win32' ? pid : -pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
