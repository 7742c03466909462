/**
 * Block-wise execution, the split: a relevance graph compiled with cuts at the residual stream (compiler.ts
 * `cuts`) is sliced into one forward graph per segment (h_k−1 → h_k), one relevance graph per segment (which
 * recomputes the segment's forward from h_k−1 and takes the gradient at h_k from the cut's seed input) and an
 * assembly graph (the Concat/Sum nodes that gather per-block pieces into the monolithic graph's outputs). Every
 * node is the compiled graph's own node, so each piece is computed by the same operations as in the monolithic
 * graph; only the order of the final Sums across blocks differs when the runner adds cut gradients.
 *
 * Large weights become graph inputs (the runner feeds one copy to every graph), and names are normalised, so
 * blocks of the same shape share one graph — and one onnxruntime session.
 */
import { createHash } from 'node:crypto';
import { onnx } from 'onnx-proto';
import { Graph } from '../onnx/graph';
import type { OnnxNode } from '../onnx/graph';
import { encodeModel } from '../onnx/io';
import { valueInfo } from '../onnx/builder';
import { dtypeCode, dtypeOf, tensorSize } from '../onnx/tensor';
import type { DType } from '../onnx/tensor';
import { embeddedTensor, isExternal } from '../onnx/externalData';
import type { ShapeTable } from '../onnx/shapes';
import { IO } from './ioNames';
import type { BlockStructure } from './blocks';
import { segmentCount } from './blocks';

/** Where a segment graph's input comes from: the caller's feeds, a tensor another graph produced, or a weight. */
export type InputSource = { kind: 'feed' | 'tensor' | 'weight'; name: string };

export interface SegmentGraph {
  /** Normalised graph: blocks of the same shape give byte-identical graphs (and the same key). */
  bytes: Uint8Array;
  key: string;
  inputs: { name: string; from: InputSource }[];
  /** Normalised output name → the compiled graph's tensor it computes. */
  outputs: { name: string; tensor: string }[];
}

export interface BlockwisePlan {
  stream: string[];
  /** Per segment 0 … L (the head needs none): h_k−1 → h_k and the constants later segments read. */
  forward: (SegmentGraph | undefined)[];
  /** Per segment 0 … L+1, run from the head down: the relevance pass through the segment. */
  backward: (SegmentGraph | undefined)[];
  assembly: SegmentGraph;
  /** The compiled graph's outputs, in order (what the runner returns). */
  outputs: string[];
  /** Initializers fed as inputs (read by the runner's weight store). */
  weights: string[];
  /** Per segment 0 … L, where it applies: the variant that saves outputs instead of recomputing them. */
  saving: (SavingVariant | undefined)[];
}

/**
 * Memory for time: the forward graph also outputs the block's weight products (the outputs of its MatMuls with a
 * weight: projections and MLP), and the relevance graph reads them instead of recomputing them, so that only
 * attention and element-wise work is recomputed. The runner picks it for as many blocks as its budget allows.
 */
export interface SavingVariant {
  forward: SegmentGraph;
  backward: SegmentGraph;
  /** The compiled graph's tensors the two graphs pass (freed after the relevance graph). */
  tensors: string[];
  /** Their elements per row and token (the product of their static dimensions). */
  elementsPerToken: number;
}

export class SplitError extends Error {}

/**
 * Float initializers of more than one element (weights, biases, norm scales) are fed as inputs rather than
 * embedded, so that blocks differing only in them share a graph; scalars stay (their values shape the graph).
 */
const WEIGHT_MIN_ELEMENTS = 2;

/** 'input': fed to the segment (h, a cut seed, model inputs, weights); 'local': computed there; 'fed': see below. */
type Avail = 'input' | 'local' | 'fed';

