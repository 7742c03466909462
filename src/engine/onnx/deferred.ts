/**
 * Deferred weights: float32 initializers that canonicalisation derives from the file's weights (fp16 / bf16
 * widened, quantised weights dequantised) kept as a recipe — the source tensor (a view of the model's bytes or a
 * reference into its external data) and the conversion — instead of a new array. The compile needs their type
 * and shape only; block-wise execution makes the values one block at a time when the segment that reads them
 * runs (runtime/blockwise.ts), so a model whose float32 weights exceed memory still compiles and attributes.
 * Anything that needs the bytes of a deferred tensor (encodeModel, Graph.constantValues) makes them.
 */
import { onnx } from 'onnx-proto';
import { makeRawTensor } from './tensor';

/** Below this many elements a derived weight is made at once (scalars and small vectors the rules read). */
export const DEFER_MIN_ELEMENTS = 1024;

/** A recipe fills `out` when given (a reused buffer of the tensor's size) and returns the values. */
export type Recipe = (out?: Float32Array) => Float32Array;

const recipes = new WeakMap<onnx.ITensorProto, Recipe>();
const deferring = new WeakSet<object>();

/** Canonicalisation of `graph` defers derived weights (block-wise execution asks for it). */
export function deferWeightsOf(graph: object): void {
  deferring.add(graph);
}

export function defersWeights(graph: object): boolean {
  return deferring.has(graph);
}

/** A float32 tensor of `dims` whose values `make` computes when they are needed (each call a new array). */
export function deferredTensor(name: string, dims: number[], make: Recipe): onnx.TensorProto {
  const t = onnx.TensorProto.create({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims });
  recipes.set(t, make);
  return t;
}

export function isDeferred(t: onnx.ITensorProto): boolean {
  return recipes.has(t);
}

/** The values of a deferred tensor, made now (into `out` when the recipe can). */
export function deferredValues(t: onnx.ITensorProto, out?: Float32Array): Float32Array {
  const make = recipes.get(t);
  if (!make) throw new Error(`Tensor ${t.name} is not deferred.`);
  return make(out);
}

/** `t` with its bytes: a deferred tensor made into an embedded one, any other tensor as it is. */
export function materialized(t: onnx.ITensorProto): onnx.ITensorProto {
  if (!recipes.has(t)) return t;
  const v = deferredValues(t);
  return makeRawTensor(t.name ?? '', 'float32', (t.dims ?? []).map(Number), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

/** `values` now, or deferred when the graph defers weights and the tensor is large. */
export function derivedTensor(graph: object, name: string, dims: number[], make: Recipe): onnx.ITensorProto {
  const size = dims.reduce((a, b) => a * b, 1);
  if (defersWeights(graph) && size >= DEFER_MIN_ELEMENTS) return deferredTensor(name, dims, make);
  const v = make();
  return makeRawTensor(name, 'float32', dims, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}
