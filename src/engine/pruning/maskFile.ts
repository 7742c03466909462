/**
 * Masks as files: `<name>.safetensors` (the bits) beside `<name>.json` (the manifest), written as a pair.
 *
 * The safetensors file holds one tensor per masked initializer, named as the ONNX initializer: dtype U8,
 * shape [ceil(n / 8)], n = the initializer's element count. Element j (row-major, the initializer's own order)
 * is bit j % 8 of byte ⌊j / 8⌋, least significant bit first (numpy's `packbits(bitorder='little')`); 1 = kept,
 * 0 = pruned; the unused high bits of the last byte are 0. The initializers' dims are in the header's
 * `__metadata__.dims` (a JSON string: name → dims), with `format` = "lrp-lens-mask" and `bit_order` = "little".
 *
 * A model's content hash is sha256 over the bytes of its .onnx file and then of each external data file it
 * refers to (in name order, each preceded by its name and length), written `sha256:<hex>`. It names the exact
 * bytes a mask was computed on. `modelFingerprint` (runtime/compile.ts) is not used: it hashes size, mtime and
 * the first and last MiB only, which is right for a cache key but would accept different weights.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LrpLensError } from '../errors';
import { externalFiles } from '../onnx/externalData';
import { readModel } from '../onnx/io';
import { resolveModel } from '../runtime/model';
import type { ModelFolder } from '../runtime/model';
import type { Graph } from '../onnx/graph';
import { tensorDims } from '../onnx/tensor';
import { achievedSparsity } from './allocation';
import type { Allocation, Mask, PrunableWeight, WeightMask } from './types';
import { decodeSafetensors, encodeSafetensors } from './safetensors';
import { maskPaths } from './maskPaths';
import type { MaskPaths } from './maskPaths';

export { maskPaths } from './maskPaths';
export type { MaskPaths } from './maskPaths';
import type { SafetensorsEntry } from './safetensors';

export const MASK_FORMAT = 'lrp-lens-mask';
export const MASK_VERSION = 1;

/** The reference set the scores were averaged over. */
export interface ReferenceSet {
  /** A file path, data set name or task id. */
  name: string;
  /** `sha256:<hex>` of the reference text or samples. */
  hash: string;
  samples?: number;
  tokens?: number;
}

/** What the caller says about a mask; `saveMask` adds the format, the achieved sparsity and the file hash. */
export interface MaskDescription {
  model: { id: string; contentHash: string };
  /** Scoring method: lrp, wanda, magnitude, gradient, random, or a feature's own (circuit, correction). */
  method: string;
  allocation: Allocation;
  structured?: boolean;
  /** The sparsity asked for (null where a search chose it, as circuit discovery does). */
  targetSparsity: number | null;
  /** The pruned weights' descriptions, for sparsity per transformer block. */
  weights?: PrunableWeight[];
  reference?: ReferenceSet | null;
  /** Numbers and curves (perplexity, task metric per sparsity, …); open for each feature to add its own. */
  metrics?: Record<string, unknown>;
  /** Anything else a feature needs to keep with the mask. */
  extra?: Record<string, unknown>;
}

export interface MaskManifest {
  format: typeof MASK_FORMAT;
  version: typeof MASK_VERSION;
  createdAt: string;
  model: { id: string; contentHash: string };
  method: string;
  allocation: Allocation;
  structured: boolean;
  sparsity: {
    target: number | null;
    overall: number;
    perWeight: Record<string, number>;
    perLayer: Record<string, number>;
  };
  reference: ReferenceSet | null;
  metrics: Record<string, unknown>;
  extra: Record<string, unknown>;
  /** The safetensors file of the pair (its base name) and its sha256, so a mismatched pair is refused. */
  tensors: { file: string; sha256: string; bitOrder: 'little' };
}

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
  writeBytes?: (fd: number, data: Uint8Array) => void;
}

// ---- bits ----------------------------------------------------------------------------------------------------

/** keep[j] → bit j % 8 of byte ⌊j / 8⌋ (LSB first). */
export function packBits(keep: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(keep.length / 8));
  for (let j = 0; j < keep.length; j++) if (keep[j] !== 0) out[j >>> 3] |= 1 << (j & 7);
  return out;
}