export function splitCompiled(
  compiled: Graph,
  forwardNodes: Set<OnnxNode>,
  relevant: Set<string>,
  blocks: BlockStructure,
  shapes: ShapeTable,
): BlockwisePlan {
  const S = segmentCount(blocks);
  const { stream } = blocks;
  const cutSeeds = new Set(stream.map((_, i) => IO.cutSeed(i)));
  const modelInputs = new Set(compiled.inputs.map((i) => i.name ?? '').filter((n) => !cutSeeds.has(n)));

  const avail = Array.from({ length: S }, (_, k) => availability(compiled, k, forwardNodes, relevant, blocks, modelInputs));
  const localIn = (t: string) => avail.map((a, k) => (a.get(t) === 'local' || a.get(t) === 'input' ? k : -1)).filter((k) => k >= 0);
  const isGlobal = (t: string) => localIn(t).length === S;

  // Assembly: nodes no single segment can compute (they gather pieces from several).
  const assemblyNodes = compiled.nodes.filter((n) => !forwardNodes.has(n) && n.outputs.every((o) => localIn(o).length === 0));
  const producedByAssembly = new Set(assemblyNodes.flatMap((n) => n.outputs));
  const pieceHome = new Map<string, number>();
  const globalsForAssembly = new Set<string>();
  const claim = (t: string) => {
    if (!t || producedByAssembly.has(t) || modelInputs.has(t) || compiled.initializers.has(t)) return;
    if (isGlobal(t)) globalsForAssembly.add(t);
    else {
      const homes = localIn(t);
      if (homes.length === 0) throw new SplitError(`tensor '${t}' is computed by no single block`);
      pieceHome.set(t, Math.max(...homes));
    }
  };
  for (const n of assemblyNodes) n.inputs.forEach(claim);
  const outputs = compiled.outputs.map((o) => o.name ?? '');
  for (const o of outputs) claim(o);
  const finalOutputs = outputs.filter((o) => !o.startsWith('lrp_cut_grad/'));

  const logits = compiled.outputs[0]?.name ?? '';
  const builder = new SegmentBuilder(compiled, shapes, modelInputs, shapes.get(logits)?.dtype ?? 'float32');
  const pieces = [...pieceHome.keys()];
  const backwardOf: OnnxNode[][] = [];
  for (let k = 0; k < S; k++) {
    const mine = pieces.filter((t) => pieceHome.get(t) === k);
    backwardOf.push(closure(compiled, mine, (n) => n.outputs.every((o) => avail[k].get(o) === 'local')));
  }

  // Forward graphs: h_k, and the forward constants (masks, shapes) a later segment reads but cannot compute,
  // from the first segment that can. Adding such an output may need more constants: iterate to a fixpoint.
  const fedHome = new Map<string, number>();
  const forwardOnly = (k: number) => (n: OnnxNode) => forwardNodes.has(n) && n.outputs.every((o) => avail[k].get(o) === 'local');
  const forwardOutputs = (k: number) => [stream[k], ...[...fedHome].filter(([, j]) => j === k).map(([t]) => t)];
  const forwardOf: OnnxNode[][] = [];
  for (let changed = true; changed;) {
    changed = false;
    forwardOf.length = 0;
    for (let k = 0; k < stream.length; k++) forwardOf.push(closure(compiled, forwardOutputs(k), forwardOnly(k)));
    const needs = [...backwardOf, ...forwardOf].flatMap((nodes, i) => {
      const k = i < S ? i : i - S;
      return inputsOf(nodes).filter((t) => avail[k].get(t) === 'fed');
    });
    for (const t of needs) {
      if (fedHome.has(t)) continue;
      const home = localIn(t).find((j) => j < stream.length);
      if (home === undefined) throw new SplitError(`the forward constant '${t}' cannot be computed before the head`);
      fedHome.set(t, home);
      changed = true;
    }
  }
  const forward = forwardOf.map((nodes, k) => builder.build(nodes, forwardOutputs(k), (t) => sourceOf(t, k)));
  const backward = backwardOf.map((nodes, k) => {
    const mine = pieces.filter((t) => pieceHome.get(t) === k);
    return mine.length ? builder.build(nodes, mine, (t) => sourceOf(t, k)) : undefined;
  });
  // The assembly computes the outputs that gather pieces of several segments (and those of model inputs alone).
  const assembled = finalOutputs.filter((o) => !pieceHome.has(o));
  const assemblyClosure = closure(
    compiled,
    assembled,
    (n) => !forwardNodes.has(n) && n.outputs.every((o) => producedByAssembly.has(o) || globalsForAssembly.has(o) || isGlobal(o)),
  );
  const assembly = builder.build(assemblyClosure, assembled, (t) => (pieceHome.has(t) ? { kind: 'tensor', name: t } : undefined));
  const saving = forwardOf.map((nodes, k) => {
    if (k === 0 || !backward[k]) return undefined;
    const inBackward = new Set(backwardOf[k]);
    const saved = nodes
      .filter((n) => n.opType === 'MatMul' && builder.isWeightName(n.inputs[1]) && inBackward.has(n))
      .map((n) => n.outputs[0]);
    if (saved.length === 0) return undefined;
    const isSaved = new Set(saved);
    const mine = pieces.filter((t) => pieceHome.get(t) === k);
    const relevanceNodes = closure(compiled, mine, (n) => n.outputs.every((o) => avail[k].get(o) === 'local' && !isSaved.has(o)));
    const source = (t: string): InputSource | undefined => (isSaved.has(t) ? { kind: 'tensor', name: t } : sourceOf(t, k));
    const staticElements = (t: string) => (shapes.get(t)?.dims ?? []).reduce<number>((a, d) => a * (d ?? 1), 1);
    return {
      forward: builder.build(nodes, [...forwardOutputs(k), ...saved], (t) => sourceOf(t, k)),
      backward: builder.build(relevanceNodes, mine, source),
      tensors: saved,
      elementsPerToken: saved.reduce((a, t) => a + staticElements(t), 0),
    };
  });
  return { stream, forward, backward, assembly, outputs: finalOutputs, weights: [...builder.weights], saving };

  /** Inputs of segment k's graphs other than model inputs and weights. */
  function sourceOf(t: string, k: number): InputSource | undefined {
    if (k >= 1 && t === stream[k - 1]) return { kind: 'tensor', name: t };
    if (k < stream.length && t === IO.cutSeed(k)) return { kind: 'tensor', name: IO.cutGrad(k) };
    if (avail[k].get(t) === 'fed') return { kind: 'tensor', name: t };
    return undefined;
  }
}

