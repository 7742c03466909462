/**
 * Applying a mask: zeroing the pruned weights of a graph in memory (`applyMaskToGraph`), or writing a pruned
 * model folder in the transformers.js layout (`exportPrunedModel`). A zeroed element is all-zero bytes in every
 * float type (float32, float16, bfloat16, float64), so zeroing never decodes a weight. An initializer shared by
 * several nodes (tied embeddings) is zeroed for all of them.
 */
import {
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';
import { externalFiles, externalRef, isExternal, readExternalBytes } from '../onnx/externalData';
import type { Graph } from '../onnx/graph';
import { readModel, writeModel } from '../onnx/io';
import { dtypeOf, tensorDims } from '../onnx/tensor';
import { resolveModel } from '../runtime/model';
import type { Mask, WeightMask } from '../weights/types';

export interface ExportOptions {
  /** Replace `outDir` if it exists (default: refuse). */
  overwrite?: boolean;
}

export interface ExportReport {
  dir: string;
  onnxPath: string;
  /** Whether the pruned weights live in external data files, as the source's did. */
  externalData: boolean;
  maskedElements: number;
  prunedElements: number;
  /** All files of the exported folder. */
  folderBytes: number;
  /** The masked weights as stored (dense). */
  maskedDenseBytes: number;
  /** The folder with the masked weights stored as a bitmask (1 bit per element) plus the kept values. */
  bitmaskFolderBytes: number;
  /**
   * The folder with the masked weights stored as CSR over their stored rows: kept values, uint16 column indices
   * (int32 past 65,536 columns) and int32 row pointers.
   */
  csrFolderBytes: number;
}

const ELEMENT_BYTES: Record<string, number> = { float32: 4, float16: 2, bfloat16: 2, float64: 8 };

/** Top-level files copied beside the pruned model (config, generation config, tokenizer, chat template, …). */
const COPIED_EXTENSIONS = new Set(['.json', '.txt', '.model', '.jinja', '.md']);

/** A copy of `graph` whose masked initializers are zeroed in memory (external ones are read in and embedded). */
export function applyMaskToGraph(graph: Graph, mask: Mask): Graph {
  checkMaskOnGraph(graph, mask);
  const out = graph.clone();
  for (const [name, m] of mask) {
    const t = out.initializers.get(name)!;
    out.initializers.set(name, zeroedTensor(t, m, graph.source?.dir));
  }
  return out;
}

/**
 * Writes `<outDir>` with `onnx/model.onnx` (masked weights zeroed; external data kept external, in files of
 * the same names and layout) and the source's config, generation config and tokenizer files. The folder is
 * built beside `outDir` and renamed into place, so a failed export leaves no half-written model.
 */
export async function exportPrunedModel(source: string, mask: Mask, outDir: string, options: ExportOptions = {}): Promise<ExportReport> {
  const model = await resolveModel(source, { offline: true });
  const target = resolve(outDir);
  if (target === resolve(model.dir))
    throw new LrpLensError('bad-argument', `The pruned model cannot overwrite its source ${model.dir}. Choose another output folder.`);
  if (existsSync(target) && !options.overwrite)
    throw new LrpLensError('bad-argument', `${target} already exists. Choose another output folder or allow overwriting it.`);
  const graph = readModel(model.onnxPath);
  checkMaskOnGraph(graph, mask);
  const partial = `${target}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  try {
    copyModelFiles(model.dir, partial);
    const onnxPath = join(partial, 'onnx', 'model.onnx');
    const external = writePrunedGraph(graph, mask, onnxPath);
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(partial, target);
    return {
      dir: target,
      onnxPath: join(target, 'onnx', 'model.onnx'),
      externalData: external,
      ...sizes(graph, mask, folderBytes(target)),
    };
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    if (LrpLensError.is(err)) throw err;
    throw new LrpLensError(
      'runtime-failure',
      `Exporting the pruned model to ${target} failed: ${(err as Error).message}. Check that the folder is writable and the disk has space.`,
      err,
    );
  }
}

function copyModelFiles(from: string, to: string): void {
  mkdirSync(join(to, 'onnx'), { recursive: true });
  for (const f of readdirSync(from)) {
    if (COPIED_EXTENSIONS.has(extname(f)) && statSync(join(from, f)).isFile()) copyFileSync(join(from, f), join(to, f));
  }
}

/** Writes the graph with masked weights zeroed; returns whether any masked weight lives in external data. */
function writePrunedGraph(graph: Graph, mask: Mask, onnxPath: string): boolean {
  const srcDir = graph.source!.dir;
  const dstDir = dirname(onnxPath);
  // Reflinks where the file system has them; a plain copy elsewhere. Never a hard link: the copy is edited.
  for (const file of externalFiles(graph.initializers.values())) {
    mkdirSync(dirname(join(dstDir, file)), { recursive: true });
    copyFileSync(join(srcDir, file), join(dstDir, file), constants.COPYFILE_FICLONE);
  }
  let external = false;
  const out = graph.clone();
  for (const [name, m] of mask) {
    const t = out.initializers.get(name)!;
    if (isExternal(t)) {
      zeroExternalInPlace(t, m, dstDir);
      external = true;
    } else {
      out.initializers.set(name, zeroedTensor(t, m));
    }
  }
  writeModel(out, onnxPath);
  return external;
}

function zeroExternalInPlace(t: onnx.ITensorProto, m: WeightMask, dir: string): void {
  const ref = externalRef(t);
  const length = m.keep.length * elementBytes(t);
  const bytes = new Uint8Array(length);
  const fd = openSync(join(dir, ref.location), 'r+');
  try {
    readSync(fd, bytes, 0, length, ref.offset);
    zeroElements(bytes, m.keep, elementBytes(t));
    writeSync(fd, bytes, 0, length, ref.offset);
  } finally {
    closeSync(fd);
  }
}

// ---- zeroing -------------------------------------------------------------------------------------------------

function elementBytes(t: onnx.ITensorProto): number {
  return ELEMENT_BYTES[dtypeOf(t.dataType ?? 0)];
}

/** A copy of an initializer with the masked elements zeroed, its bytes embedded. */
function zeroedTensor(t: onnx.ITensorProto, m: WeightMask, baseDir?: string): onnx.TensorProto {
  const es = elementBytes(t);
  if (isExternal(t) || (t.rawData && t.rawData.length > 0)) {
    if (isExternal(t) && !baseDir)
      throw new LrpLensError(
        'bad-argument',
        `Initializer ${t.name} lives in external data but the graph has no source folder. Read the model with readModel.`,
      );
    // A copy: raw data is a view of the source file's bytes, which must stay as they are.
    const bytes = new Uint8Array(isExternal(t) ? readExternalBytes(t, baseDir!) : t.rawData!);
    zeroElements(bytes, m.keep, es);
    return onnx.TensorProto.create({ ...t, dataLocation: onnx.TensorProto.DataLocation.DEFAULT, externalData: [], rawData: bytes });
  }
  // Values kept in the typed fields (float_data; int32_data for 16-bit floats; double_data).
  const zero = <T>(values: T[] | null | undefined, z: T): T[] => (values ?? []).map((v, j) => (m.keep[j] === 0 ? z : v));
  return onnx.TensorProto.create({
    ...t,
    floatData: zero(t.floatData, 0),
    int32Data: zero(t.int32Data, 0),
    doubleData: zero(t.doubleData, 0),
  });
}

/** Sets each element whose keep flag is 0 to all-zero bytes (through a wider view where the bytes are aligned). */
function zeroElements(bytes: Uint8Array, keep: Uint8Array, es: number): void {
  const aligned = bytes.byteOffset % es === 0;
  const view = !aligned
    ? null
    : es === 4
      ? new Uint32Array(bytes.buffer, bytes.byteOffset, keep.length)
      : es === 2
        ? new Uint16Array(bytes.buffer, bytes.byteOffset, keep.length)
        : null;
  if (view) {
    for (let j = 0; j < keep.length; j++) if (keep[j] === 0) view[j] = 0;
    return;
  }
  for (let j = 0; j < keep.length; j++) if (keep[j] === 0) bytes.fill(0, j * es, (j + 1) * es);
}

/** Every masked initializer exists, has the mask's dims and a float type. */
function checkMaskOnGraph(graph: Graph, mask: Mask): void {
  for (const [name, m] of mask) {
    const t = graph.initializers.get(name);
    if (!t)
      throw new LrpLensError(
        'bad-argument',
        `The mask names initializer ${name}, which the model does not have. Use a mask made for this model.`,
      );
    const dims = tensorDims(t);
    if (dims.join(',') !== m.dims.join(','))
      throw new LrpLensError(
        'bad-argument',
        `The mask for ${name} is [${m.dims.join(', ')}] but the model's initializer is [${dims.join(', ')}]. Use a mask made for this model.`,
      );
    if (m.keep.length !== dims.reduce((a, b) => a * b, 1))
      throw new LrpLensError(
        'bad-argument',
        `The mask for ${name} holds ${m.keep.length} flags for [${dims.join(', ')}]. Recompute the mask.`,
      );
    const dtype = dtypeOf(t.dataType ?? 0);
    if (!(dtype in ELEMENT_BYTES))
      throw new LrpLensError(
        'unsupported-graph',
        `Initializer ${name} is ${dtype}; only float32, float16, bfloat16 and float64 weights can be pruned. Prune the unquantised model.`,
      );
  }
}

