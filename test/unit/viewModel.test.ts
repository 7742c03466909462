/** The colour scale, the panel's view model (on the real stories260k result) and its SVG rendering. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import type { AttributionResult } from '../../src/engine/attribution/result';
import { NEGATIVE, NEUTRAL, POSITIVE, divergingColor, legendStops, normalise, textColorOn } from '../../src/views/colors';
import { heatmapSvg, neuronBarsSvg, reportSvg, tokenHeatmapSvg } from '../../src/views/relevancePanel/svg';
import {
  CANVAS_MIN_CELLS,
  MAX_WIDTH,
  cellAt,
  cellRect,
  cellTitle,
  drawsOnCanvas,
  heatmapLayout,
  heatmapRgba,
  layoutOf,
  moveCell,
} from '../../src/views/relevancePanel/heatmapLayout';
import { buildViewModel, lazy, neuronBars, ranksByMagnitude } from '../../src/views/relevancePanel/viewModel';
import { HOSTILE_TEXTS, fixtureResult } from '../fixtures/attributionResults';
import { STORIES, requireShared } from '../support/sharedFolder';

describe('diverging colour scale', () => {
  it('maps zero (and NaN) to the neutral colour and ±1 to the two hues', () => {
    assert.deepEqual(divergingColor(0), NEUTRAL);
    assert.deepEqual(divergingColor(Number.NaN), NEUTRAL);
    assert.deepEqual(divergingColor(1), POSITIVE);
    assert.deepEqual(divergingColor(-1), NEGATIVE);
    assert.deepEqual(divergingColor(5), POSITIVE, 'clamped');
  });

  it('gives positive values the red hue and negative values the blue hue', () => {
    const [rp, , bp] = divergingColor(0.5);
    const [rn, , bn] = divergingColor(-0.5);
    assert.ok(rp > bp, `positive ${divergingColor(0.5)}`);
    assert.ok(bn > rn, `negative ${divergingColor(-0.5)}`);
  });

  it('is symmetric: |v| sets the distance from neutral on both sides', () => {
    const distance = (c: number[]) => Math.hypot(...c.map((x, i) => x - NEUTRAL[i]));
    const fraction = (c: number[], end: number[]) => distance(c) / distance(end);
    for (const v of [0.1, 0.25, 0.5, 0.9]) {
      assert.ok(Math.abs(fraction(divergingColor(v), POSITIVE) - fraction(divergingColor(-v), NEGATIVE)) < 0.01, `v=${v}`);
    }
    const stops = legendStops(2, 9);
    assert.equal(stops[4].value, 0);
    assert.equal(stops[4].color, 'rgb(247, 247, 247)');
    assert.deepEqual(
      stops.map((s) => s.value),
      stops.map((s) => 0 - s.value + 0).reverse(),
    );
  });

  it('normalises by the largest magnitude and reads text in a contrasting colour', () => {
    assert.deepEqual(normalise([2, -4, 0]), [0.5, -1, 0]);
    assert.deepEqual(normalise([0, 0]), [0, 0]);
    assert.equal(textColorOn(NEUTRAL), '#000000');
    assert.equal(textColorOn(NEGATIVE), '#ffffff');
  });
});

describe('relevance view model', () => {
  it('ranks tokens by |relevance|', () => {
    assert.deepEqual(ranksByMagnitude([0.1, -3, 2, 0]), [3, 1, 2, 4]);
  });

  it('shows the top-k neurons of the chosen layer by |relevance|, negative ones included', () => {
    const bars = neuronBars([[9], [1, -5, 3, 0]], 1, 2);
    assert.deepEqual(
      bars.bars.map((b) => [b.neuron, b.value]),
      [
        [1, -5],
        [2, 3],
      ],
    );
    assert.equal(bars.count, 4);
    assert.equal(bars.bars[0].color, 'rgb(33, 102, 172)', 'the largest negative gets the negative end');
  });

  it('escapes token text with <script>, & and quotes in the SVG figures', () => {
    const vm = buildViewModel(fixtureResult({ texts: HOSTILE_TEXTS }));
    const markup = [tokenHeatmapSvg(vm.tokens), heatmapSvg(vm.layerTokens), reportSvg(vm)].join('');
    assert.ok(!markup.includes('<script'), 'no raw <script');
    assert.ok(!/Tom & Jerry/.test(markup), 'no raw &');
    assert.ok(markup.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(markup.includes('Tom &amp; Jerry'));
    assert.ok(markup.includes('&quot;quoted&quot;') || markup.includes('\\&quot;quoted\\&quot;'));
    assert.ok(markup.includes('it&#39;s'));
  });

  it('the exported report names what it explains: target, foil and position', () => {
    const result = fixtureResult({ texts: ['<s>', 'Once', ' named'] });
    assert.match(reportSvg(buildViewModel(result)), /logit &quot; Lily&quot; at position 2/);
    result.target.foil = { id: 9, text: ' Tom', logit: 1, prob: 0.1 };
    assert.match(reportSvg(buildViewModel(result)), /logit &quot; Lily&quot; − logit &quot; Tom&quot; at position 2/);
  });

  it('renders 1,000 tokens × 30 layers × 32 heads within bounded dimensions (its time is measured by `run.sh render` in npm run bench)', () => {
    const result = fixtureResult({ texts: Array.from({ length: 1000 }, (_, i) => ` tok${i}`), layers: 30, heads: 32, neurons: 4096 });
    const render = () => {
      const t0 = performance.now();
      const vm = buildViewModel(result);
      const t1 = performance.now();
      const svgs = [tokenHeatmapSvg(vm.tokens), heatmapSvg(vm.layerTokens), heatmapSvg(vm.heads), neuronBarsSvg(vm.neurons)];
      const t2 = performance.now();
      const report = reportSvg(vm);
      const t3 = performance.now();
      return { vm, svgs, report, times: [t1 - t0, t2 - t1, t3 - t2] };
    };
    const cold = render();
    const warm = render();
    for (const [name, { times, report }] of [
      ['cold', cold],
      ['warm', warm],
    ] as const) {
      const [vmMs, figuresMs, reportMs] = times.map((t) => t.toFixed(1));
      console.log(
        `      ${name}: view model ${vmMs} ms, figures ${figuresMs} ms (target < 200 ms together), report ${reportMs} ms (${(report.length / 1e6).toFixed(2)} MB)`,
      );
    }
    const { vm, svgs } = cold;
    assert.equal(vm.layerTokens.cells.length, 30 * 1000);
    assert.equal(vm.heads.cells.length, 30 * 32);
    const width = Number(/width="([\d.]+)"/.exec(svgs[1])![1]);
    assert.ok(width <= 1200, `layer × token heatmap ${width} px wide`);
    assert.ok(svgs.every((s) => s.startsWith('<svg')));
  });
});

describe('heatmap layout, hit-testing and canvas colours', () => {
  it('lays out many columns within MAX_WIDTH, with column labels only where they fit', () => {
    const wide = heatmapLayout(30, 1000);
    assert.ok(wide.width <= MAX_WIDTH, `${wide.width} px`);
    assert.ok(wide.cellWidth >= 1);
    assert.equal(wide.showColLabels, false);
    assert.equal(wide.cellHeight, 12, 'more than 24 rows: short rows');
    const narrow = heatmapLayout(5, 8);
    assert.equal(narrow.cellWidth, 28);
    assert.equal(narrow.showColLabels, true);
    assert.equal(narrow.height, narrow.top + 5 * narrow.cellHeight);
  });

  it('agrees with the SVG figure: same width, height and first cell', () => {
    const vm = buildViewModel(fixtureResult({ texts: Array.from({ length: 40 }, (_, i) => ` t${i}`), layers: 6 }));
    const layout = layoutOf(vm.layerTokens);
    const svg = heatmapSvg(vm.layerTokens);
    const attr = (name: string) => Number(new RegExp(`<svg[^>]* ${name}="([\\d.]+)"`).exec(svg)![1]);
    assert.ok(Math.abs(attr('width') - layout.width) < 0.01);
    assert.ok(Math.abs(attr('height') - layout.height) < 0.01);
    const first = /<rect x="([\d.]+)" y="([\d.]+)"/.exec(svg)!;
    assert.deepEqual([Number(first[1]), Number(first[2])], [layout.left, layout.top]);
  });

  it('finds the cell under a point, and nothing off the grid (the inverse of cellRect)', () => {
    const layout = heatmapLayout(30, 1000);
    for (const cell of [
      { row: 0, col: 0 },
      { row: 29, col: 999 },
      { row: 7, col: 123 },
    ]) {
      const r = cellRect(layout, cell);
      assert.deepEqual(cellAt(layout, r.x + r.width / 2, r.y + r.height / 2), cell);
      assert.deepEqual(cellAt(layout, r.x, r.y), cell, 'top-left edge belongs to the cell');
    }
    assert.equal(cellAt(layout, layout.left - 1, layout.top + 1), undefined, 'row labels');
    assert.equal(cellAt(layout, layout.left + 1, layout.top - 1), undefined, 'above the grid');
    assert.equal(cellAt(layout, layout.left + 1000 * layout.cellWidth + 0.01, layout.top + 1), undefined, 'right of the grid');
    assert.equal(cellAt(layout, layout.left + 1, layout.top + 30 * layout.cellHeight), undefined, 'below the grid');
    assert.equal(cellAt(layout, Number.NaN, 10), undefined);
  });

  it('moves the highlighted cell with the arrow keys, clamped to the grid', () => {
    const layout = heatmapLayout(3, 4);
    assert.deepEqual(moveCell(layout, undefined, 1, 0), { row: 0, col: 0 }, 'the first key press selects the first cell');
    assert.deepEqual(moveCell(layout, { row: 0, col: 0 }, -1, -1), { row: 0, col: 0 });
    assert.deepEqual(moveCell(layout, { row: 1, col: 2 }, 1, 1), { row: 2, col: 3 });
    assert.deepEqual(moveCell(layout, { row: 2, col: 3 }, 1, 1), { row: 2, col: 3 });
    assert.equal(moveCell(heatmapLayout(0, 0), undefined, 1, 0), undefined);
  });

  it('names a cell like the SVG title does, unescaped', () => {
    const vm = buildViewModel(fixtureResult({ texts: HOSTILE_TEXTS, layers: 3 }));
    const cell = vm.layerTokens.cells.find((c) => c.row === 2 && c.col === 1)!;
    assert.equal(cellTitle(vm.layerTokens, { row: 2, col: 1 }), `layer 2, "<script>alert(1)</script>" (1): ${cell.value.toFixed(4)}`);
    assert.equal(
      cellTitle(vm.heads, { row: 1, col: 3 }),
      `layer 1, head 3: ${vm.heads.cells.find((c) => c.row === 1 && c.col === 3)!.value.toFixed(4)}`,
    );
  });

  it('colours canvas pixels on the same diverging scale as the cells, opaque; missing cells stay transparent', () => {
    const vm = buildViewModel(fixtureResult({ texts: Array.from({ length: 50 }, (_, i) => ` t${i}`), layers: 4 }));
    const map = vm.layerTokens;
    const pixels = heatmapRgba(map);
    assert.equal(pixels.length, 4 * 50 * 4);
    for (const cell of map.cells) {
      const i = (cell.row * 50 + cell.col) * 4;
      assert.equal(`rgb(${pixels[i]}, ${pixels[i + 1]}, ${pixels[i + 2]})`, cell.color, `cell ${cell.row},${cell.col}`);
      assert.equal(pixels[i + 3], 255);
    }
    const extreme = map.cells.reduce((a, b) => (Math.abs(b.value) > Math.abs(a.value) ? b : a));
    const i = (extreme.row * 50 + extreme.col) * 4;
    assert.deepEqual([...pixels.slice(i, i + 3)], extreme.value > 0 ? POSITIVE : NEGATIVE, 'the largest |value| gets an end of the scale');
    const ragged = { ...map, cells: map.cells.filter((c) => !(c.row === 1 && c.col === 2)) };
    assert.equal(heatmapRgba(ragged)[(1 * 50 + 2) * 4 + 3], 0);
  });

  it('draws large heatmaps on a canvas and small ones as SVG', () => {
    const big = buildViewModel(fixtureResult({ texts: Array.from({ length: 1000 }, (_, i) => ` t${i}`), layers: 30, heads: 32 }));
    assert.ok(drawsOnCanvas(big.layerTokens));
    assert.ok(drawsOnCanvas(big.heads), '30 × 32 heads');
    const small = buildViewModel(fixtureResult({ texts: Array.from({ length: 14 }, (_, i) => ` t${i}`), layers: 5, heads: 8 }));
    assert.ok(!drawsOnCanvas(small.layerTokens) && !drawsOnCanvas(small.heads), 'stories260k-sized maps stay SVG');
    assert.ok(5 * 14 <= CANVAS_MIN_CELLS);
  });

  it('builds the per-tab figures of the view model on first read, once', () => {
    let calls = 0;
    const target: { x?: number } = {};
    lazy(target, 'x', () => ++calls);
    assert.equal(calls, 0);
    assert.deepEqual(Object.keys(target), ['x'], 'enumerable before it is read');
    assert.equal(target.x, 1);
    assert.equal(target.x, 1);
    assert.equal(calls, 1);
    const vm = buildViewModel(fixtureResult({ texts: ['<s>', ' a', ' b'] }));
    assert.equal(vm.layerTokens, vm.layerTokens, 'the same object on every read');
    assert.equal(vm.neurons.layer, 1);
  });
});

describe('relevance view model of the stories260k attribution', function () {
  let result: AttributionResult;

  before(async function () {
    requireShared(this);
    process.env.LRP_LENS_CACHE = mkdtempSync(join(tmpdir(), 'lrp-cache-'));
    const engine = await AttributionEngine.load(STORIES, { offline: true });
    try {
      result = await engine.attribute({ prompt: 'Once upon a time, there was a little girl named' });
    } finally {
      await engine.release();
    }
  });

  it('has one entry per token, 5 layers × tokens, 5 × 8 heads, 172 neurons and " Lily" on top', () => {
    const vm = buildViewModel(result, { layer: 2, topNeurons: 10 });
    const n = result.tokens.length;
    assert.equal(vm.tokens.length, n);
    assert.equal(vm.layerCount, 5);
    assert.equal(vm.layerTokens.cells.length, 5 * n);
    assert.deepEqual([vm.layerTokens.rowLabels.length, vm.layerTokens.colLabels.length], [5, n]);
    assert.equal(vm.heads.cells.length, 5 * 8);
    assert.equal(vm.neurons.count, 172);
    assert.equal(vm.neurons.layer, 2);
    assert.equal(vm.neurons.bars.length, 10);
    const magnitudes = vm.neurons.bars.map((b) => Math.abs(b.value));
    assert.deepEqual(
      magnitudes,
      [...magnitudes].sort((a, b) => b - a),
      'top-k by |value|',
    );
    assert.ok(magnitudes[0] === Math.max(...result.relevance.neurons[2].map(Math.abs)));
    assert.equal(vm.predictions[0].text, ' Lily');
    assert.ok(vm.predictions[0].isTarget);
    const top = vm.tokens.find((t) => t.rank === 1)!;
    assert.equal(top.text, ' named');
    assert.equal(top.color, 'rgb(178, 24, 43)', 'the largest relevance gets the positive end');
  });
});
