/** Reading and writing ONNX files through the onnx-proto schema package (protobufjs). */
import { readFileSync, writeFileSync, renameSync, existsSync, statSync } from 'node:fs';
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';
import { Graph } from './graph';

export function decodeModel(bytes: Uint8Array, source = 'model'): onnx.ModelProto {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new LrpLensError('model-corrupt', `${source} is not a valid ONNX file (${(err as Error).message}). Re-export the model or re-download the file.`, err);
  }
  if (!model.graph || (model.graph.node ?? []).length === 0) {
    throw new LrpLensError('model-corrupt', `${source} holds no ONNX graph. Re-export the model or re-download the file.`);
  }
  return model;
}

export function readModel(path: string): Graph {
  if (!existsSync(path)) throw new LrpLensError('model-not-found', `ONNX file not found: ${path}.`);
  if (statSync(path).size === 0) throw new LrpLensError('model-corrupt', `${path} is empty. Re-download the model.`);
  return new Graph(decodeModel(readFileSync(path), path));
}

export function encodeModel(graph: Graph): Uint8Array {
  return onnx.ModelProto.encode(graph.toModel()).finish();
}

/** Writes atomically: a crash never leaves a half-written model behind. */
export function writeModel(graph: Graph, path: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, encodeModel(graph));
  renameSync(tmp, path);
}
