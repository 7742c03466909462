/** ONNX tensors: data types, reading initializer values, making new tensor protos. */
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool' | 'string' | 'bfloat16';
export type FloatDType = 'float32' | 'float64';

const D = onnx.TensorProto.DataType;
const toDType: Record<number, DType> = {
  [D.FLOAT]: 'float32',
  [D.DOUBLE]: 'float64',
  [D.FLOAT16]: 'float16',
  [D.BFLOAT16]: 'bfloat16',
  [D.INT64]: 'int64',
  [D.INT32]: 'int32',
  [D.INT8]: 'int8',
  [D.UINT8]: 'uint8',
  [D.BOOL]: 'bool',
  [D.STRING]: 'string',
};

export function dtypeOf(code: number): DType {
  const t = toDType[code];
  if (!t) throw new LrpLensError('unsupported-graph', `ONNX tensor data type ${code} is not supported.`);
  return t;
}

export function dtypeCode(t: DType): number {
  for (const [code, name] of Object.entries(toDType)) if (name === t) return Number(code);
  throw new LrpLensError('unsupported-graph', `Unknown data type ${t}.`);
}

export function num(v: number | Long | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : (v as Long).toNumber();
}

type Long = { toNumber(): number };

export function tensorDims(t: onnx.ITensorProto): number[] {
  return (t.dims ?? []).map(num);
}

export function tensorSize(t: onnx.ITensorProto): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
}

function copyAligned(raw: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(raw.byteLength);
  new Uint8Array(out).set(raw);
  return out;
}

/**
 * Values of a small constant tensor (shapes, axes, scalars) as numbers. Weights are never read this way:
 * they stay as the raw bytes the model file holds.
 */
export function tensorValues(t: onnx.ITensorProto): number[] {
  const dtype = dtypeOf(t.dataType ?? 0);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new LrpLensError('unsupported-graph', `Tensor ${t.name} is stored as external data where a small constant was expected.`);
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  if (raw) {
    const buf = copyAligned(raw);
    switch (dtype) {
      case 'float32':
        return Array.from(new Float32Array(buf));
      case 'float64':
        return Array.from(new Float64Array(buf));
      case 'int64':
        return Array.from(new BigInt64Array(buf), (x) => Number(x));
      case 'int32':
        return Array.from(new Int32Array(buf));
      case 'int8':
        return Array.from(new Int8Array(buf));
      case 'uint8':
      case 'bool':
        return Array.from(new Uint8Array(buf));
      default:
        throw new LrpLensError('unsupported-graph', `Reading ${dtype} constant ${t.name} is not supported.`);
    }
  }
  switch (dtype) {
    case 'float32':
      return [...(t.floatData ?? [])];
    case 'float64':
      return [...(t.doubleData ?? [])];
    case 'int64':
      return (t.int64Data ?? []).map(num);
    case 'int32':
    case 'int8':
    case 'uint8':
    case 'bool':
      return [...(t.int32Data ?? [])];
    default:
      throw new LrpLensError('unsupported-graph', `Reading ${dtype} constant ${t.name} is not supported.`);
  }
}

/** Float data of a tensor as a Float64Array (tests, small weights). */
export function tensorFloats(t: onnx.ITensorProto): Float64Array {
  return Float64Array.from(tensorValues(t));
}

/**
 * IEEE binary16 bits → value: (−1)^s · 2^(e−15) · (1 + m/1024); subnormal (e = 0): (−1)^s · 2^−24 · m;
 * e = 31: ±∞ (m = 0) or NaN.
 */
export function float16ToFloat32(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

export function makeTensor(name: string, dtype: DType, dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): onnx.TensorProto {
  let raw: Uint8Array;
  switch (dtype) {
    case 'float32':
      raw = new Uint8Array(Float32Array.from(values as ArrayLike<number>).buffer);
      break;
    case 'float64':
      raw = new Uint8Array(Float64Array.from(values as ArrayLike<number>).buffer);
      break;
    case 'int64':
      raw = new Uint8Array(BigInt64Array.from(Array.from(values as ArrayLike<number>, (v) => BigInt(v))).buffer);
      break;
    case 'int32':
      raw = new Uint8Array(Int32Array.from(values as ArrayLike<number>).buffer);
      break;
    case 'bool':
    case 'uint8':
      raw = Uint8Array.from(values as ArrayLike<number>);
      break;
    default:
      throw new LrpLensError('unsupported-graph', `Creating ${dtype} tensors is not supported.`);
  }
  return onnx.TensorProto.create({ name, dataType: dtypeCode(dtype), dims, rawData: raw });
}

/** A tensor whose bytes are given as-is (weights): no copy. */
export function makeRawTensor(name: string, dtype: DType, dims: number[], raw: Uint8Array): onnx.TensorProto {
  return onnx.TensorProto.create({ name, dataType: dtypeCode(dtype), dims, rawData: raw });
}