// ---- sizes ---------------------------------------------------------------------------------------------------

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    total += entry.isDirectory() ? folderBytes(p) : statSync(p).size;
  }
  return total;
}

function sizes(graph: Graph, mask: Mask, folder: number): Omit<ExportReport, 'dir' | 'onnxPath' | 'externalData'> {
  let dense = 0;
  let bitmask = 0;
  let csr = 0;
  let masked = 0;
  let pruned = 0;
  for (const [name, m] of mask) {
    const es = elementBytes(graph.initializers.get(name)!);
    const kept = m.keep.reduce((a, k) => a + (k === 0 ? 0 : 1), 0);
    const rows = m.dims.length > 1 ? m.dims[0] : 1;
    const cols = m.keep.length / Math.max(rows, 1);
    dense += m.keep.length * es;
    bitmask += Math.ceil(m.keep.length / 8) + kept * es;
    csr += kept * (es + (cols <= 65536 ? 2 : 4)) + (rows + 1) * 4;
    masked += m.keep.length;
    pruned += m.keep.length - kept;
  }
  return {
    maskedElements: masked,
    prunedElements: pruned,
    folderBytes: folder,
    maskedDenseBytes: dense,
    bitmaskFolderBytes: folder - dense + bitmask,
    csrFolderBytes: folder - dense + csr,
  };
}
