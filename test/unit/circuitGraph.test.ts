/** The circuit graph builder: a pure function of weights, scores and mask; layout, JSON and SVG. */
import assert from 'node:assert/strict';
import { buildCircuitGraph } from '../../src/engine/circuits/circuitGraph';
import type { CircuitGraph, CircuitGraphInput } from '../../src/engine/circuits/circuitGraph';
import { circuitGraphToJson, circuitGraphToSvg, layoutCircuitGraph } from '../../src/engine/circuits/circuitLayout';
import { LrpLensError } from '../../src/engine/errors';
import { mulberry32 } from '../../src/engine/random';
import { elementIndex } from '../../src/engine/weights/types';
import type { LinearKind, Mask, PrunableWeight, Scores } from '../../src/engine/weights/types';

/** A two-block Llama-shaped set: d = 4, two query heads of size 2 sharing one k/v head, 3 MLP neurons, vocab 6. */
function llamaWeights(): PrunableWeight[] {
  const block = (l: number): PrunableWeight[] => {
    const w = (kind: LinearKind, inp: number, out: number): PrunableWeight => ({
      name: `layers.${l}.${kind}.weight`,
      dims: [inp, out],
      outAxis: 1,
      layer: l,
      kind,
    });
    return [w('q', 4, 4), w('k', 4, 2), w('v', 4, 2), w('o', 4, 4), w('gate', 4, 3), w('up', 4, 3), w('down', 3, 4)];
  };
  return [...block(0), ...block(1), { name: 'lm_head.weight', dims: [6, 4], outAxis: 0, layer: null, kind: 'lm_head' }];
}

function randomScores(weights: PrunableWeight[], seed: number): Scores {
  const rand = mulberry32(seed);
  return new Map(weights.map((w) => [w.name, Float32Array.from({ length: w.dims[0] * w.dims[1] }, () => rand() * 2 - 1)]));
}

function randomMask(weights: PrunableWeight[], seed: number, keep: number): Mask {
  const rand = mulberry32(seed);
  return new Map(
    weights.map((w) => [
      w.name,
      { dims: [...w.dims], keep: Uint8Array.from({ length: w.dims[0] * w.dims[1] }, () => (rand() < keep ? 1 : 0)) },
    ]),
  );
}

function input(over: Partial<CircuitGraphInput> = {}): CircuitGraphInput {
  const weights = llamaWeights();
  return { weights, scores: randomScores(weights, 1), mask: randomMask(weights, 2, 0.3), granularity: 'weights', topK: 25, ...over };
}

/** (out, in) units of a node pair: the ids end in the unit index. */
const unitOf = (id: string) => Number(id.split('.').pop());

