/** Allocation: exact counts per row / weight / model, ties by index, structured units, and bad arguments. */
import assert from 'node:assert/strict';
import { achievedSparsity, allocateMask, allocateMasks, prepareAllocation } from '../../src/engine/pruning/allocation';
import type { AllocationOptions } from '../../src/engine/pruning/allocation';
import { LrpLensError } from '../../src/engine/errors';
import { elementIndex, inputUnits, outputUnits } from '../../src/engine/weights/types';
import type { Mask, PrunableWeight, Scores } from '../../src/engine/weights/types';

function weight(name: string, dims: [number, number], outAxis: 0 | 1, layer: number | null = 0): PrunableWeight {
  return { name, dims, outAxis, layer, kind: 'other' };
}

/** Deterministic pseudo-random scores (mulberry32), negatives included. */
function randomScores(weights: PrunableWeight[], seed = 1): Scores {
  let a = seed;
  const next = (): number => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.3;
  };
  return new Map(weights.map((w) => [w.name, Float32Array.from({ length: w.dims[0] * w.dims[1] }, next)]));
}

function constantScores(weights: PrunableWeight[], value: number): Scores {
  return new Map(weights.map((w) => [w.name, new Float32Array(w.dims[0] * w.dims[1]).fill(value)]));
}

/** Elements of row (output unit) o as [score, keep] pairs in input order. */
function row(w: PrunableWeight, scores: Scores, mask: Mask, o: number): [number, number][] {
  const s = scores.get(w.name)!;
  const keep = mask.get(w.name)!.keep;
  return Array.from({ length: inputUnits(w) }, (_, i) => [s[elementIndex(w, o, i)], keep[elementIndex(w, o, i)]]);
}

function pruned(pairs: [number, number][]): number {
  return pairs.filter(([, k]) => k === 0).length;
}

/** Every pruned score ≤ every kept score. */
function assertSeparated(pairs: [number, number][], what: string): void {
  const maxPruned = Math.max(...pairs.filter(([, k]) => k === 0).map(([s]) => s));
  const minKept = Math.min(...pairs.filter(([, k]) => k === 1).map(([s]) => s));
  assert.ok(maxPruned <= minKept, `${what}: pruned score ${maxPruned} > kept score ${minKept}`);
}

function allPairs(weights: PrunableWeight[], scores: Scores, mask: Mask): [number, number][] {
  return weights.flatMap((w) => Array.from(scores.get(w.name)!, (s, j): [number, number] => [s, mask.get(w.name)!.keep[j]]));
}

const WEIGHTS = [weight('matmul.in_out', [37, 23], 1), weight('gemm.out_in', [19, 41], 0, 1), weight('square', [16, 16], 1, 2)];

