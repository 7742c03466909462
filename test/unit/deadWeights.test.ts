/** Dead weights: kept by a mask, but unable to change the output because what they meet is wholly pruned. */
import assert from 'node:assert/strict';
import { biasedWeights, pruneDeadWeights } from '../../src/engine/circuits/deadWeights';
import { findLinearWeights } from '../../src/engine/pruning/prunable';
import { TINY, buildFamily } from '../fixtures/families';
import { elementIndex, inputUnits, outputUnits } from '../../src/engine/weights/types';
import type { Mask, PrunableWeight } from '../../src/engine/weights/types';

// One block: hidden 4, head size 2, 2 query heads sharing 1 key/value head; MLP hidden 3. MatMul layout [in, out].
const w = (name: string, kind: PrunableWeight['kind'], dims: [number, number]): PrunableWeight => ({
  name,
  dims,
  outAxis: 1,
  layer: 0,
  kind,
});
const q = w('q', 'q', [4, 4]);
const k = w('k', 'k', [4, 2]);
const v = w('v', 'v', [4, 2]);
const o = w('o', 'o', [4, 4]);
const gate = w('gate', 'gate', [4, 3]);
const up = w('up', 'up', [4, 3]);
const down = w('down', 'down', [3, 4]);
const weights = [q, k, v, o, gate, up, down];

const dense = (): Mask => new Map(weights.map((x) => [x.name, { dims: [...x.dims], keep: new Uint8Array(x.dims[0] * x.dims[1]).fill(1) }]));
const prune = (mask: Mask, x: PrunableWeight, axis: 'out' | 'in', unit: number) => {
  const n = axis === 'out' ? inputUnits(x) : outputUnits(x);
  for (let i = 0; i < n; i++) mask.get(x.name)!.keep[axis === 'out' ? elementIndex(x, unit, i) : elementIndex(x, i, unit)] = 0;
};
const kept = (mask: Mask, x: PrunableWeight) => mask.get(x.name)!.keep.reduce((a, b) => a + b, 0);

describe('dead weights', () => {
  it('a dense mask, or one with no unit wholly pruned, loses nothing', () => {
    const mask = dense();
    mask.get('q')!.keep[0] = 0;
    const out = pruneDeadWeights(mask, weights, 2);
    for (const x of weights) assert.equal(kept(out, x), kept(mask, x), x.name);
  });

  it('keys go once every query head they serve is pruned, and the query heads once their key head is', () => {
    const mask = dense();
    prune(mask, q, 'out', 0);
    prune(mask, q, 'out', 1); // query head 0 gone: key still serves head 1
    assert.equal(kept(pruneDeadWeights(mask, weights, 2), k), 8);
    prune(mask, q, 'out', 2);
    prune(mask, q, 'out', 3);
    assert.equal(kept(pruneDeadWeights(mask, weights, 2), k), 0, 'uniform attention: the keys do nothing');
    const keyless = dense();
    prune(keyless, k, 'out', 0);
    prune(keyless, k, 'out', 1);
    assert.equal(kept(pruneDeadWeights(keyless, weights, 2), q), 0);
  });

  it('a value unit goes with the output-projection inputs it feeds, both ways; a silenced head takes its queries', () => {
    const mask = dense();
    prune(mask, v, 'out', 1);
    const out = pruneDeadWeights(mask, weights, 2);
    assert.equal(kept(out, o), 16 - 2 * 4, 'inputs 1 and 3 of o (dim 1 of both heads) are dead');
    const unread = dense();
    prune(unread, o, 'in', 0);
    assert.equal(kept(pruneDeadWeights(unread, weights, 2), v), 8, "head 1's dim 0 still reads value unit 0");
    prune(unread, o, 'in', 2);
    assert.equal(kept(pruneDeadWeights(unread, weights, 2), v), 4, 'no head reads value unit 0');
    const silenced = dense();
    prune(silenced, o, 'in', 2);
    prune(silenced, o, 'in', 3);
    const s = pruneDeadWeights(silenced, weights, 2);
    assert.equal(kept(s, q), 8, "head 1's queries are dead");
    assert.equal(kept(s, k), 8, 'head 0 still uses the shared key');
  });

  it('an MLP hidden unit goes with its gate, up or down slice', () => {
    for (const [x, axis] of [
      [gate, 'out'],
      [up, 'out'],
      [down, 'in'],
    ] as const) {
      const mask = dense();
      prune(mask, x, axis, 2);
      const out = pruneDeadWeights(mask, weights, 2);
      assert.deepEqual([kept(out, gate), kept(out, up), kept(out, down)], [8, 8, 8], x.name);
    }
  });

  it('leaves the input mask alone, and blocks with a biased weight as they are', () => {
    const mask = dense();
    prune(mask, gate, 'out', 0);
    const out = pruneDeadWeights(mask, weights, 2, new Set(['up']));
    assert.equal(kept(mask, up), 12);
    assert.equal(kept(out, up), 12, 'up has a bias: its unit still outputs the bias');
    assert.equal(kept(pruneDeadWeights(mask, weights, 2), up), 8);
    const expert = { ...gate, name: 'gate2' };
    const twoGates = new Map([...mask, ['gate2', { dims: [4, 3], keep: new Uint8Array(12).fill(1) }]]);
    assert.equal(kept(pruneDeadWeights(twoGates, [...weights, expert], 2), up), 12, 'two gates in one block: not paired up');
  });

  it('finds the biased projections of a graph (Qwen2: q, k and v have a bias; o and the MLP none)', () => {
    const { graph } = buildFamily('qwen2', TINY);
    const linear = findLinearWeights(graph).filter((x) => x.layer === 0);
    const biased = biasedWeights(graph, linear);
    assert.deepEqual(
      linear
        .filter((x) => biased.has(x.name))
        .map((x) => x.kind)
        .sort(),
      ['k', 'q', 'v'],
    );
    const { graph: llama } = buildFamily('mistral', TINY);
    assert.equal(biasedWeights(llama, findLinearWeights(llama)).size, 0, 'Mistral has no bias');
  });
});
