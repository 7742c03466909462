/** Runs the bundled CLI (dist/cli.js, as users run it) offline, with its compile cache in a test's folder. */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

export const CLI = resolve(__dirname, '..', '..', 'dist', 'cli.js');

export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

export function cliRunner(work: string): (...args: string[]) => CliRun {
  const env = { ...process.env, LRP_LENS_CACHE: join(work, 'cache'), LRP_LENS_OFFLINE: '1', NO_COLOR: '1' };
  return (...args) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
}