/**
 * What segment k can use of every tensor: its inputs (model inputs, weights, h_k−1, the cut seed at h_k), what it
 * computes ('local': its own relevant tensors and everything computed from inputs and those), and 'fed': a
 * constant of the forward pass (a mask, a shape) that it cannot compute because it reads another segment's
 * tensors — the forward pass provides it.
 */
function availability(
  compiled: Graph,
  k: number,
  forwardNodes: Set<OnnxNode>,
  relevant: Set<string>,
  { stream, segmentOf }: BlockStructure,
  modelInputs: Set<string>,
): Map<string, Avail> {
  const a = new Map<string, Avail>([['', 'input']]);
  for (const i of modelInputs) a.set(i, 'input');
  for (const i of compiled.initializers.keys()) a.set(i, 'input');
  if (k >= 1) a.set(stream[k - 1], 'input');
  if (k < stream.length) a.set(IO.cutSeed(k), 'input');
  for (const n of compiled.nodes) {
    const ready = n.inputs.every((i) => a.has(i));
    if (!forwardNodes.has(n)) {
      if (ready) for (const o of n.outputs) a.set(o, 'local');
      continue;
    }
    const outs = n.outputs.filter((o) => relevant.has(o));
    if (outs.length === 0) for (const o of n.outputs) a.set(o, ready ? 'local' : 'fed');
    else if (ready) for (const o of outs) if (segmentOf.get(o) === k && !a.has(o)) a.set(o, 'local');
  }
  return a;
}

/** Nodes needed for `outputs`, walking back through nodes `take` accepts (in graph order). */
function closure(g: Graph, outputs: string[], take: (n: OnnxNode) => boolean): OnnxNode[] {
  const needed = new Set(outputs);
  const picked = new Set<OnnxNode>();
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.outputs.some((o) => needed.has(o)) || !take(n)) continue;
    picked.add(n);
    for (const x of n.inputs) needed.add(x);
  }
  return g.nodes.filter((n) => picked.has(n));
}

/**
 * The compiled graph's order, except that shape reads and what is computed from them and the model inputs alone
 * (masks, positions) move to just before their first reader: where the compiler placed them depends on nodes of
 * other segments, so without this two blocks of the same shape would order them differently and share no session.
 */
function canonicalOrder(nodes: OnnxNode[], isConstant: (t: string) => boolean): OnnxNode[] {
  const producer = new Map<string, OnnxNode>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const lazy = new Set<OnnxNode>();
  for (const n of nodes)
    if (n.opType === 'Shape' || n.inputs.every((i) => (producer.has(i) ? lazy.has(producer.get(i)!) : isConstant(i)))) lazy.add(n);
  const order: OnnxNode[] = [];
  const placed = new Set<OnnxNode>();
  const place = (n: OnnxNode) => {
    if (placed.has(n)) return;
    placed.add(n);
    for (const i of n.inputs) {
      const p = producer.get(i);
      if (p && lazy.has(p)) place(p);
    }
    order.push(n);
  };
  for (const n of nodes) if (!lazy.has(n)) place(n);
  // Lazy nodes no eager node reads (an output computed from inputs alone), in output order.
  for (const n of nodes) place(n);
  return order;
}

function inputsOf(nodes: OnnxNode[]): string[] {
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  return [...new Set(nodes.flatMap((n) => n.inputs))].filter((t) => t && !produced.has(t));
}

/** Builds normalised segment graphs: names by order of appearance, large weights as inputs. */
class SegmentBuilder {
  readonly weights = new Set<string>();

  constructor(
    private readonly compiled: Graph,
    private readonly shapes: ShapeTable,
    private readonly modelInputs: Set<string>,
    private readonly dtype: DType,
  ) {}

