/**
 * Causal attention in query chunks (block-wise execution). A causal layer's queries never read later keys, so
 * the queries [a, b) need the keys [0, b) only: split the queries into n chunks and each chunk's scores,
 * softmax and value product cover a b-wide prefix of the keys. The work and memory of the [T × T] part of a
 * layer (scores, probabilities and their relevance) fall to (n + 1) / 2n of it, and the chunks are the same
 * ops on slices, so every relevance rule applies to them unchanged.
 *
 * Exact where the probabilities above the diagonal are exactly zero: what the shape probe checks per softmax
 * (`TensorShapeInfo.causal`); a layer it did not see causal is left whole. Rows that are all padding (which
 * exporters may let attend everywhere) can then differ, but no relevance reaches or leaves them.
 */
import type { Graph, OnnxNode } from '../onnx/graph';
import { attrInt } from '../onnx/graph';
import { GraphBuilder, makeAttribute } from '../onnx/builder';
import type { ShapeTable } from '../onnx/shapes';

/** Query chunks per layer: (n + 1) / 2n of the full [T × T] work, 56 % for 8. */
export const ATTENTION_CHUNKS = 8;

/** Prefix of the nodes this rewrite emits; `<prefix><layer>/…`, the chunks' Concat ends in `/concat`. */
export const CHUNK_PREFIX = 'lrp_chunked_attention/';

/** Ops between the scores MatMul and the softmax that act element by element (with broadcast side inputs). */
const SCORE_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'Where', 'Cast', 'Tanh', 'Identity']);
const ROUTING = new Set(['Cast', 'Dropout', 'Identity']);

/** One attention layer: scores = q·kᵀ, element-wise ops, softmax, routing, values = p·v. */
interface AttentionCore {
  scores: OnnxNode;
  /** From the scores MatMul's consumer to the softmax's producer, in order, with the input each reads the chain by. */
  chain: { node: OnnxNode; at: number }[];
  softmax: OnnxNode;
  routing: OnnxNode[];
  values: OnnxNode;
}

/** The attention chunk group (layer) a node belongs to, or undefined. */
export function chunkGroup(n: OnnxNode): string | undefined {
  if (!n.name.startsWith(CHUNK_PREFIX)) return undefined;
  return n.name.slice(CHUNK_PREFIX.length).split('/')[0];
}

/**
 * Rewrites every causal attention layer into `chunks` query chunks; returns how many layers it rewrote.
 * The graph needs probing again afterwards (new tensors).
 */
export function chunkCausalAttention(g: Graph, shapes: ShapeTable, chunks = ATTENTION_CHUNKS): number {
  if (chunks < 2) return 0;
  const cores = causalCores(g, shapes);
  cores.forEach((core, layer) => emitChunks(g, shapes, core, layer, chunks));
  if (cores.length) g.sortTopologically();
  return cores.length;
}

/** How many attention layers chunkCausalAttention would rewrite (the graph is left as it is). */
export function causalAttentionLayers(g: Graph, shapes: ShapeTable): number {
  return causalCores(g, shapes).length;
}

function causalCores(g: Graph, shapes: ShapeTable): AttentionCore[] {
  return g.nodes
    .filter((n) => n.opType === 'Softmax' && !n.domain && shapes.get(n.outputs[0])?.causal)
    .map((s) => attentionCore(g, shapes, s))
    .filter((c): c is AttentionCore => !!c);
}

const isSeq = (shapes: ShapeTable, t: string, axisFromEnd: number): boolean => {
  const info = shapes.get(t);
  if (!info) return false;
  const axis = info.dims.length - axisFromEnd;
  return axis >= 0 && info.dims[axis] === null && axis !== info.batchAxis;
};

/** A single-consumer, non-output intermediate (safe to replace). */
function inner(g: Graph, t: string): boolean {
  return g.consumers(t).length === 1 && !g.isGraphOutput(t);
}

