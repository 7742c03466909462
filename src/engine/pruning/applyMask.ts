/**
 * "Apply Mask": later attributions run on the pruned model. The pruned model is exported once per mask into the
 * cache, `<cacheDir>/pruned/<sha256 of the mask's safetensors>`, and reused while the mask file is unchanged.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from '../runtime/cacheDir';
import { exportPrunedModel } from './export';
import { loadMaskForModel } from './maskFile';
import { achievedSparsity } from './allocation';

export interface PrunedModel {
  /** The exported pruned model folder (transformers.js layout). */
  dir: string;
  /** The mask's safetensors file. */
  mask: string;
  /** sha256 of the mask's safetensors file (hex). */
  sha256: string;
  /** Fraction of the masked weights that are pruned. */
  sparsity: number;
  method: string;
  /** Whether the folder already existed in the cache. */
  cached: boolean;
}

/** Loads the mask (refused when it was made for another model) and exports the pruned model unless cached. */
export async function prunedModelFor(model: string, maskPath: string, opts: { offline?: boolean } = {}): Promise<PrunedModel> {
  const loaded = await loadMaskForModel(model, maskPath, opts);
  const { folder } = loaded;
  // loadMask checked the file against this hash.
  const sha256 = loaded.manifest.tensors.sha256.replace(/^sha256:/, '');
  const dir = join(cacheDir(), 'pruned', sha256);
  const cached = existsSync(join(dir, 'onnx', 'model.onnx'));
  if (!cached) await exportPrunedModel(folder.dir, loaded.mask, dir, { overwrite: true });
  return {
    dir,
    mask: loaded.paths.safetensors,
    sha256,
    sparsity: achievedSparsity(loaded.mask).overall,
    method: loaded.manifest.method,
    cached,
  };
}
