/** The colour scale, the panel's view model (on the real stories260k result) and its SVG rendering. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import type { AttributionResult } from '../../src/engine/attribution/result';
import { NEGATIVE, NEUTRAL, POSITIVE, divergingColor, legendStops, normalise, textColorOn } from '../../src/views/colors';
import { heatmapSvg, neuronBarsSvg, reportSvg, tokenHeatmapSvg } from '../../src/views/relevancePanel/svg';
import { buildViewModel, neuronBars, ranksByMagnitude } from '../../src/views/relevancePanel/viewModel';
import { HOSTILE_TEXTS, fixtureResult } from './panelFixtures';
import { STORIES, requireShared } from './sharedModel';

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
    assert.deepEqual(stops.map((s) => s.value), stops.map((s) => 0 - s.value + 0).reverse());
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
    assert.deepEqual(bars.bars.map((b) => [b.neuron, b.value]), [[1, -5], [2, 3]]);
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

  it('renders 1,000 tokens × 30 layers × 32 heads quickly, within bounded dimensions', () => {
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
    for (const [name, { times, report }] of [['cold', cold], ['warm', warm]] as const) {
      const [vmMs, figuresMs, reportMs] = times.map((t) => t.toFixed(1));
      console.log(`      ${name}: view model ${vmMs} ms, figures ${figuresMs} ms (target < 200 ms together), report ${reportMs} ms (${(report.length / 1e6).toFixed(2)} MB)`);
    }
    const { vm, svgs } = cold;
    assert.equal(vm.layerTokens.cells.length, 30 * 1000);
    assert.equal(vm.heads.cells.length, 30 * 32);
    const coldTotal = cold.times.reduce((a, b) => a + b);
    assert.ok(coldTotal < 1000, `render took ${coldTotal} ms`);
    const width = Number(/width="([\d.]+)"/.exec(svgs[1])![1]);
    assert.ok(width <= 1200, `layer × token heatmap ${width} px wide`);
    assert.ok(svgs.every((s) => s.startsWith('<svg')));
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
    assert.deepEqual(magnitudes, [...magnitudes].sort((a, b) => b - a), 'top-k by |value|');
    assert.ok(magnitudes[0] === Math.max(...result.relevance.neurons[2].map(Math.abs)));
    assert.equal(vm.predictions[0].text, ' Lily');
    assert.ok(vm.predictions[0].isTarget);
    const top = vm.tokens.find((t) => t.rank === 1)!;
    assert.equal(top.text, ' named');
    assert.equal(top.color, 'rgb(178, 24, 43)', 'the largest relevance gets the positive end');
  });
});