describe('circuit graph', () => {
  it('weight-level edges are kept elements only, with their own relevance, between the right units', () => {
    const inp = input({ topK: 1000 });
    const huge = inp.weights[4]; // layer 0 gate
    const pruned = inp.mask.get(huge.name)!.keep.indexOf(0);
    inp.scores.get(huge.name)![pruned] = 100;
    const g = buildCircuitGraph(inp);
    const kept = [...inp.mask.values()].reduce((a, m) => a + m.keep.reduce((s, k) => s + k, 0), 0);
    assert.equal(g.edges.length, kept, 'with k above the kept count every kept element is an edge');
    assert.ok(
      g.edges.every((e) => Math.abs(e.relevance) <= 1),
      'the pruned element with relevance 100 is no edge',
    );
    const byName = new Map(inp.weights.map((w) => [w.name, w]));
    const nodeIds = new Set(g.nodes.map((n) => n.id));
    for (const e of g.edges) {
      const w = byName.get(e.weights[0])!;
      const i = elementIndex(w, unitOf(e.target), unitOf(e.source));
      assert.equal(inp.mask.get(w.name)!.keep[i], 1, `${e.source} → ${e.target} goes through a kept element of ${w.name}`);
      assert.equal(e.relevance, inp.scores.get(w.name)![i]);
      assert.ok(nodeIds.has(e.source) && nodeIds.has(e.target));
    }
    const q0 = g.edges.find((e) => e.weights[0] === 'layers.0.q.weight')!;
    assert.match(q0.source, /^embed\.-1\.\d$/, 'block 0 reads the embeddings');
    assert.match(q0.target, /^q\.0\.\d$/);
    const down1 = g.edges.find((e) => e.weights[0] === 'layers.1.down.weight')!;
    assert.match(down1.source, /^mlp\.1\./);
    assert.match(down1.target, /^resid\.1\./);
    assert.ok(
      g.edges.some((e) => e.weights[0] === 'lm_head.weight' && /^resid\.1\./.test(e.source) && /^logits\.2\./.test(e.target)),
      'the LM head reads the last residual',
    );
  });

  it('keeps the top-k edges by |relevance|, largest first, and only their endpoints as nodes', () => {
    const inp = input({ topK: 7 });
    const g = buildCircuitGraph(inp);
    const all = inp.weights.flatMap((w) => [...inp.scores.get(w.name)!].filter((_, i) => inp.mask.get(w.name)!.keep[i]).map(Math.abs));
    all.sort((a, b) => b - a);
    assert.deepEqual(
      g.edges.map((e) => Math.abs(e.relevance)),
      all.slice(0, 7),
    );
    const ends = new Set(g.edges.flatMap((e) => [e.source, e.target]));
    assert.deepEqual(new Set(g.nodes.map((n) => n.id)), ends);
    assert.equal(buildCircuitGraph({ ...inp, topK: 0 }).edges.length, 0);
  });

  it('an all-pruned mask, or weights without scores, give an empty graph; a weight missing from the mask is kept whole', () => {
    const inp = input();
    const none: Mask = new Map([...inp.mask].map(([k, m]) => [k, { dims: m.dims, keep: new Uint8Array(m.keep.length) }]));
    for (const granularity of ['weights', 'neurons', 'heads'] as const) {
      const g = buildCircuitGraph({ ...inp, mask: none, granularity, headSize: 2 });
      assert.deepEqual([g.nodes.length, g.edges.length], [0, 0], granularity);
    }
    assert.equal(buildCircuitGraph({ ...inp, scores: new Map() }).nodes.length, 0);
    const dense = buildCircuitGraph({ ...inp, mask: new Map(), topK: 100000 });
    assert.equal(
      dense.edges.length,
      inp.weights.reduce((a, w) => a + w.dims[0] * w.dims[1], 0),
    );
  });

  it('neurons: all kept components are nodes; relevance = sum of kept elements into them (out of them where none comes in)', () => {
    const inp = input({ granularity: 'neurons', topK: 0 });
    const g = buildCircuitGraph(inp);
    const mlp = g.nodes.filter((n) => n.kind === 'mlp' && n.layer === 0);
    assert.equal(mlp.length, 3);
    const w = (k: string) => inp.weights.find((x) => x.name === `layers.0.${k}.weight`)!;
    for (const n of mlp) {
      let expected = 0;
      let written = false;
      for (const k of ['gate', 'up'])
        for (let i = 0; i < 4; i++) {
          const e = elementIndex(w(k), n.index, i);
          if (inp.mask.get(w(k).name)!.keep[e]) [expected, written] = [expected + inp.scores.get(w(k).name)![e], true];
        }
      for (let o = 0; o < 4 && !written; o++) {
        const e = elementIndex(w('down'), o, n.index);
        if (inp.mask.get(w('down').name)!.keep[e]) expected += inp.scores.get(w('down').name)![e];
      }
      assert.ok(Math.abs(n.relevance - expected) < 1e-6, `${n.id}: ${n.relevance} vs ${expected}`);
    }
    const embed = g.nodes.filter((n) => n.kind === 'embed');
    assert.ok(embed.length > 0 && embed.every((n) => n.layer === -1), 'embeddings: relevance out of them (no weight writes them)');
  });

  it('heads: attention units grouped per head, k/v heads shared by the query heads they serve, edges summed', () => {
    const inp = input({ granularity: 'heads', headSize: 2, mask: new Map(), topK: 1000 });
    const g = buildCircuitGraph(inp);
    const heads0 = g.nodes.filter((n) => n.kind === 'head' && n.layer === 0);
    assert.deepEqual(
      heads0.map((n) => n.index),
      [0, 1],
    );
    const sum = (name: string) => inp.scores.get(name)!.reduce((a, b) => a + b, 0);
    const into = ['q', 'k', 'v'].reduce((a, k) => a + sum(`layers.0.${k}.weight`), 0);
    assert.ok(Math.abs(heads0[0].relevance + heads0[1].relevance - into) < 1e-5, 'q, k and v relevance all lands in the two heads');
    const embedToHeads = g.edges.filter((e) => e.source === 'embed.-1.0' && e.target.startsWith('head.0.'));
    assert.equal(embedToHeads.length, 2);
    assert.deepEqual(
      new Set(embedToHeads.flatMap((e) => e.weights)),
      new Set(['layers.0.q.weight', 'layers.0.k.weight', 'layers.0.v.weight']),
    );
    assert.ok(Math.abs(embedToHeads.reduce((a, e) => a + e.relevance, 0) - into) < 1e-5);
    assert.deepEqual(
      g.nodes.filter((n) => n.kind === 'mlp').map((n) => n.id),
      ['mlp.0.0', 'mlp.1.0'],
      'other sides are one node each',
    );
  });

  it('splits a fused GPT-2 qkv into q, k and v', () => {
    const w: PrunableWeight = { name: 'h.0.attn.c_attn.weight', dims: [2, 6], outAxis: 1, layer: 0, kind: 'qkv' };
    const g = buildCircuitGraph({
      weights: [w],
      scores: new Map([[w.name, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])]]),
      mask: new Map(),
      granularity: 'neurons',
      topK: 12,
    });
    assert.deepEqual(
      g.nodes.filter((n) => n.site === 'attn').map((n) => n.id),
      ['q.0.0', 'q.0.1', 'k.0.0', 'k.0.1', 'v.0.0', 'v.0.1'],
    );
    assert.deepEqual(g.edges[0], { source: 'embed.-1.1', target: 'v.0.1', relevance: 12, weights: [w.name] });
  });

  it('refuses mismatched scores or masks, a bad k, and heads without a head size', () => {
    const isBad = (re: RegExp) => (e: unknown) => LrpLensError.is(e, 'bad-argument') && re.test(e.message);
    const inp = input();
    assert.throws(
      () => buildCircuitGraph({ ...inp, scores: new Map([['layers.0.q.weight', new Float32Array(3)]]) }),
      isBad(/Scores of layers\.0\.q\.weight hold 3 values, but the weight has 16/),
    );
    assert.throws(
      () => buildCircuitGraph({ ...inp, mask: new Map([['layers.0.q.weight', { dims: [4], keep: new Uint8Array(4) }]]) }),
      isBad(/belongs to another model/),
    );
    assert.throws(() => buildCircuitGraph({ ...inp, topK: -1 }), isBad(/topK/));
    assert.throws(() => buildCircuitGraph({ ...inp, granularity: 'heads' }), isBad(/needs the head size/));
  });
});