describe('allocation', () => {
  const scores = randomScores(WEIGHTS);

  for (const sparsity of [0.1, 0.5, 0.73]) {
    it(`row: every output unit loses exactly round(${sparsity} × inputs), its lowest-scoring weights`, () => {
      const mask = allocateMask(scores, WEIGHTS, sparsity, { allocation: 'row' });
      for (const w of WEIGHTS) {
        for (let o = 0; o < outputUnits(w); o++) {
          const pairs = row(w, scores, mask, o);
          assert.equal(pruned(pairs), Math.round(sparsity * inputUnits(w)), `${w.name} row ${o}`);
          assertSeparated(pairs, `${w.name} row ${o}`);
        }
      }
    });

    it(`layer: every weight loses exactly round(${sparsity} × size), its lowest-scoring elements`, () => {
      const mask = allocateMask(scores, WEIGHTS, sparsity, { allocation: 'layer' });
      for (const w of WEIGHTS) {
        const pairs = allPairs([w], scores, mask);
        assert.equal(pruned(pairs), Math.round(sparsity * pairs.length), w.name);
        assertSeparated(pairs, w.name);
      }
    });

    it(`global: the model loses exactly round(${sparsity} × all), one threshold over all weights`, () => {
      const mask = allocateMask(scores, WEIGHTS, sparsity, { allocation: 'global' });
      const pairs = allPairs(WEIGHTS, scores, mask);
      assert.equal(pruned(pairs), Math.round(sparsity * pairs.length));
      assertSeparated(pairs, 'all weights');
      const perWeight = WEIGHTS.map((w) => pruned(allPairs([w], scores, mask)) / (w.dims[0] * w.dims[1]));
      assert.ok(Math.max(...perWeight) - Math.min(...perWeight) > 0.01, `global cut differs per weight: ${perWeight.join(', ')}`);
    });
  }

  it('row masks follow the output axis: a [in, out] MatMul weight prunes down columns, a [out, in] Gemm weight along rows', () => {
    const w = weight('w', [4, 3], 1);
    // Column o holds scores o*10 + i: the lowest input of each output unit is input 0.
    const s = new Float32Array(12);
    for (let i = 0; i < 4; i++) for (let o = 0; o < 3; o++) s[i * 3 + o] = o * 10 + (i === 2 ? -1 : i);
    const keep = allocateMask(new Map([['w', s]]), [w], 0.25, { allocation: 'row' }).get('w')!.keep;
    assert.deepEqual([...keep], [1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1], 'input 2 (score −1) is dropped from every output unit');
    const g = weight('g', [3, 4], 0);
    const keepG = allocateMask(new Map([['g', s]]), [g], 0.25, { allocation: 'row' }).get('g')!.keep;
    // Row o of the [out, in] weight is s[4o … 4o+3]: its minimum goes.
    const expected = [0, 1, 2].flatMap((o) => {
      const r = [...s.subarray(o * 4, o * 4 + 4)];
      const min = r.indexOf(Math.min(...r));
      return r.map((_, i) => (i === min ? 0 : 1));
    });
    assert.deepEqual([...keepG], expected);
  });

  it('ties are broken by index: equal scores prune the first inputs, the first elements, the first weights', () => {
    const same = constantScores(WEIGHTS, 0.5);
    const rowMask = allocateMask(same, WEIGHTS, 0.3, { allocation: 'row' });
    for (const w of WEIGHTS) {
      const k = Math.round(0.3 * inputUnits(w));
      for (let o = 0; o < outputUnits(w); o++)
        assert.deepEqual(
          row(w, same, rowMask, o).map(([, keep]) => keep),
          Array.from({ length: inputUnits(w) }, (_, i) => (i < k ? 0 : 1)),
        );
    }
    const layerMask = allocateMask(same, WEIGHTS, 0.3, { allocation: 'layer' });
    for (const w of WEIGHTS) {
      const k = Math.round(0.3 * w.dims[0] * w.dims[1]);
      assert.deepEqual(
        [...layerMask.get(w.name)!.keep],
        Array.from({ length: w.dims[0] * w.dims[1] }, (_, j) => (j < k ? 0 : 1)),
      );
    }
    const total = WEIGHTS.reduce((n, w) => n + w.dims[0] * w.dims[1], 0);
    const globalMask = allocateMask(same, WEIGHTS, 0.5, { allocation: 'global' });
    const flat = WEIGHTS.flatMap((w) => [...globalMask.get(w.name)!.keep]);
    assert.deepEqual(
      flat,
      Array.from({ length: total }, (_, j) => (j < Math.round(0.5 * total) ? 0 : 1)),
    );
  });

  it('ties at the cut among distinct scores: only as many tied elements as needed are pruned, lowest index first', () => {
    const w = weight('w', [1, 6], 0);
    const s = Float32Array.from([3, 1, 2, 1, 1, 0]);
    const keep = allocateMask(new Map([['w', s]]), [w], 0.5, { allocation: 'layer' }).get('w')!.keep;
    assert.deepEqual([...keep], [1, 0, 1, 0, 1, 0], '0 first, then the first two of the three 1s');
    // −0 and +0 are the same score, so the index decides.
    const z = Float32Array.from([0, -0, 0, -0]);
    const keepZ = allocateMask(new Map([['z', z]]), [weight('z', [1, 4], 0)], 0.5, { allocation: 'layer' }).get('z')!.keep;
    assert.deepEqual([...keepZ], [0, 0, 1, 1]);
  });

  for (const allocation of ['layer', 'global'] as const) {
    it(`structured (${allocation}): whole output units go, those with the lowest summed score`, () => {
      const mask = allocateMask(scores, WEIGHTS, 0.4, { allocation, structured: true });
      const units = WEIGHTS.flatMap((w) =>
        Array.from({ length: outputUnits(w) }, (_, o) => {
          const pairs = row(w, scores, mask, o);
          const keeps = new Set(pairs.map(([, k]) => k));
          assert.equal(keeps.size, 1, `${w.name} unit ${o} is kept or pruned as a whole`);
          return { w, sum: pairs.reduce((a, [s]) => a + s, 0), keep: pairs[0][1] };
        }),
      );
      const groups = allocation === 'global' ? [units] : WEIGHTS.map((w) => units.filter((u) => u.w === w));
      for (const g of groups) {
        assert.equal(g.filter((u) => u.keep === 0).length, Math.round(0.4 * g.length));
        assertSeparated(
          g.map((u) => [u.sum, u.keep]),
          `${allocation} units`,
        );
      }
    });
  }

  for (const options of [
    { allocation: 'row' },
    { allocation: 'layer' },
    { allocation: 'global' },
    { allocation: 'global', structured: true },
  ] as AllocationOptions[]) {
    it(`sparsity 0 keeps everything and 1 prunes everything (${JSON.stringify(options)})`, () => {
      const [none, all] = allocateMasks(scores, WEIGHTS, [0, 1], options);
      for (const w of WEIGHTS) {
        assert.ok(none.get(w.name)!.keep.every((k) => k === 1));
        assert.ok(all.get(w.name)!.keep.every((k) => k === 0));
        assert.deepEqual(none.get(w.name)!.dims, w.dims);
      }
    });
  }

  it('a sweep from one allocator equals single allocations, and masks are nested as sparsity grows', () => {
    for (const allocation of ['row', 'layer', 'global'] as const) {
      const sweep = allocateMasks(scores, WEIGHTS, [0.2, 0.5, 0.8], { allocation });
      [0.2, 0.5, 0.8].forEach((s, i) => {
        const single = allocateMask(scores, WEIGHTS, s, { allocation });
        for (const w of WEIGHTS) assert.deepEqual(sweep[i].get(w.name)!.keep, single.get(w.name)!.keep);
      });
      for (const w of WEIGHTS) {
        const [a, b] = [sweep[0].get(w.name)!.keep, sweep[1].get(w.name)!.keep];
        a.forEach((k, j) => assert.ok(!(k === 0 && b[j] === 1), `${allocation} ${w.name}[${j}] pruned at 0.2 but kept at 0.5`));
      }
    }
  });

  it('reports achieved sparsity per weight, per block and overall', () => {
    const mask = allocateMask(scores, WEIGHTS, 0.5, { allocation: 'row' });
    const a = achievedSparsity(mask, WEIGHTS);
    const expectPruned = WEIGHTS.map((w) => outputUnits(w) * Math.round(0.5 * inputUnits(w)));
    assert.equal(
      a.pruned,
      expectPruned.reduce((x, y) => x + y, 0),
    );
    assert.equal(a.total, 37 * 23 + 19 * 41 + 256);
    assert.equal(a.overall, a.pruned / a.total);
    assert.equal(a.perWeight['matmul.in_out'], (23 * Math.round(0.5 * 37)) / (37 * 23));
    assert.deepEqual(Object.keys(a.perLayer).sort(), ['0', '1', '2']);
    assert.equal(a.perLayer['1'], (19 * Math.round(0.5 * 41)) / (19 * 41));
  });

  it('refuses a bad sparsity, structured row allocation, missing or mis-sized scores and NaN with clear errors', () => {
    for (const bad of [-0.1, 1.5, Number.NaN, Infinity]) {
      assert.throws(
        () => allocateMask(scores, WEIGHTS, bad, { allocation: 'row' }),
        (e: unknown) => LrpLensError.is(e, 'bad-argument') && /between 0 and 1/.test(e.message),
        String(bad),
      );
    }
    const allocator = prepareAllocation(scores, WEIGHTS, { allocation: 'layer' });
    assert.throws(
      () => allocator.mask(2),
      (e: unknown) => LrpLensError.is(e, 'bad-argument'),
    );
    assert.throws(() => allocateMask(scores, WEIGHTS, 0.5, { allocation: 'row', structured: true }), /Use --allocation layer or global/);
    assert.throws(() => allocateMask(scores, WEIGHTS, 0.5, { allocation: 'rows' as never }), /Unknown allocation 'rows'/);
    assert.throws(() => allocateMask(new Map(), WEIGHTS, 0.5, { allocation: 'row' }), /No scores for weight matmul.in_out/);
    const short = new Map(scores);
    short.set('square', new Float32Array(10));
    assert.throws(
      () => allocateMask(short, WEIGHTS, 0.5, { allocation: 'row' }),
      /square hold 10 values but the weight \[16, 16\] has 256/,
    );
    const nan = new Map(scores);
    nan.set('square', new Float32Array(256).fill(Number.NaN));
    assert.throws(() => allocateMask(nan, WEIGHTS, 0.5, { allocation: 'global' }), /Score 0 of square is NaN/);
    assert.throws(() => allocateMask(scores, [], 0.5, { allocation: 'global' }), /No prunable weights/);
  });
});
