/**
 * Output paths are checked before a command runs: no two outputs may be one file (a report written over a mask's
 * manifest makes the mask unreadable), and no output may be one of the command's inputs. Paths compare after
 * `resolve`, so `a/../fix.json` and `fix.json` clash.
 */
import { resolve } from 'node:path';
import { LrpLensError } from './errors';

/** A file a command writes or reads, with the option that names it (e.g. `--json`, `--out (mask manifest)`). */
export interface NamedPath {
  flag: string;
  path: string;
}

/** The pair a mask path names: `X` / `X.safetensors` / `X.json` → X.safetensors and X.json. */
export function maskPair(path: string): { safetensors: string; manifest: string } {
  const base = resolve(path).replace(/\.(safetensors|json)$/i, '');
  return { safetensors: `${base}.safetensors`, manifest: `${base}.json` };
}

/** The mask pair of an `--out` option as named outputs. */
export function maskOutputs(flag: string, path: string): NamedPath[] {
  const pair = maskPair(path);
  return [
    { flag: `${flag} (mask bits)`, path: pair.safetensors },
    { flag: `${flag} (mask manifest)`, path: pair.manifest },
  ];
}

/** A `--json` report path as an output, unless it is stdout (`-`) or absent. */
export function jsonOutput(json: string | undefined): NamedPath[] {
  return json && json !== '-' ? [{ flag: '--json', path: json }] : [];
}

/** The files `circuit --out DIR [--json FILE]` writes. */
export function circuitOutputs(out: string, json?: string): NamedPath[] {
  const dir = resolve(out);
  return [
    { flag: '--out (circuit.json)', path: `${dir}/circuit.json` },
    { flag: '--out (circuit.svg)', path: `${dir}/circuit.svg` },
    ...maskOutputs('--out', `${dir}/mask`),
    ...jsonOutput(json),
  ];
}

/**
 * Refuses outputs that are the same file, or that are one of the inputs, naming both options and the path.
 * Inputs may be given as plain paths (`undefined` entries are skipped) or with their option.
 */
export function checkOutputPaths(outputs: NamedPath[], inputs: (NamedPath | string | undefined)[] = []): void {
  const seen = new Map<string, string>();
  for (const o of outputs) {
    const key = resolve(o.path);
    const earlier = seen.get(key);
    if (earlier !== undefined)
      throw new LrpLensError(
        'bad-argument',
        `${o.flag} and ${earlier} would both write ${key}; the second would overwrite the first. Give them different paths.`,
      );
    seen.set(key, o.flag);
  }
  for (const input of inputs) {
    if (input === undefined) continue;
    const { flag, path } = typeof input === 'string' ? { flag: 'an input', path: input } : input;
    const writer = seen.get(resolve(path));
    if (writer !== undefined)
      throw new LrpLensError(
        'bad-argument',
        `${writer} would write ${resolve(path)}, which is ${flag === 'an input' ? 'one of the inputs' : `the ${flag} input`}; write the output somewhere else.`,
      );
  }
}
