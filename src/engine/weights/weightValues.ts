/**
 * The values of prunable weights as the model stores them (float32 or float16 bytes, embedded or external),
 * and as float32 numbers for scoring.
 */
import type { Graph } from '../onnx/graph';
import { dtypeOf, float16ToFloat32 } from '../onnx/tensor';
import { isExternal, readExternalBytes } from '../onnx/externalData';
import { LrpLensError } from '../errors';
import type { WeightMask } from './types';

/** A weight's stored bytes (a view for embedded weights; read from the data file for external ones). */
export function storedBytes(graph: Graph, name: string): Uint8Array {
  const t = graph.initializers.get(name);
  if (!t) throw new LrpLensError('bad-argument', `The model has no initializer '${name}'.`);
  if (isExternal(t)) return readExternalBytes(t, graph.source?.dir ?? '.');
  if (t.rawData && t.rawData.length > 0) return t.rawData;
  if (t.floatData && t.floatData.length > 0) return new Uint8Array(Float32Array.from(t.floatData).buffer);
  throw new LrpLensError('unsupported-graph', `Initializer '${name}' holds no raw data that can be pruned.`);
}

export function storedDtype(graph: Graph, name: string): 'float32' | 'float16' {
  const dtype = dtypeOf(graph.initializers.get(name)?.dataType ?? 0);
  if (dtype !== 'float32' && dtype !== 'float16')
    throw new LrpLensError('unsupported-graph', `Weight '${name}' is ${dtype}; only float32 and float16 weights can be pruned.`);
  return dtype;
}

function aligned(bytes: Uint8Array, size: number): ArrayBuffer {
  if (bytes.byteOffset % size === 0) return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

/** A weight's values as float32, in storage order. */
export function weightValues(graph: Graph, name: string): Float32Array {
  const bytes = storedBytes(graph, name);
  if (storedDtype(graph, name) === 'float32') return new Float32Array(aligned(bytes, 4));
  const half = new Uint16Array(aligned(bytes, 2));
  const out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = float16ToFloat32(half[i]);
  return out;
}

/** The stored bytes with pruned elements zeroed (+0 in float32 and float16 alike). */
export function maskedBytes(bytes: Uint8Array, elementSize: 2 | 4, mask: WeightMask): Uint8Array {
  if (mask.keep.length * elementSize !== bytes.byteLength) {
    throw new LrpLensError(
      'bad-argument',
      `The mask has ${mask.keep.length} elements but the weight has ${bytes.byteLength / elementSize}.`,
    );
  }
  const out = new Uint8Array(bytes);
  for (let i = 0; i < mask.keep.length; i++) if (!mask.keep[i]) out.fill(0, i * elementSize, (i + 1) * elementSize);
  return out;
}
