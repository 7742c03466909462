/**
 * External data (`model.onnx_data`): weights stay in their file. Tensors keep their references; the compiled
 * graph sits in a folder beside links to the same data files, so nothing gigabyte-sized is copied or held in
 * one protobuf buffer.
 */
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export function isExternal(t: onnx.ITensorProto): boolean {
  return t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
}

export function externalRef(t: onnx.ITensorProto): ExternalRef {
  const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  if (!location) throw new LrpLensError('model-corrupt', `Tensor ${t.name} is marked external but names no data file.`);
  if (isAbsolute(location) || normalize(location).startsWith('..')) {
    throw new LrpLensError(
      'model-corrupt',
      `Tensor ${t.name} refers to data outside the model folder (${location}); this is refused for safety.`,
    );
  }
  return { location, offset: Number(entries.get('offset') ?? 0), length: Number(entries.get('length') ?? -1) };
}

/** The data files a set of tensors refers to (relative locations). */
export function externalFiles(tensors: Iterable<onnx.ITensorProto>): Set<string> {
  const files = new Set<string>();
  for (const t of tensors) if (isExternal(t)) files.add(externalRef(t).location);
  return files;
}

/** Reads one external tensor's bytes, into `into` when given (a buffer of the tensor's length, reused). */
export function readExternalBytes(t: onnx.ITensorProto, baseDir: string, into?: Uint8Array): Uint8Array {
  const { path, offset, length } = locate(t, baseDir);
  const out = into ?? Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    readFully(fd, out.subarray(0, length), offset);
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Reads one external tensor in pieces of at most `chunk.length` bytes, each handed to `use` with its byte offset
 * in the tensor: a large weight converted piece by piece never has its stored bytes in memory at once.
 */
export function readExternalChunks(
  t: onnx.ITensorProto,
  baseDir: string,
  chunk: Uint8Array,
  use: (bytes: Uint8Array, at: number) => void,
): void {
  const { path, offset, length } = locate(t, baseDir);
  const fd = openSync(path, 'r');
  try {
    for (let at = 0; at < length; at += chunk.length) {
      const piece = chunk.subarray(0, Math.min(chunk.length, length - at));
      readFully(fd, piece, offset + at);
      use(piece, at);
    }
  } finally {
    closeSync(fd);
  }
}

function locate(t: onnx.ITensorProto, baseDir: string): { path: string; offset: number; length: number } {
  const ref = externalRef(t);
  const path = join(baseDir, ref.location);
  if (!existsSync(path))
    throw new LrpLensError('model-not-found', `External data file ${path} (for ${t.name}) is missing. Download it beside the .onnx file.`);
  return { path, offset: ref.offset, length: ref.length >= 0 ? ref.length : statSync(path).size - ref.offset };
}

/** readSync may return fewer bytes than asked (large reads): read until `out` is full. */
function readFully(fd: number, out: Uint8Array, position: number): void {
  for (let done = 0; done < out.length;) {
    const n = readSync(fd, out, done, out.length - done, position + done);
    if (n === 0) throw new LrpLensError('model-corrupt', `External data ends before the tensor's ${out.length} bytes.`);
    done += n;
  }
}

/**
 * Makes `location` (relative to `fromDir`) available under the same relative path in `toDir`: a hard link
 * (onnxruntime refuses symbolic links that leave the model folder), or a copy across file systems.
 */
export function linkDataFile(fromDir: string, toDir: string, location: string): void {
  const src = join(fromDir, location);
  const dst = join(toDir, location);
  if (!existsSync(src))
    throw new LrpLensError('model-not-found', `External data file ${src} is missing. Download it beside the .onnx file.`);
  if (existsSync(dst)) return;
  mkdirSync(dirname(dst), { recursive: true });
  linkOrCopy(src, dst);
}

/** A hard link (onnxruntime refuses symbolic links that leave the model folder), or a copy across file systems. */
export function linkOrCopy(src: string, dst: string): void {
  try {
    // A hub snapshot holds symbolic links into blobs/: link the file itself, not the relative link.
    linkSync(realpathSync(src), dst);
  } catch {
    copyFileSync(src, dst);
  }
}

/** A copy of `t` whose bytes live in `location` at `offset` (relative to the model file's folder). */
export function externalTensor(t: onnx.ITensorProto, location: string, offset: number, length: number): onnx.TensorProto {
  return onnx.TensorProto.create({
    ...t,
    rawData: new Uint8Array(0),
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  });
}

/** A copy of an external tensor with its bytes read in (small constants only). */
export function embeddedTensor(t: onnx.ITensorProto, baseDir: string): onnx.TensorProto {
  return onnx.TensorProto.create({
    ...t,
    dataLocation: onnx.TensorProto.DataLocation.DEFAULT,
    externalData: [],
    rawData: readExternalBytes(t, baseDir),
  });
}
