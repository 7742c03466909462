/**
 * The model's parameter count as Hugging Face counts it (`num_parameters()`): every learned tensor once —
 * weight matrices, embeddings, norm weights and biases — and no buffers (rotary inv_freq, ALiBi slopes,
 * masks) nor scalar constants. A tied LM head stored as a second copy of the embedding is counted once.
 */
import type { onnx } from 'onnx-proto';
import type { Graph } from '../onnx/graph';
import { dtypeOf, tensorDims, tensorSize, tensorValues } from '../onnx/tensor';
import { isExternal } from '../onnx/externalData';
import { carriesRelevance } from '../relevance/rules';

const FLOAT_TYPES = new Set(['float32', 'float16', 'float64', 'bfloat16']);

/**
 * Parameters are the float initializers a token-dependent node reads, directly or through ops that only
 * reshape constants (Transpose of a tied embedding, Cast of fp16 weights); buffers combine with positions or
 * masks instead, so they never meet the token stream.
 */
export function countParameters(g: Graph, tiedConfig: boolean | undefined): number {
  const tokenDependent = new Set(['input_ids']);
  const sources = new Map<string, Set<string>>();
  const dynamic = new Set(g.inputs.map((i) => i.name ?? ''));
  const sourcesOf = (t: string): Set<string> => (g.initializers.has(t) ? new Set([t]) : (sources.get(t) ?? new Set()));
  const params = new Set<string>();
  for (const n of g.nodes) {
    // A table looked up by positions (GPT-2's wpe, OPT's offset positions) is learned like the token table.
    const lookup = n.opType === 'Gather' && g.initializers.has(n.inputs[0]) && dynamic.has(n.inputs[1]);
    if (lookup) sources.set(n.outputs[0], new Set([n.inputs[0]]));
    if (n.inputs.some((i) => dynamic.has(i))) n.outputs.forEach((o) => dynamic.add(o));
    if (n.inputs.some((i) => tokenDependent.has(i))) {
      if (carriesRelevance(n)) n.outputs.forEach((o) => tokenDependent.add(o));
      for (const i of n.inputs) for (const s of sourcesOf(i)) params.add(s);
    } else if (!lookup && !n.inputs.some((i) => dynamic.has(i))) {
      const from = new Set(n.inputs.flatMap((i) => [...sourcesOf(i)]));
      for (const o of n.outputs) sources.set(o, from);
    }
  }
  const learned = [...params]
    .map((p) => g.initializers.get(p)!)
    .filter((t) => FLOAT_TYPES.has(dtypeOf(t.dataType ?? 0)) && tensorSize(t) > 1);
  const embeddings = learned.filter((t) => isEmbeddingTable(g, t.name ?? ''));
  const copies = learned.filter((t) => !embeddings.includes(t) && embeddings.some((e) => isTiedCopy(t, e, tiedConfig)));
  return learned.filter((t) => !copies.includes(t)).reduce((a, t) => a + tensorSize(t), 0);
}

function isEmbeddingTable(g: Graph, name: string): boolean {
  return g.nodes.some((n) => n.opType === 'Gather' && n.inputs[0] === name && n.inputs[1] === 'input_ids');
}

/**
 * The same values as the embedding [V, h], stored as [h, V] (transposed) or [V, h]; sampled. Where the values
 * are not at hand (external data, half precision) the config's tie_word_embeddings decides.
 */
function isTiedCopy(t: onnx.ITensorProto, emb: onnx.ITensorProto, tiedConfig: boolean | undefined): boolean {
  const [v, h] = tensorDims(emb);
  const dims = tensorDims(t);
  const transposed = dims[0] === h && dims[1] === v;
  if (dims.length !== 2 || !(transposed || (dims[0] === v && dims[1] === h))) return false;
  const readable = (x: onnx.ITensorProto) => !isExternal(x) && ['float32', 'float64'].includes(dtypeOf(x.dataType ?? 0));
  if (!readable(t) || !readable(emb)) return tiedConfig === true;
  const a = tensorValues(t);
  const e = tensorValues(emb);
  for (let k = 0; k < 64; k++) {
    const row = (k * 7919) % v;
    const col = (k * 104729) % h;
    if (a[transposed ? col * v + row : row * h + col] !== e[row * h + col]) return false;
  }
  return true;
}
