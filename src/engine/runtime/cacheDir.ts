/** The cache folder (compiled graphs, hub downloads, pruned models): its own module, light enough for the extension host. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function cacheDir(): string {
  return process.env.LRP_LENS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'lrp-lens');
}
