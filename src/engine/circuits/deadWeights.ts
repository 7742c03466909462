/**
 * Weights a mask leaves dead: kept, but unable to change the model's output because what they multiply with or
 * feed into is wholly pruned. Within one block of a bias-free transformer:
 *
 * - attention: a query head whose columns are all pruned scores every key 0 (uniform attention), so its key head's
 *   columns are dead once every query head sharing them is (and the query heads once their key head is); a value
 *   unit is dead once every output-projection input it feeds is pruned, and those inputs once the value unit is;
 *   a head whose output-projection slice is pruned makes its query columns dead (and its key and value heads once
 *   every query head sharing them is silenced);
 * - gated MLP: hidden unit j is gate_j · up_j read by down's input j, so all three are dead once any one is pruned.
 *
 * Pruning them changes no output, so the mask's sparsity rises for free: a circuit counts only weights it uses.
 */
import type { Graph } from '../onnx/graph';
import type { Mask, PrunableWeight } from '../weights/types';
import { elementIndex, inputUnits, outputUnits } from '../weights/types';

type Axis = 'out' | 'in';

interface Slot {
  w: PrunableWeight;
  keep: Uint8Array;
}

/**
 * Weights whose product has a bias added (a Gemm's third input, or an Add of a constant): zeroing them does not
 * zero what they compute, so their blocks are left alone.
 */
export function biasedWeights(graph: Graph, weights: PrunableWeight[]): Set<string> {
  const names = new Set(weights.map((w) => w.name));
  const out = new Set<string>();
  for (const node of graph.nodes) {
    const w = node.inputs[1];
    if (!names.has(w) || (node.opType !== 'MatMul' && node.opType !== 'Gemm')) continue;
    if (node.opType === 'Gemm' && node.inputs[2]) out.add(w);
    const constant = (t: string) => graph.initializers.has(t) || graph.producer(t)?.opType === 'Constant';
    if (graph.consumers(node.outputs[0]).some((c) => c.opType === 'Add' && c.inputs.some((i) => i !== node.outputs[0] && constant(i))))
      out.add(w);
  }
  return out;
}

/**
 * The mask with every dead weight of `weights` pruned too (a copy; the input is not changed). Blocks with a
 * biased weight (`biased`, see `biasedWeights`) are left as they are.
 */
export function pruneDeadWeights(mask: Mask, weights: PrunableWeight[], headSize: number, biased: ReadonlySet<string> = new Set()): Mask {
  const out: Mask = new Map([...mask].map(([k, m]) => [k, { dims: [...m.dims], keep: Uint8Array.from(m.keep) }]));
  const layers = [...new Set(weights.map((w) => w.layer))].filter((l): l is number => l !== null);
  for (const layer of layers) {
    const slot = (kind: PrunableWeight['kind']): Slot | undefined => {
      const matches = weights.filter((x) => x.layer === layer && x.kind === kind);
      // Several of one kind in a block (experts of a mixture) cannot be paired up: leave the block alone.
      const w = matches.length === 1 ? matches[0] : undefined;
      const m = w && !biased.has(w.name) ? out.get(w.name) : undefined;
      return w && m ? { w, keep: m.keep } : undefined;
    };
    attention(slot('q'), slot('k'), slot('v'), slot('o'), headSize);
    mlp(slot('gate'), slot('up'), slot('down'));
  }
  return out;
}

function unitPruned(s: Slot, axis: Axis, unit: number): boolean {
  const n = axis === 'out' ? inputUnits(s.w) : outputUnits(s.w);
  for (let i = 0; i < n; i++) if (s.keep[axis === 'out' ? elementIndex(s.w, unit, i) : elementIndex(s.w, i, unit)]) return false;
  return true;
}

function pruneUnit(s: Slot, axis: Axis, unit: number): void {
  const n = axis === 'out' ? inputUnits(s.w) : outputUnits(s.w);
  for (let i = 0; i < n; i++) s.keep[axis === 'out' ? elementIndex(s.w, unit, i) : elementIndex(s.w, i, unit)] = 0;
}

function unitsPruned(s: Slot, axis: Axis, from: number, to: number): boolean {
  for (let u = from; u < to; u++) if (!unitPruned(s, axis, u)) return false;
  return true;
}

function pruneUnits(s: Slot, axis: Axis, from: number, to: number): void {
  for (let u = from; u < to; u++) pruneUnit(s, axis, u);
}

function attention(q: Slot | undefined, k: Slot | undefined, v: Slot | undefined, o: Slot | undefined, size: number): void {
  if (!q || !k || !v || !o || size <= 0) return;
  const heads = outputUnits(q.w) / size;
  const kvHeads = outputUnits(k.w) / size;
  if (!Number.isInteger(heads) || !Number.isInteger(kvHeads) || kvHeads === 0 || heads % kvHeads !== 0) return;
  if (inputUnits(o.w) !== heads * size || outputUnits(v.w) !== kvHeads * size) return;
  const group = heads / kvHeads;
  for (let g = 0; g < kvHeads; g++) {
    const members = Array.from({ length: group }, (_, j) => g * group + j);
    const silenced = members.filter((h) => unitsPruned(o, 'in', h * size, (h + 1) * size));
    for (const h of silenced) pruneUnits(q, 'out', h * size, (h + 1) * size);
    const keyGone = unitsPruned(k, 'out', g * size, (g + 1) * size);
    const queriesGone = members.every((h) => unitsPruned(q, 'out', h * size, (h + 1) * size));
    if (keyGone || queriesGone) {
      for (const h of members) pruneUnits(q, 'out', h * size, (h + 1) * size);
      pruneUnits(k, 'out', g * size, (g + 1) * size);
    }
    for (let d = 0; d < size; d++) {
      const valueGone = unitPruned(v, 'out', g * size + d);
      if (valueGone || members.every((h) => unitPruned(o, 'in', h * size + d))) {
        pruneUnit(v, 'out', g * size + d);
        for (const h of members) pruneUnit(o, 'in', h * size + d);
      }
    }
    if (silenced.length === group) {
      pruneUnits(k, 'out', g * size, (g + 1) * size);
      pruneUnits(v, 'out', g * size, (g + 1) * size);
    }
  }
}

function mlp(gate: Slot | undefined, up: Slot | undefined, down: Slot | undefined): void {
  if (!gate || !up || !down) return;
  const hidden = outputUnits(gate.w);
  if (outputUnits(up.w) !== hidden || inputUnits(down.w) !== hidden) return;
  for (let j = 0; j < hidden; j++)
    if (unitPruned(gate, 'out', j) || unitPruned(up, 'out', j) || unitPruned(down, 'in', j)) {
      pruneUnit(gate, 'out', j);
      pruneUnit(up, 'out', j);
      pruneUnit(down, 'in', j);
    }
}