function attentionCore(g: Graph, shapes: ShapeTable, softmax: OnnxNode): AttentionCore | undefined {
  const p = softmax.outputs[0];
  const rank = shapes.get(p)?.dims.length ?? 0;
  const axis = attrInt(softmax, 'axis', g.opset >= 13 ? -1 : 1);
  if (rank < 2 || (axis < 0 ? axis + rank : axis) !== rank - 1) return undefined;
  const routing: OnnxNode[] = [];
  let t = p;
  for (;;) {
    if (!inner(g, t)) return undefined;
    const next = g.consumers(t)[0];
    if (!ROUTING.has(next.opType) || next.domain || next.inputs[0] !== t || next.outputs.slice(1).some((o) => o && g.consumers(o).length))
      break;
    routing.push(next);
    t = next.outputs[0];
  }
  const values = g.consumers(t)[0];
  if (values.opType !== 'MatMul' || values.inputs[0] !== t || values.inputs[1] === t) return undefined;
  const chain = scoreChain(g, shapes, softmax.inputs[0]);
  if (!chain) return undefined;
  const { scores } = chain;
  const [q, kT] = scores.inputs;
  const v = values.inputs[1];
  const o = values.outputs[0];
  if (!isSeq(shapes, q, 2) || !isSeq(shapes, kT, 1) || !isSeq(shapes, v, 2) || !isSeq(shapes, o, 2)) return undefined;
  return { scores, chain: chain.ops, softmax, routing, values };
}

/** The scores MatMul and the element-wise ops after it, ending at the op that produces `t`, or undefined. */
function scoreChain(
  g: Graph,
  shapes: ShapeTable,
  t: string,
  depth = 0,
): (Pick<AttentionCore, 'scores'> & { ops: AttentionCore['chain'] }) | undefined {
  const p = g.producer(t);
  if (!p || p.domain || depth > 8 || !inner(g, t) || !isSeq(shapes, t, 1) || !isSeq(shapes, t, 2)) return undefined;
  if (p.opType === 'MatMul') return p.inputs[0] === p.inputs[1] ? undefined : { scores: p, ops: [] };
  if (!SCORE_OPS.has(p.opType)) return undefined;
  const at = chainInput(g, shapes, p);
  if (at === undefined) return undefined;
  const before = scoreChain(g, shapes, p.inputs[at], depth + 1);
  if (!before || !p.inputs.every((x, i) => i === at || sideSlices(g, shapes, x) !== undefined)) return undefined;
  return { scores: before.scores, ops: [...before.ops, { node: p, at }] };
}

/** The one input of an element-wise op that comes from a [T × T] MatMul through such ops. */
function chainInput(g: Graph, shapes: ShapeTable, n: OnnxNode): number | undefined {
  const fromScores = (t: string, depth: number): boolean => {
    const p = g.producer(t);
    if (!p || depth > 8 || !isSeq(shapes, t, 1) || !isSeq(shapes, t, 2)) return false;
    if (p.opType === 'MatMul') return !g.initializers.has(p.inputs[1]);
    return SCORE_OPS.has(p.opType) && p.inputs.some((x) => fromScores(x, depth + 1));
  };
  const hits = n.inputs.map((x, i) => (x && fromScores(x, 0) ? i : -1)).filter((i) => i >= 0);
  return hits.length === 1 ? hits[0] : undefined;
}

/**
 * How a side input (a mask, a bias, a scale) of a score op is cut per chunk: its rows (axis −2) and columns
 * (axis −1) where they have the sequence length, nothing where they broadcast; undefined when they have any
 * other size.
 */
