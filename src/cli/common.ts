/** Argument parsing and output helpers shared by the CLI's commands. */
import { InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULT_MODEL } from '../engine/runtime/model';

export function defaultModel(): string {
  if (process.env.LRP_LENS_MODEL) return process.env.LRP_LENS_MODEL;
  const shared = resolve(__dirname, '..', '..', 'shared', 'models', 'stories260k');
  return existsSync(shared) ? shared : DEFAULT_MODEL;
}

export function intArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`'${v}' is not an integer.`);
  return n;
}

export function idsArg(v: string): number[] {
  return v.split(',').map((s) => intArg(s.trim()));
}

export function writeJson(path: string, data: unknown): void {
  const text = JSON.stringify(data, null, 2);
  if (path === '-') process.stdout.write(text + '\n');
  else {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(path, text + '\n');
  }
}

/** A table in Markdown pipe syntax, columns padded to their widest cell (the CLI's and the benchmarks' output). */
export function markdownTable(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}
