/**
 * A small builder that appends ONNX nodes to a graph with fresh names. The relevance compiler emits its
 * backward pass with it, and the tests build their synthetic models with it.
 */
import { onnx } from 'onnx-proto';
import { Graph } from './graph';
import type { OnnxNode } from './graph';
import { makeTensor, dtypeCode } from './tensor';
import type { DType } from './tensor';

export type AttrValue = number | number[] | string | onnx.ITensorProto | { float: number } | { floats: number[] };

const A = onnx.AttributeProto.AttributeType;

export function makeAttribute(name: string, value: AttrValue): onnx.AttributeProto {
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? onnx.AttributeProto.create({ name, type: A.INT, i: value })
      : onnx.AttributeProto.create({ name, type: A.FLOAT, f: value });
  }
  if (typeof value === 'string') return onnx.AttributeProto.create({ name, type: A.STRING, s: Buffer.from(value, 'utf8') });
  if (Array.isArray(value)) return onnx.AttributeProto.create({ name, type: A.INTS, ints: value });
  if ('float' in value) return onnx.AttributeProto.create({ name, type: A.FLOAT, f: value.float });
  if ('floats' in value) return onnx.AttributeProto.create({ name, type: A.FLOATS, floats: value.floats });
  return onnx.AttributeProto.create({ name, type: A.TENSOR, t: value });
}

export function valueInfo(name: string, dtype: DType, shape: (number | string)[]): onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: dtypeCode(dtype),
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

export class GraphBuilder {
  private counter = 0;
  private constCache = new Map<string, string>();

  constructor(
    readonly graph: Graph,
    private readonly prefix = 'lrp',
  ) {}

  fresh(hint: string): string {
    return `${this.prefix}/${hint}_${this.counter++}`;
  }

  /** Appends a node; returns its output names. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs = 1, hint?: string, domain = ''): string[] {
    const name = this.fresh(hint ?? opType);
    const outs = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? name : `${name}:${i}`));
    const n: OnnxNode = {
      name,
      opType,
      domain,
      inputs,
      outputs: outs,
      attributes: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
    };
    this.graph.nodes.push(n);
    this.graph.invalidate();
    return outs;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.node(opType, inputs, attrs, 1, hint)[0];
  }

  /** A constant initializer, shared between identical requests. */
  constant(dtype: DType, dims: number[], values: number[], hint = 'const'): string {
    const key = `${dtype}|${dims.join(',')}|${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh(hint);
    this.graph.initializers.set(name, makeTensor(name, dtype, dims, values));
    this.constCache.set(key, name);
    return name;
  }

  scalar(dtype: DType, value: number): string {
    return this.constant(dtype, [], [value], 'scalar');
  }

  ints(values: number[]): string {
    return this.constant('int64', [values.length], values, 'ints');
  }

  initializer(name: string, dtype: DType, dims: number[], values: ArrayLike<number>): string {
    this.graph.initializers.set(name, makeTensor(name, dtype, dims, values));
    return name;
  }

  // Common ops, named as ONNX names them.
  Add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  Sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  Mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  Div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  Neg(a: string): string {
    return this.op('Neg', [a]);
  }
  MatMul(a: string, b: string): string {
    return this.op('MatMul', [a, b]);
  }
  Shape(a: string): string {
    return this.op('Shape', [a]);
  }
  Reshape(a: string, shape: string): string {
    return this.op('Reshape', [a, shape]);
  }
  Transpose(a: string, perm: number[]): string {
    return this.op('Transpose', [a], { perm });
  }
  ReduceSum(a: string, axes: number[], keepdims: boolean): string {
    // Axes became an input at opset 13.
    if (this.graph.opset < 13) return this.op('ReduceSum', [a], { axes, keepdims: keepdims ? 1 : 0 });
    return this.op('ReduceSum', [a, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  Cast(a: string, to: DType): string {
    return this.op('Cast', [a], { to: dtypeCode(to) });
  }
}

/** A fresh empty model at the given opset, for building synthetic models and tests. */
export function emptyGraph(opset: number, name = 'graph'): Graph {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'lrp-lens',
    opsetImport: [{ domain: '', version: opset }],
    graph: onnx.GraphProto.create({ name }),
  });
  return new Graph(model);
}
