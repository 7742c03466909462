/**
 * The weights block-wise execution feeds its segment graphs: read when a segment needs them — a view of the
 * model's bytes (embedded, aligned float32), read from the external data file, or made from a deferred recipe
 * (fp16 widened, quantised dequantised; ../onnx/deferred.ts) — and held until dropped. One copy serves every
 * graph. The store counts what it holds, so a run can show that it streamed (`maxHeldBytes` < `bytes`).
 */
import type { onnx } from 'onnx-proto';
import { dtypeOf, tensorDims } from '../onnx/tensor';
import { isExternal, readExternalBytes } from '../onnx/externalData';
import { deferredValues, isDeferred } from '../onnx/deferred';
import { LrpLensError } from '../errors';
import { hostTensor } from './session';
import type { HostTensor } from './session';

export class WeightStore {
  private cache = new Map<string, HostTensor>();
  /**
   * Buffers of dropped weights, by byte length, for the next weight of the same size (the next block's): a fresh
   * buffer costs a page fault per 4 KiB on first touch, several times the reading and converting (measured).
   */
  private pool = new Map<number, ArrayBuffer[]>();
  /** Weights whose buffer the store made (read or converted), not views of the model's bytes. */
  private owned = new Set<string>();
  private held = 0;
  private maxHeld = 0;
  /** How many times each weight was read or made (more than once: it was dropped and read again). */
  readonly loads = new Map<string, number>();
  /** Time spent reading and converting weights, ms. */
  readMs = 0;

  constructor(
    private readonly tensors: Map<string, onnx.ITensorProto>,
    private readonly dir: string | undefined,
  ) {}

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  /** Bytes of all the weights as the store holds them (float32 or float64). */
  get bytes(): number {
    let n = 0;
    for (const name of this.tensors.keys()) n += this.bytesOf(name);
    return n;
  }

  bytesOf(name: string): number {
    const t = this.tensors.get(name);
    if (!t) return 0;
    return tensorDims(t).reduce((a, b) => a * b, 1) * (dtypeOf(t.dataType ?? 0) === 'float64' ? 8 : 4);
  }

  /** Bytes held now, and the most held at once so far. */
  get heldBytes(): number {
    return this.held;
  }

  get maxHeldBytes(): number {
    return this.maxHeld;
  }

  tensor(name: string): HostTensor {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const t = this.tensors.get(name);
    if (!t) throw new LrpLensError('unsupported-graph', `Block-wise execution needs weight '${name}', which the model does not hold.`);
    const t0 = performance.now();
    const own = isDeferred(t) || isExternal(t);
    const reuse = own ? this.pool.get(this.bytesOf(name))?.pop() : undefined;
    const data = values(t, this.dir, reuse);
    // A recipe that makes its own array (dequantisation) leaves the buffer for another weight.
    if (reuse && data.buffer !== reuse) this.pool.get(reuse.byteLength)!.push(reuse);
    this.readMs += performance.now() - t0;
    if (own) this.owned.add(name);
    // A view of the weight's bytes, not a copy.
    const value = data instanceof Float32Array ? hostTensor('float32', data, tensorDims(t)) : hostTensor('float64', data, tensorDims(t));
    this.cache.set(name, value);
    this.loads.set(name, (this.loads.get(name) ?? 0) + 1);
    this.held += this.bytesOf(name);
    this.maxHeld = Math.max(this.maxHeld, this.held);
    return value;
  }

  /** Forget weights (streaming a model larger than memory block by block); the next read reads them again. */
  drop(names: Iterable<string>): void {
    for (const n of names) {
      const value = this.cache.get(n);
      if (!value) continue;
      this.cache.delete(n);
      this.held -= this.bytesOf(n);
      if (!this.owned.has(n)) continue;
      const buffer = (value.data as Float32Array | Float64Array).buffer as ArrayBuffer;
      const free = this.pool.get(buffer.byteLength) ?? [];
      free.push(buffer);
      this.pool.set(buffer.byteLength, free);
    }
  }

  /** Bytes of dropped weights' buffers kept for reuse. */
  get pooledBytes(): number {
    let n = 0;
    for (const [size, free] of this.pool) n += size * free.length;
    return n;
  }
}

/** A weight's values: made into `reuse` (a buffer of its size) where they are read or converted. */
function values(t: onnx.ITensorProto, dir: string | undefined, reuse: ArrayBuffer | undefined): Float32Array | Float64Array {
  if (isDeferred(t)) return deferredValues(t, reuse && new Float32Array(reuse));
  const dtype = dtypeOf(t.dataType ?? 0);
  const wide = dtype === 'float64';
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new LrpLensError('unsupported-graph', `Weight '${t.name}' is ${dtype}; block-wise execution feeds float32 or float64 weights.`);
  const raw = isExternal(t)
    ? readExternalBytes(t, dir ?? '.', reuse && new Uint8Array(reuse))
    : t.rawData && t.rawData.length
      ? t.rawData
      : undefined;
  if (!raw) return wide ? Float64Array.from(t.doubleData ?? []) : Float32Array.from(t.floatData ?? []);
  const size = wide ? 8 : 4;
  const buffer = raw.byteOffset % size === 0 ? raw.buffer : (raw.slice().buffer as ArrayBuffer);
  const offset = raw.byteOffset % size === 0 ? raw.byteOffset : 0;
  return wide ? new Float64Array(buffer, offset, raw.byteLength / 8) : new Float32Array(buffer, offset, raw.byteLength / 4);
}
