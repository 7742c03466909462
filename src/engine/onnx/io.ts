/** Reading and writing ONNX files through the onnx-proto schema package (protobufjs). */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { externalFiles, externalTensor, linkDataFile, linkOrCopy } from './externalData';
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';
import { writeFileAtomic } from '../writeAtomic';
import { Graph } from './graph';
import { materialized } from './deferred';

export function decodeModel(bytes: Uint8Array, source = 'model'): onnx.ModelProto {
  let model: onnx.ModelProto;
  try {
    // A plain Uint8Array view: protobufjs then slices bytes fields as views (weights are never copied) and
    // avoids the deprecated Buffer() constructor it uses for empty fields of a Buffer.
    model = onnx.ModelProto.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new LrpLensError(
      'model-corrupt',
      `${source} is not a valid ONNX file (${(err as Error).message}). Re-export the model or re-download the file.`,
      err,
    );
  }
  if (!model.graph || (model.graph.node ?? []).length === 0) {
    throw new LrpLensError('model-corrupt', `${source} holds no ONNX graph. Re-export the model or re-download the file.`);
  }
  return model;
}

export function readModel(path: string): Graph {
  if (!existsSync(path)) throw new LrpLensError('model-not-found', `ONNX file not found: ${path}.`);
  if (statSync(path).size === 0) throw new LrpLensError('model-corrupt', `${path} is empty. Re-download the model.`);
  const bytes = readFileSync(path);
  const graph = new Graph(decodeModel(bytes, path));
  graph.source = { path: resolve(path), dir: dirname(resolve(path)), bytes };
  return graph;
}

/** Deferred weights (./deferred.ts) are made here: a file holds their bytes. */
export function encodeModel(graph: Graph): Uint8Array {
  const model = graph.toModel();
  model.graph!.initializer = (model.graph!.initializer ?? []).map(materialized);
  return onnx.ModelProto.encode(model).finish();
}

/** Writes atomically: a crash never leaves a half-written model behind. */
export function writeModel(graph: Graph, path: string): void {
  writeFileAtomic(path, encodeModel(graph));
}

/**
 * Writes a graph whose weights may live elsewhere into `dir/name`: external data files of its source are
 * linked beside it, and weights that are views of the source file's bytes become references into a link
 * to that file (`source.onnx`), so a multi-GB model is neither copied nor re-encoded.
 */
export function writeModelReferencingSource(graph: Graph, dir: string, name: string, referenceSource = true): string {
  mkdirSync(dir, { recursive: true });
  const src = graph.source;
  if (src) {
    for (const file of externalFiles(graph.initializers.values())) linkDataFile(src.dir, dir, file);
    let referenced = false;
    for (const [key, t] of graph.initializers) {
      const raw = t.rawData;
      if (!referenceSource || !raw || raw.length < 1024 || raw.buffer !== src.bytes.buffer) continue;
      const offset = raw.byteOffset - src.bytes.byteOffset;
      graph.initializers.set(key, externalTensor(t, SOURCE_LINK, offset, raw.length));
      referenced = true;
    }
    if (referenced) linkFile(src.path, join(dir, SOURCE_LINK));
  }
  const path = join(dir, name);
  writeModel(graph, path);
  return path;
}

const SOURCE_LINK = 'source.onnx';

function linkFile(src: string, dst: string): void {
  if (existsSync(dst)) unlinkSync(dst);
  linkOrCopy(src, dst);
}

/** Writes `graph` with initializers of at least `threshold` bytes in `dir/<dataFile>` (as exporters do past 2 GB). */
export function writeModelWithExternalData(graph: Graph, path: string, dataFile = `${basename(path)}_data`, threshold = 1024): void {
  const copy = graph.clone();
  const dir = dirname(resolve(path));
  const fd = openSync(join(dir, dataFile), 'w');
  let offset = 0;
  try {
    for (const [key, t] of copy.initializers) {
      const raw = t.rawData;
      if (!raw || raw.length < threshold) continue;
      writeSync(fd, raw, 0, raw.length, offset);
      copy.initializers.set(key, externalTensor(t, dataFile, offset, raw.length));
      offset += raw.length;
    }
  } finally {
    closeSync(fd);
  }
  writeModel(copy, path);
}
