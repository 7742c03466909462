/**
 * A small graph IR over the ONNX protobuf: nodes with named inputs/outputs, initializers kept as the
 * protobuf tensors the file held (weights are never copied), topological order and use-def maps.
 */
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';
import { dtypeOf, num, tensorValues } from './tensor';
import type { DType } from './tensor';
import { embeddedTensor, isExternal } from './externalData';
import { materialized } from './deferred';

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: onnx.IAttributeProto[];
}

/** The node as the ONNX protobuf writes it. */
export function nodeProto(n: OnnxNode): onnx.INodeProto {
  return onnx.NodeProto.create({
    name: n.name,
    opType: n.opType,
    domain: n.domain,
    input: n.inputs,
    output: n.outputs,
    attribute: n.attributes,
  });
}

export interface InputSpec {
  name: string;
  dtype: DType;
  dims: (number | string)[];
}

export function inputSpecs(inputs: onnx.IValueInfoProto[]): InputSpec[] {
  return inputs.map((i) => {
    const tt = i.type?.tensorType;
    return {
      name: i.name ?? '',
      dtype: dtypeOf(tt?.elemType ?? 0),
      dims: (tt?.shape?.dim ?? []).map((d) =>
        d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? num(d.dimValue) : '?',
      ),
    };
  });
}

/** Where a graph was read from: external data locations are relative to `dir`; weights are views of `bytes`. */
export interface GraphSource {
  path: string;
  dir: string;
  bytes: Uint8Array;
}

export class Graph {
  nodes: OnnxNode[];
  source?: GraphSource;
  inputs: onnx.IValueInfoProto[];
  outputs: onnx.IValueInfoProto[];
  initializers: Map<string, onnx.ITensorProto>;
  private producerCache?: Map<string, OnnxNode>;
  private consumerCache?: Map<string, OnnxNode[]>;

  constructor(readonly model: onnx.IModelProto) {
    const g = model.graph;
    if (!g) throw new LrpLensError('model-corrupt', 'The ONNX file has no graph.');
    this.nodes = (g.node ?? []).map((n, i) => ({
      name: n.name || `${n.opType}_${i}`,
      opType: n.opType ?? '',
      domain: n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attributes: [...(n.attribute ?? [])],
    }));
    this.inputs = [...(g.input ?? [])];
    this.outputs = [...(g.output ?? [])];
    this.initializers = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
    // Some exporters list initializers as graph inputs too; they are not runtime inputs.
    this.inputs = this.inputs.filter((i) => !this.initializers.has(i.name ?? ''));
  }

  /** A copy sharing tensors (weights are never copied) and the source. */
  clone(): Graph {
    const g = new Graph(this.toModel());
    g.source = this.source;
    return g;
  }

  /** Default-domain opset version. */
  get opset(): number {
    const o = (this.model.opsetImport ?? []).find((x) => !x.domain || x.domain === 'ai.onnx');
    return o ? num(o.version) : 0;
  }

  invalidate(): void {
    this.producerCache = undefined;
    this.consumerCache = undefined;
  }

  producer(tensor: string): OnnxNode | undefined {
    if (!this.producerCache) {
      this.producerCache = new Map();
      for (const n of this.nodes) for (const o of n.outputs) if (o) this.producerCache.set(o, n);
    }
    return this.producerCache.get(tensor);
  }

  consumers(tensor: string): OnnxNode[] {
    if (!this.consumerCache) {
      this.consumerCache = new Map();
      for (const n of this.nodes) {
        for (const i of new Set(n.inputs)) {
          if (!i) continue;
          const list = this.consumerCache.get(i) ?? [];
          list.push(n);
          this.consumerCache.set(i, list);
        }
      }
    }
    return this.consumerCache.get(tensor) ?? [];
  }

  isGraphOutput(tensor: string): boolean {
    return this.outputs.some((o) => o.name === tensor);
  }

