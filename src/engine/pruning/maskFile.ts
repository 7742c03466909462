/**
 * Masks as files: `<name>.safetensors` (the bits, maskBits.ts) beside `<name>.json` (the manifest, maskManifest.ts),
 * written as a pair. The manifest records the model's content hash (onnx/contentHash.ts) and the bits file's sha256,
 * so a mask made for other weights, or a pair whose halves disagree, is refused on load.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LrpLensError } from '../errors';
import { modelContentHash, sha256 } from '../onnx/contentHash';
import { readModel } from '../onnx/io';
import type { Graph } from '../onnx/graph';
import { tensorDims } from '../onnx/tensor';
import { resolveModel } from '../runtime/model';
import type { ModelFolder } from '../runtime/model';
import { writeFilesDurably } from '../writeAtomic';
import type { WriteBytes } from '../writeAtomic';
import type { Mask } from '../weights/types';
import { decodeMaskSafetensors, encodeMaskSafetensors } from './maskBits';
import { buildManifest, parseManifest } from './maskManifest';
import type { MaskDescription, MaskManifest } from './maskManifest';
import { maskPaths } from './maskPaths';
import type { MaskPaths } from './maskPaths';

export { maskPaths } from './maskPaths';
export type { MaskPaths } from './maskPaths';

/** A model a mask is checked against. */
export interface ModelIdentity {
  id: string;
  contentHash: string;
  graph: Graph;
}

export interface LoadedMask {
  mask: Mask;
  manifest: MaskManifest;
  paths: MaskPaths;
}

export interface SaveOptions {
  /** Writes bytes to an open file (tests inject a failure here); default: writeSync until all is written. */
  writeBytes?: WriteBytes;
}

/**
 * Writes the pair atomically (writeFilesDurably), safetensors first: a failure before the renames leaves the old
 * pair as it was and no temporaries; a crash between the two renames leaves a pair whose hashes disagree, which
 * `loadMask` refuses.
 */
export function saveMask(
  path: string,
  mask: Mask,
  description: MaskDescription,
  options: SaveOptions = {},
): { manifest: MaskManifest; paths: MaskPaths } {
  const paths = maskPaths(path);
  const tensors = encodeMaskSafetensors(mask);
  const manifest = buildManifest(mask, description, { file: basename(paths.safetensors), sha256: sha256(tensors), bitOrder: 'little' });
  const json = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  try {
    writeFilesDurably(
      [
        { path: paths.safetensors, data: tensors },
        { path: paths.manifest, data: json },
      ],
      options.writeBytes,
    );
  } catch (err) {
    throw new LrpLensError(
      'runtime-failure',
      `Could not write the mask ${paths.safetensors}: ${(err as Error).message}. Check that ${dirname(paths.safetensors)} is writable and the disk has space; the previous mask files are unchanged.`,
      err,
    );
  }
  return { manifest, paths };
}

/** Reads a mask pair; given a model, also refuses a mask made for another model. */
export function loadMask(path: string, options: { model?: ModelIdentity } = {}): LoadedMask {
  const paths = maskPaths(path);
  for (const p of [paths.safetensors, paths.manifest]) {
    if (!existsSync(p))
      throw new LrpLensError(
        'bad-argument',
        `Mask file ${p} not found. A mask is a pair ${basename(paths.safetensors)} + ${basename(paths.manifest)}; pass the path of either.`,
      );
  }
  const manifest = parseManifest(paths.manifest);
  const bytes = readFileSync(paths.safetensors);
  if (sha256(bytes) !== manifest.tensors.sha256) {
    throw new LrpLensError(
      'bad-argument',
      `${paths.safetensors} does not match ${paths.manifest} (its sha256 differs from the one recorded): the files were edited, mixed up, or a save was interrupted. Recompute the mask.`,
    );
  }
  const mask = decodeMaskSafetensors(bytes, paths.safetensors);
  if (options.model) checkMaskFitsModel(mask, manifest, options.model, paths.safetensors);
  return { mask, manifest, paths };
}

/** Resolves a model (folder or hub id) and loads a mask checked against it. */
export async function loadMaskForModel(
  model: string,
  maskPath: string,
  opts: { offline?: boolean } = {},
): Promise<LoadedMask & { folder: ModelFolder }> {
  const folder = await resolveModel(model, { offline: opts.offline });
  return { ...loadMask(maskPath, { model: modelIdentity(folder.onnxPath, folder.ref) }), folder };
}

/** Refuses a mask whose initializers, dims or model hash do not match the model. */
export function checkMaskFitsModel(mask: Mask, manifest: MaskManifest, model: ModelIdentity, source = 'The mask'): void {
  const refuse = (why: string): LrpLensError =>
    new LrpLensError(
      'bad-argument',
      `${source} was made for model ${manifest.model.id} (${manifest.model.contentHash}), not for ${model.id} (${model.contentHash}): ${why}. ` +
        `Compute a mask for ${model.id}, or use it with the model it was made for.`,
    );
  for (const [name, m] of mask) {
    const init = model.graph.initializers.get(name);
    if (!init) throw refuse(`the model has no initializer ${name}`);
    const dims = tensorDims(init);
    if (dims.join(',') !== m.dims.join(','))
      throw refuse(`initializer ${name} is [${dims.join(', ')}] in the model but [${m.dims.join(', ')}] in the mask`);
  }
  if (manifest.model.contentHash !== model.contentHash)
    throw refuse('the model files differ from those the mask was computed on (content hash)');
}

/** A model file as a mask is checked against it: its graph and content hash; `id` is how the user named it. */
export function modelIdentity(onnxPath: string, id: string = onnxPath): ModelIdentity {
  const graph = readModel(onnxPath);
  return { id, contentHash: modelContentHash(graph), graph };
}
