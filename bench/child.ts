/** One measurement in its own process, so its peak RSS is its own. */
import { spawnSync } from 'node:child_process';
import { LrpLensError } from '../src/engine/errors';

/** Runs this benchmark script again with `args` (a hidden subcommand) and parses the JSON it prints on stdout. */
export function runBenchChild<T>(args: string[], failure: string): T {
  const res = spawnSync(process.execPath, [process.argv[1], ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (res.status !== 0) throw new LrpLensError('runtime-failure', `${failure}: ${res.stderr.trim()}`);
  return JSON.parse(res.stdout) as T;
}