describe('circuit graph layout and export', () => {
  let g: CircuitGraph;
  before(() => {
    g = buildCircuitGraph(input({ granularity: 'neurons', topK: 40 }));
  });

  it('puts a row on one y, embeddings at the bottom, logits on top, blocks in order; x within [0, 1]', () => {
    const pos = layoutCircuitGraph(g);
    const yOfRow = new Map<string, number>();
    for (const n of g.nodes) {
      const p = pos.get(n.id)!;
      const row = `${n.layer}.${n.site}`;
      if (yOfRow.has(row)) assert.equal(p.y, yOfRow.get(row), `${n.id} shares its row's y`);
      yOfRow.set(row, p.y);
      assert.ok(p.x > 0 && p.x < 1);
    }
    assert.equal(yOfRow.get('-1.embed'), 0);
    assert.equal(yOfRow.get('2.logits'), 1);
    const ys = ['-1.embed', '0.attn', '0.resid_mid', '0.mlp', '0.resid', '1.attn', '1.mlp', '1.resid', '2.logits'].map((r) =>
      yOfRow.get(r)!,
    );
    assert.ok(
      ys.every((y, i) => i === 0 || y > ys[i - 1]),
      `rows ascend: ${ys.join(', ')}`,
    );
    const [q, k] = ['q.0.3', 'k.0.0'].map((id) => pos.get(id)?.x);
    if (q !== undefined && k !== undefined) assert.ok(q < k, 'q units before k units in the attention row');
  });

  it('serialises to JSON with positions', () => {
    const j = JSON.parse(circuitGraphToJson(g)) as { nodes: { x: number; y: number }[]; edges: unknown[] };
    assert.equal(j.nodes.length, g.nodes.length);
    assert.equal(j.edges.length, g.edges.length);
    assert.ok(j.nodes.every((n) => typeof n.x === 'number' && typeof n.y === 'number'));
  });

  it('writes a standalone SVG with one circle per node, one line per edge, and every text escaped', () => {
    const w: PrunableWeight = { name: `evil<script>alert("x")</script>&'`, dims: [2, 2], outAxis: 1, layer: 0, kind: 'up' };
    const bad = buildCircuitGraph({
      weights: [w],
      scores: new Map([[w.name, Float32Array.from([1, -2, 3, -4])]]),
      mask: new Map(),
      granularity: 'weights',
      topK: 4,
    });
    const svg = circuitGraphToSvg(bad, { title: 'a <b> & "c"' });
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"') && svg.endsWith('</svg>'));
    assert.ok(!svg.includes('<script') && !svg.includes('<b>'));
    assert.ok(svg.includes('evil&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;'));
    assert.ok(svg.includes('<title>a &lt;b&gt; &amp; &quot;c&quot;</title>'));
    assert.equal((svg.match(/<circle /g) ?? []).length, bad.nodes.length);
    assert.equal((svg.match(/<line /g) ?? []).length, 4);
    assert.ok(svg.includes('#2166ac') && svg.includes('#b2182b'), 'negative and positive relevance in their colours');
    assert.equal((circuitGraphToSvg(g).match(/<circle /g) ?? []).length, g.nodes.length);
  });
});