function sideSlices(g: Graph, shapes: ShapeTable, x: string): { rows: boolean; cols: boolean } | undefined {
  if (!x) return { rows: false, cols: false };
  const init = g.initializers.get(x);
  const dims = init ? (init.dims ?? []).map(Number) : shapes.get(x)?.dims;
  if (!dims) return undefined;
  const last = (k: number) => (dims.length >= k ? dims[dims.length - k] : 1);
  const cut = (k: number) => (last(k) === 1 ? false : isSeq(shapes, x, k) ? true : undefined);
  const rows = cut(2);
  const cols = cut(1);
  return rows === undefined || cols === undefined ? undefined : { rows, cols };
}

function emitChunks(g: Graph, shapes: ShapeTable, core: AttentionCore, layer: number, chunks: number): void {
  const b = new GraphBuilder(g, `${CHUNK_PREFIX}${layer}`);
  const body = g.nodes;
  g.nodes = [];
  const [q, kT] = core.scores.inputs;
  const rankOf = (t: string) => shapes.get(t)?.dims.length ?? (g.initializers.get(t)?.dims ?? []).length;
  const seq = b.op('Slice', [b.Shape(q), b.ints([rankOf(q) - 2]), b.ints([rankOf(q) - 1])]);
  const zero = b.ints([0]);
  const ends = Array.from({ length: chunks }, (_, c) =>
    c === chunks - 1 ? seq : b.Div(b.Add(b.Mul(seq, b.ints([c + 1])), b.ints([chunks - 1])), b.ints([chunks])),
  );
  /** x[start:end] along its axis −k (counted from the end). */
  const slice = (x: string, start: string, end: string, k: number) => b.op('Slice', [x, start, end, b.ints([rankOf(x) - k])]);
  const copy = (like: OnnxNode, inputs: string[], hint: string) => {
    const [out] = b.node(like.opType, inputs, {}, 1, hint);
    g.nodes[g.nodes.length - 1].attributes = like.attributes;
    return out;
  };
  const one = b.ints([1]);
  /**
   * Rows [start, end) and then row 0 again: a chunk is never empty (a prompt shorter than the chunk count leaves
   * some chunks no rows of their own, and onnxruntime's fused kernels return garbage for empty contractions). The
   * extra row is a copy of the first query, which attends the first key, so it stays finite; its output is cut.
   */
  const rows = (x: string, start: string, end: string) =>
    b.op('Concat', [slice(x, start, end, 2), slice(x, zero, one, 2)], { axis: rankOf(x) - 2 });
  const sideCuts = new Map(core.chain.flatMap(({ node }) => node.inputs.map((x) => [x, sideSlices(g, shapes, x)] as const)));
  const outputs: string[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = c === 0 ? zero : ends[c - 1];
    const end = ends[c];
    const side = (x: string) => {
      const cut = sideCuts.get(x);
      let t = x;
      if (cut?.rows) t = rows(t, start, end);
      if (cut?.cols) t = slice(t, zero, end, 1);
      return t;
    };
    let t = b.MatMul(rows(q, start, end), slice(kT, zero, end, 1));
    for (const { node, at } of core.chain)
      t = copy(
        node,
        node.inputs.map((x, i) => (i === at ? t : side(x))),
        node.opType,
      );
    t = copy(core.softmax, [t], `softmax_c${c}`);
    for (const r of core.routing) t = copy(r, [t, ...r.inputs.slice(1)], r.opType);
    const values = b.MatMul(t, slice(core.values.inputs[1], zero, end, 2));
    outputs.push(slice(values, zero, b.Sub(end, start), 2));
  }
  const o = core.values.outputs[0];
  const emitted = g.nodes;
  emitted.push({
    name: `${CHUNK_PREFIX}${layer}/concat`,
    opType: 'Concat',
    domain: '',
    inputs: outputs,
    outputs: [o],
    attributes: [makeAttribute('axis', rankOf(o) - 2)],
  });
  const removed = new Set([core.scores, ...core.chain.map((c) => c.node), core.softmax, ...core.routing, core.values]);
  g.nodes = [...body.filter((n) => !removed.has(n)), ...emitted];
  g.invalidate();
}