  /** True when every node reads only tensors produced before it. */
  isTopologicallySorted(): boolean {
    const available = new Set<string>([...this.initializers.keys(), ...this.inputs.map((i) => i.name ?? ''), '']);
    for (const n of this.nodes) {
      if (!n.inputs.every((i) => available.has(i))) return false;
      for (const o of n.outputs) available.add(o);
    }
    return true;
  }

  /** Sorts nodes topologically (Kahn), keeping file order among ready nodes; a sorted graph is left as it is. */
  sortTopologically(): void {
    if (this.isTopologicallySorted()) return;
    const available = new Set<string>([...this.initializers.keys(), ...this.inputs.map((i) => i.name ?? ''), '']);
    const pending = new Map<OnnxNode, number>();
    const waiting = new Map<string, OnnxNode[]>();
    const ready: OnnxNode[] = [];
    for (const n of this.nodes) {
      const missing = new Set(n.inputs.filter((i) => !available.has(i)));
      pending.set(n, missing.size);
      if (missing.size === 0) ready.push(n);
      for (const m of missing) waiting.set(m, [...(waiting.get(m) ?? []), n]);
    }
    const order: OnnxNode[] = [];
    for (let k = 0; k < ready.length; k++) {
      const n = ready[k];
      order.push(n);
      for (const o of n.outputs) {
        for (const w of waiting.get(o) ?? []) {
          const left = (pending.get(w) ?? 0) - 1;
          pending.set(w, left);
          if (left === 0) ready.push(w);
        }
        waiting.delete(o);
      }
    }
    if (order.length !== this.nodes.length) {
      const stuck = this.nodes.find((n) => !order.includes(n));
      const missing = stuck?.inputs.find((i) => i && !available.has(i) && !this.producer(i));
      throw new LrpLensError(
        'model-corrupt',
        `The graph is not a DAG or refers to a missing tensor${missing ? ` '${missing}'` : ''} (node ${stuck?.name}).`,
      );
    }
    this.nodes = order;
    this.invalidate();
  }

  /** A constant's values: initializer or Constant node output; undefined when the tensor is computed. */
  constantValues(tensor: string): number[] | undefined {
    const init = this.initializers.get(tensor);
    if (init && isExternal(init)) {
      if (!this.source) return undefined;
      return tensorValues(embeddedTensor(init, this.source.dir));
    }
    if (init) return tensorValues(materialized(init));
    const p = this.producer(tensor);
    if (p?.opType === 'Constant') {
      const v = p.attributes.find((a) => a.name === 'value');
      if (v?.t) return tensorValues(v.t);
      const ints = p.attributes.find((a) => a.name === 'value_ints');
      if (ints) return (ints.ints ?? []).map(num);
      const i = p.attributes.find((a) => a.name === 'value_int');
      if (i) return [num(i.i)];
      const f = p.attributes.find((a) => a.name === 'value_float');
      if (f) return [f.f ?? 0];
    }
    return undefined;
  }

  toModel(): onnx.ModelProto {
    const g = this.model.graph!;
    const graph = onnx.GraphProto.create({
      name: g.name ?? 'graph',
      node: this.nodes.map(nodeProto),
      input: this.inputs,
      output: this.outputs,
      initializer: [...this.initializers.values()],
      valueInfo: [],
      docString: g.docString ?? '',
    });
    return onnx.ModelProto.create({ ...this.model, graph });
  }
}

export function attr(node: OnnxNode, name: string): onnx.IAttributeProto | undefined {
  return node.attributes.find((a) => a.name === name);
}

export function attrInt(node: OnnxNode, name: string, fallback: number): number {
  const a = attr(node, name);
  return a ? num(a.i) : fallback;
}

export function attrFloat(node: OnnxNode, name: string, fallback: number): number {
  const a = attr(node, name);
  return a ? (a.f ?? fallback) : fallback;
}

export function attrInts(node: OnnxNode, name: string): number[] | undefined {
  const a = attr(node, name);
  return a ? (a.ints ?? []).map(num) : undefined;
}

export function attrString(node: OnnxNode, name: string, fallback: string): string {
  const a = attr(node, name);
  return a?.s ? Buffer.from(a.s).toString('utf8') : fallback;
}
