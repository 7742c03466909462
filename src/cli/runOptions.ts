/** Options every command takes (--dtype, --quiet, --force, --memory-limit), applied once before the command runs. */
import { Option } from 'commander';
import type { Command } from 'commander';
import { setHubDefaults } from '../engine/hub/hubDefaults';
import { DTYPES } from '../engine/hub/variants';
import { parseMemorySize, setMemoryGuard } from '../engine/memory/memoryGuard';
import type { Dtype } from '../engine/hub/variants';
import { ProgressDisplay, setProgressDisplay } from './progressDisplay';

export interface RunOptions {
  dtype?: Dtype;
  quiet?: boolean;
  force?: boolean;
  memoryLimit?: string;
}

export function addRunOptions(program: Command): void {
  program
    .addOption(
      new Option('--dtype <dtype>', 'hub models: the precision variant (default: the smallest the engine attributes exactly)').choices(
        DTYPES,
      ),
    )
    .option('--quiet', 'no progress on stderr')
    .option('--force', 'run even when the memory estimate exceeds the memory available')
    .option('--memory-limit <size>', 'refuse runs estimated above this (e.g. 4GB; default: the memory available)')
    .hook('preAction', () => configureRun(program.opts<RunOptions>()));
}

export function configureRun(o: RunOptions): void {
  const display = new ProgressDisplay(process.stderr, !!o.quiet);
  setProgressDisplay(display);
  setHubDefaults({ dtype: o.dtype, onProgress: display.listener });
  setMemoryGuard({ force: o.force, limit: o.memoryLimit === undefined ? undefined : parseMemorySize(o.memoryLimit) });
}