export function unpackBits(packed: Uint8Array, n: number): Uint8Array {
  const keep = new Uint8Array(n);
  for (let j = 0; j < n; j++) keep[j] = (packed[j >>> 3] >>> (j & 7)) & 1;
  return keep;
}

// ---- safetensors ---------------------------------------------------------------------------------------------

/** The safetensors bytes of a mask: one U8 tensor of packed bits per initializer; dims in the metadata. */
export function encodeMaskSafetensors(mask: Mask): Uint8Array {
  const names = [...mask.keys()].sort();
  const metadata = {
    format: MASK_FORMAT,
    version: String(MASK_VERSION),
    bit_order: 'little',
    dims: JSON.stringify(Object.fromEntries(names.map((n) => [n, mask.get(n)!.dims]))),
  };
  return encodeSafetensors(
    names.map((n) => ({ name: n, dtype: 'U8' as const, shape: [Math.ceil(mask.get(n)!.keep.length / 8)], data: packMaskEntry(n, mask) })),
    metadata,
  );
}

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function packMaskEntry(name: string, mask: Mask): Uint8Array {
  const m = mask.get(name)!;
  if (m.keep.length !== elementCount(m.dims)) {
    throw new LrpLensError(
      'bad-argument',
      `The mask for ${name} holds ${m.keep.length} flags but its dims [${m.dims.join(', ')}] have ${elementCount(m.dims)} elements. Recompute the mask.`,
    );
  }
  return packBits(m.keep);
}

function corrupt(source: string, why: string): LrpLensError {
  return new LrpLensError('bad-argument', `${source} is not a valid LRP Lens mask file: ${why}. Recompute the mask or restore the file.`);
}

/** Parses and checks a mask safetensors file: U8 tensors, lengths matching the recorded dims, offsets in range. */
export function decodeMaskSafetensors(bytes: Uint8Array, source = 'mask'): Mask {
  const file = decodeSafetensors(bytes, (why) => corrupt(source, why));
  const dims = recordedDims(file.metadata, source);
  const mask: Mask = new Map();
  for (const [name, entry] of file.tensors) mask.set(name, decodeEntry(name, entry, dims[name], source));
  for (const name of Object.keys(dims))
    if (!mask.has(name)) throw corrupt(source, `the metadata lists ${name} but no tensor holds its bits`);
  return mask;
}

function recordedDims(meta: Record<string, string>, source: string): Record<string, number[]> {
  if (meta.format !== MASK_FORMAT)
    throw corrupt(source, `its metadata does not say format "${MASK_FORMAT}" (a safetensors file, but not a mask)`);
  if (meta.bit_order !== 'little') throw corrupt(source, `bit order "${meta.bit_order}" is not "little"`);
  try {
    return JSON.parse(meta.dims) as Record<string, number[]>;
  } catch {
    throw corrupt(source, 'its metadata holds no readable dims');
  }
}

function decodeEntry(name: string, entry: SafetensorsEntry, dims: number[] | undefined, source: string): WeightMask {
  if (entry.dtype !== 'U8') throw corrupt(source, `tensor ${name} has dtype ${entry.dtype}, not U8`);
  if (entry.shape.length !== 1) throw corrupt(source, `tensor ${name} has shape ${JSON.stringify(entry.shape)}, not [bytes]`);
  if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0))
    throw corrupt(source, `the metadata gives no dims for ${name}`);
  const n = elementCount(dims);
  if (Math.ceil(n / 8) !== entry.shape[0])
    throw corrupt(source, `tensor ${name} holds ${entry.shape[0]} bytes but dims [${dims.join(', ')}] need ${Math.ceil(n / 8)}`);
  return { dims: [...dims], keep: unpackBits(entry.data, n) };
}

// ---- manifest ------------------------------------------------------------------------------------------------

export function buildManifest(mask: Mask, description: MaskDescription, tensors: MaskManifest['tensors']): MaskManifest {
  const achieved = achievedSparsity(mask, description.weights ?? []);
  return {
    format: MASK_FORMAT,
    version: MASK_VERSION,
    createdAt: new Date().toISOString(),
    model: { id: description.model.id, contentHash: description.model.contentHash },
    method: description.method,
    allocation: description.allocation,
    structured: description.structured ?? false,
    sparsity: { target: description.targetSparsity, overall: achieved.overall, perWeight: achieved.perWeight, perLayer: achieved.perLayer },
    reference: description.reference ?? null,
    metrics: description.metrics ?? {},
    extra: description.extra ?? {},
    tensors,
  };
}