  /** Whether a tensor is an initializer fed as a weight input. */
  isWeightName(t: string): boolean {
    const init = this.compiled.initializers.get(t);
    return !!init && this.isWeight(init);
  }

  private isWeight(t: onnx.ITensorProto): boolean {
    const dtype = dtypeOf(t.dataType ?? 0);
    return (dtype === 'float32' || dtype === 'float64' || dtype === 'float16') && tensorSize(t) >= WEIGHT_MIN_ELEMENTS;
  }

  build(graphNodes: OnnxNode[], outputs: string[], sourceOf: (t: string) => InputSource | undefined): SegmentGraph {
    const c = this.compiled;
    const nodes = canonicalOrder(graphNodes, (t) => !t || this.modelInputs.has(t) || c.initializers.has(t));
    const names = new Map<string, string>([['', '']]);
    const inputs: SegmentGraph['inputs'] = [];
    const inputInfos: onnx.IValueInfoProto[] = [];
    const initializers = new Map<string, onnx.ITensorProto>();
    const count = (kind: InputSource['kind']) => inputs.filter((i) => i.from.kind === kind).length;
    const addInput = (t: string, name: string, from: InputSource, info: onnx.IValueInfoProto) => {
      names.set(t, name);
      inputs.push({ name, from });
      inputInfos.push(info);
      return name;
    };
    /** A tensor the segment reads but does not compute. */
    const external = (t: string): string => {
      const known = names.get(t);
      if (known !== undefined) return known;
      if (this.modelInputs.has(t)) {
        // Named by order too: blocks read past_key_values.{their own index}.
        const name = `m${count('feed')}`;
        return addInput(t, name, { kind: 'feed', name: t }, { ...c.inputs.find((i) => i.name === t)!, name });
      }
      const init = c.initializers.get(t);
      if (init && this.isWeight(init)) {
        this.weights.add(t);
        const name = `w${count('weight')}`;
        return addInput(t, name, { kind: 'weight', name: t }, valueInfo(name, dtypeOf(init.dataType ?? 0), (init.dims ?? []).map(Number)));
      }
      if (init) {
        const name = `c${initializers.size}`;
        names.set(t, name);
        const embedded = isExternal(init) ? embeddedTensor(init, c.source!.dir) : init;
        initializers.set(name, onnx.TensorProto.create({ ...embedded, name }));
        return name;
      }
      const src = sourceOf(t);
      if (!src) throw new SplitError(`segment input '${t}' has no source (outputs ${outputs.join(', ')})`);
      const name = `in${count('tensor')}`;
      return addInput(t, name, src, this.info(name, t));
    };
    const outNames = new Map(outputs.map((o, i) => [o, `out${i}`]));
    let internal = 0;
    const renamed: OnnxNode[] = nodes.map((n, i) => {
      const node = {
        name: `n${i}`,
        opType: n.opType,
        domain: n.domain,
        attributes: n.attributes,
        inputs: n.inputs.map((x) => names.get(x) ?? external(x)),
        outputs: [] as string[],
      };
      node.outputs = n.outputs.map((o) => {
        const name = o ? (outNames.get(o) ?? `t${internal++}`) : '';
        names.set(o, name);
        return name;
      });
      return node;
    });
    // An output the segment does not compute (an input passed through) is copied by an Identity.
    outputs.forEach((o, i) => {
      if (!nodes.some((n) => n.outputs.includes(o)))
        renamed.push({ name: `copy${i}`, opType: 'Identity', domain: '', attributes: [], inputs: [external(o)], outputs: [`out${i}`] });
    });
    const g = new Graph(onnx.ModelProto.create({ ...c.model, graph: onnx.GraphProto.create({ name: 'segment' }) }));
    g.nodes = renamed;
    g.inputs = inputInfos;
    g.outputs = outputs.map((_, i) => onnx.ValueInfoProto.create({ name: `out${i}` }));
    g.initializers = initializers;
    const bytes = encodeModel(g);
    return {
      bytes,
      key: createHash('sha256').update(bytes).digest('hex'),
      inputs,
      outputs: outputs.map((o, i) => ({ name: `out${i}`, tensor: o })),
    };
  }

  private info(name: string, t: string): onnx.IValueInfoProto {
    const s = this.shapes.get(t);
    if (!s) {
      const vi = this.compiled.inputs.find((i) => i.name === t);
      // Pieces the compiler made (relevance sums) have no probed shape: their type is the graph's float type.
      return vi ? { ...vi, name } : onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: dtypeCode(this.dtype) } } });
    }
    return valueInfo(
      name,
      s.dtype as DType,
      s.dims.map((d, i) => d ?? `${name}_d${i}`),
    );
  }
}
