/** Options every command takes (--dtype, --quiet), applied once before the command runs. */
import { Option } from 'commander';
import type { Command } from 'commander';
import { setHubDefaults } from '../engine/hub/hubDefaults';
import { DTYPES } from '../engine/hub/variants';
import type { Dtype } from '../engine/hub/variants';
import { ProgressDisplay, setProgressDisplay } from './progressDisplay';

export interface RunOptions {
  dtype?: Dtype;
  quiet?: boolean;
}

export function addRunOptions(program: Command): void {
  program
    .addOption(
      new Option('--dtype <dtype>', 'hub models: the precision variant (default: the smallest the engine attributes exactly)').choices(
        DTYPES,
      ),
    )
    .option('--quiet', 'no progress on stderr')
    .hook('preAction', () => configureRun(program.opts<RunOptions>()));
}

export function configureRun(o: RunOptions): void {
  const display = new ProgressDisplay(process.stderr, !!o.quiet);
  setProgressDisplay(display);
  setHubDefaults({ dtype: o.dtype, onProgress: display.listener });
}