function parseManifest(path: string): MaskManifest {
  let m: MaskManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as MaskManifest;
  } catch (err) {
    throw corrupt(path, `it is not JSON (${(err as Error).message})`);
  }
  if (m?.format !== MASK_FORMAT) throw corrupt(path, `it does not say format "${MASK_FORMAT}"`);
  if (m.version !== MASK_VERSION) throw corrupt(path, `it is version ${m.version}; this LRP Lens reads version ${MASK_VERSION}`);
  if (typeof m.model?.contentHash !== 'string' || typeof m.tensors?.sha256 !== 'string')
    throw corrupt(path, 'it lacks the model hash or the tensor file hash');
  return m;
}

// ---- save / load ---------------------------------------------------------------------------------------------

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Writes the pair atomically: both files go to temporaries in the target folder and are fsynced, then renamed
 * over the old ones (safetensors first). A failure before the renames leaves the old pair as it was and no
 * temporaries; a crash between the two renames leaves a pair whose hashes disagree, which `loadMask` refuses.
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
  writeFilesAtomically(
    [
      { path: paths.safetensors, data: tensors },
      { path: paths.manifest, data: json },
    ],
    options.writeBytes ?? writeAll,
  );
  return { manifest, paths };
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let at = 0; at < data.length;) at += writeSync(fd, data, at, data.length - at);
}

function writeFilesAtomically(files: { path: string; data: Uint8Array }[], writeBytes: (fd: number, data: Uint8Array) => void): void {
  const tag = `${process.pid}.${Date.now().toString(36)}`;
  const temps = files.map((f) => `${f.path}.${tag}.tmp`);
  try {
    files.forEach((f, i) => writeSynced(temps[i], f.data, writeBytes));
    files.forEach((f, i) => renameSync(temps[i], f.path));
  } catch (err) {
    for (const t of temps) if (existsSync(t)) unlinkSync(t);
    throw new LrpLensError(
      'runtime-failure',
      `Could not write the mask ${files[0].path}: ${(err as Error).message}. Check that ${dirname(files[0].path)} is writable and the disk has space; the previous mask files are unchanged.`,
      err,
    );
  }
  syncDir(dirname(files[0].path));
}

function writeSynced(path: string, data: Uint8Array, writeBytes: (fd: number, data: Uint8Array) => void): void {
  const fd = openSync(path, 'w');
  try {
    writeBytes(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the renames durable; some platforms (Windows) cannot open a folder, which only costs durability. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
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

// ---- model content hash --------------------------------------------------------------------------------------

/** A model file as a mask is checked against it: its graph and content hash; `id` is how the user named it. */
export function modelIdentity(onnxPath: string, id: string = onnxPath): ModelIdentity {
  const graph = readModel(onnxPath);
  return { id, contentHash: modelContentHash(graph), graph };
}

/** sha256 over a graph's .onnx file and its external data files (see the file comment); the graph must come from disk. */
export function modelContentHash(graph: Graph): string {
  const src = graph.source;
  if (!src)
    throw new LrpLensError(
      'bad-argument',
      'The model has no file to hash (it was built in memory). Read it from disk with readModel first.',
    );
  const h = createHash('sha256').update(src.bytes);
  for (const location of [...externalFiles(graph.initializers.values())].sort()) {
    const path = join(src.dir, location);
    if (!existsSync(path))
      throw new LrpLensError('model-not-found', `External data file ${path} is missing. Download it beside the .onnx file.`);
    h.update(`\0${location}\0${statSync(path).size}\0`);
    hashFile(h, path);
  }
  return `sha256:${h.digest('hex')}`;
}

function hashFile(h: ReturnType<typeof createHash>, path: string): void {
  const fd = openSync(path, 'r');
  const chunk = Buffer.alloc(1 << 22);
  try {
    for (let n = readSync(fd, chunk, 0, chunk.length, null); n > 0; n = readSync(fd, chunk, 0, chunk.length, null))
      h.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}
