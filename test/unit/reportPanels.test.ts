/** The pruning and correction panels' pure parts: view models, charts, diff highlighting, escaping, CSP. */
import assert from 'node:assert/strict';
import type { PruneReport } from '../../src/engine/pruning/pruneRun';
import type { CorrectReport } from '../../src/engine/correction/correctionRun';
import { barsSvg, lineChartSvg } from '../../src/views/reportPanel/svg';
import { correctionViewModel, pruningCurves, pruningViewModel, reportKind } from '../../src/views/reportPanel/viewModel';
import type { CompareReport } from '../../src/views/reportPanel/viewModel';
import { reportPanelHtml, standaloneReportHtml } from '../../src/views/reportPanel/html';
import { isWebviewMessage } from '../../src/views/reportPanel/protocol';

const EVIL = '<img src=x onerror=alert(1)>';

function pruneReport(): PruneReport {
  return {
    schema: 'lrp-lens/prune@1',
    model: { ref: '/models/stories260k', contentHash: 'abc' },
    method: 'lrp',
    aggregation: 'abs-tokens',
    allocation: 'row',
    structured: false,
    weights: 2,
    reference: { path: '/data/ref.txt', sha256: 'x', samples: 6, tokens: 600 },
    evaluation: { path: '/data/eval.txt', sha256: 'y', windows: 3 },
    dense: { perplexity: 6.8, generations: ['Tom went to the park. He was happy.', `A girl named ${EVIL}`] },
    points: [
      {
        sparsity: 0.5,
        achieved: 0.5,
        perplexity: 24.8,
        perLayer: { 'layers.0.mlp.up.weight': 0.5, 'layers.0.attn.q.weight': 0.25 },
        generations: ['Tom went to the shop. He was happy.', `A girl named ${EVIL}`],
        mask: '/ws/lrp/masks/lrp-50.safetensors',
      },
    ],
    prompts: ['Once upon a time', 'Lily'],
    timing: { collectMs: 10 },
  };
}

function correctReport(): CorrectReport {
  return {
    schema: 'lrp-lens/correct@1',
    model: { ref: '/models/stories260k', contentHash: 'abc' },
    method: 'lrp',
    aggregation: 'abs-tokens',
    granularity: 'neurons',
    layers: 'gate,up',
    available: 100,
    undesired: { path: '/ws/lily.prompts.jsonl', prompts: 4, generated: 0, seededPositions: 4 },
    general: { path: '/data/t.txt', sha256: 'z', samples: 4 },
    heldOut: { path: '/ws/held.txt', prompts: 1, inSample: false },
    evaluation: { path: '/data/t.txt', windows: 4 },
    metric: { spec: 'word-rate', kind: 'word-rate', higherIsBetter: false, words: [' Lily'] },
    dense: { behaviour: 0.8, perplexity: 6.8, continuations: null },
    points: [
      { count: 2, behaviour: 0.5, perplexity: 6.9, perplexityRise: 0.015, perLayer: { '0': 2 }, continuations: null },
      { count: 4, behaviour: 0.2, perplexity: 7.1, perplexityRise: 0.044, perLayer: { '0': 3, '1': 1 }, continuations: null },
    ],
    chosen: { count: 4, withinBudget: true, maxPerplexityRise: 0.1, mask: '/ws/lrp/masks/lily.safetensors' },
    pruned: [
      { weight: 'l1.up', kind: 'up', layer: 1, unit: 7, score: -0.5 },
      { weight: 'l0.gate', kind: 'gate', layer: 0, unit: 3, score: -0.4 },
      { weight: 'l0.up', kind: 'up', layer: 0, unit: 9, score: -0.3 },
      { weight: 'l0.up', kind: 'up', layer: 0, unit: 1, score: -0.2 },
    ],
    prompts: ['A little girl named'],
    examples: {
      undesired: { prompts: ['A little girl named'], before: [' Lily. She liked <b>cake</b>.'], after: [' Sue. She liked <b>cake</b>.'] },
      general: { prompts: ['Once upon a time'], before: [' there was a dog.'], after: [' there was a dog.'] },
    },
  };
}

describe('report panels: view models', () => {
  it('recognises the report kinds by schema', () => {
    assert.equal(reportKind(pruneReport()), 'prune');
    assert.equal(reportKind(correctReport()), 'correct');
    assert.equal(reportKind({ schema: 'lrp-lens/compare@1' }), 'compare');
    assert.equal(reportKind({ schema: 'other' }), undefined);
    assert.equal(reportKind(null), undefined);
  });

  it('pruning: perplexity before/after, one bar per layer, generation diffs', () => {
    const vm = pruningViewModel(pruneReport());
    assert.equal(vm.densePerplexity, 6.8);
    assert.equal(vm.prunedPerplexity, 24.8);
    assert.deepEqual(vm.layers, [
      { label: 'layers.0.mlp.up.weight', value: 0.5 },
      { label: 'layers.0.attn.q.weight', value: 0.25 },
    ]);
    assert.equal(vm.generations.length, 2);
    assert.deepEqual(
      vm.generations[0].before.filter((p) => p.op === 'removed').map((p) => p.text.trim()),
      ['park.'],
    );
    assert.deepEqual(
      vm.generations[0].after.filter((p) => p.op === 'added').map((p) => p.text.trim()),
      ['shop.'],
    );
    assert.equal(vm.generations[1].same, 1);
  });

  it('pruning curves: the run alone, or every method of a compare report', () => {
    const single = pruningCurves(pruneReport());
    assert.deepEqual(single.series, [{ label: 'lrp', points: [{ x: 0.5, y: 24.8 }] }]);
    assert.equal(single.reference?.y, 6.8);
    const compare: CompareReport = {
      schema: 'lrp-lens/compare@1',
      model: 'm',
      dense: { perplexity: 6.5 },
      methods: [
        {
          method: 'lrp',
          points: [
            { sparsity: 0.3, achieved: 0.3, perplexity: 8 },
            { sparsity: 0.5, achieved: 0.5, perplexity: 20 },
          ],
        },
        {
          method: 'magnitude',
          points: [
            { sparsity: 0.3, achieved: 0.3, perplexity: 12 },
            { sparsity: 0.5, achieved: 0.5, perplexity: 90 },
          ],
        },
      ],
    };
    const many = pruningCurves(pruneReport(), compare);
    assert.deepEqual(
      many.series.map((s) => s.label),
      ['lrp', 'magnitude'],
    );
    assert.deepEqual(
      many.series[1].points.map((p) => p.y),
      [12, 90],
    );
    assert.equal(many.reference?.y, 6.5);
  });

  it('correction: curves start at the dense model, components grouped by layer, example diffs', () => {
    const vm = correctionViewModel(correctReport());
    assert.deepEqual(vm.behaviourCurve.series[0].points, [
      { x: 0, y: 0.8 },
      { x: 2, y: 0.5 },
      { x: 4, y: 0.2 },
    ]);
    assert.deepEqual(
      vm.perplexityCurve.series[0].points.map((p) => p.y),
      [6.8, 6.9, 7.1],
    );
    assert.deepEqual(vm.chosen, { count: 4, behaviour: 0.2, perplexity: 7.1, withinBudget: true });
    assert.deepEqual(
      vm.components.map((g) => [g.layer, g.items.length]),
      [
        ['layer 0', 3],
        ['layer 1', 1],
      ],
    );
    assert.deepEqual(
      vm.components[0].items.map((c) => c.index),
      [3, 9, 1],
    );
    assert.deepEqual(
      vm.undesired[0].after.filter((p) => p.op === 'added').map((p) => p.text.trim()),
      ['Sue.'],
    );
    assert.equal(vm.general[0].same, 1);
  });
});

describe('report panels: SVG and HTML', () => {
  it('line chart: one polyline per series, a dot per point, escaped labels, a dense reference line', () => {
    const svg = lineChartSvg({
      title: `t ${EVIL}`,
      xLabel: 'x',
      yLabel: 'y',
      logY: true,
      reference: { y: 5, label: 'dense' },
      series: [
        {
          label: EVIL,
          points: [
            { x: 0.3, y: 8 },
            { x: 0.5, y: 20 },
          ],
        },
        { label: 'b', points: [{ x: 0.3, y: 12 }] },
      ],
    });
    assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
    assert.equal((svg.match(/<circle/g) ?? []).length, 3);
    assert.ok(svg.includes('class="reference"'));
    assert.ok(!svg.includes('<img'), 'labels are escaped');
    assert.ok(!/style=/.test(svg), 'no style attributes (strict CSP)');
    // log y: the point at 20 is higher (smaller y coordinate) than the one at 8
    const ys = [...svg.matchAll(/<circle class="series-0" cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.ok(ys[1] < ys[0], String(ys));
  });

  it('bars: width proportional to the value, clamped to [0, 1]', () => {
    const svg = barsSvg(
      [
        { label: 'a', value: 0.5 },
        { label: 'b', value: 1.5 },
      ],
      'bars',
    );
    const widths = [...svg.matchAll(/class="bar" x="\d+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.deepEqual(widths, [100, 200]);
    assert.ok(svg.includes('50.0%'));
  });

  it('the webview shell has a strict CSP with one nonce, escaped text, diff marks and the buttons', () => {
    const html = reportPanelHtml(pruningViewModel(pruneReport()), {
      cspSource: 'vscode-resource:',
      nonce: 'N0NCE',
      scriptUri: 'vscode-resource:/r.js',
      styleUri: 'vscode-resource:/r.css',
    });
    assert.match(html, /default-src 'none'; style-src vscode-resource:; img-src vscode-resource: data:; script-src 'nonce-N0NCE'/);
    assert.equal((html.match(/<script/g) ?? []).length, 1);
    assert.ok(html.includes('<script nonce="N0NCE" src="vscode-resource:/r.js">'));
    assert.ok(!html.includes(EVIL) && html.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(!/style=/.test(html) && !/ on[a-z]+=/.test(html.replace(/onerror=alert/g, '')));
    assert.ok(html.includes('<span class="diff-removed">park. </span>'));
    assert.ok(html.includes('<span class="diff-added">shop. </span>'));
    for (const a of ['apply', 'save', 'discard', 'exportJson', 'exportHtml']) assert.ok(html.includes(`data-action="${a}"`), a);
  });

  it('correction shell: curves, both example tables, components, only the buttons asked for', () => {
    const html = reportPanelHtml(
      correctionViewModel(correctReport()),
      {
        cspSource: 'c',
        nonce: 'n',
        scriptUri: 's',
        styleUri: 'y',
      },
      ['apply', 'exportJson'],
    );
    assert.equal((html.match(/class="chart"/g) ?? []).length, 2);
    assert.ok(html.includes('Undesired prompts') && html.includes('General prompts'));
    assert.ok(html.includes('&lt;b&gt;cake&lt;/b&gt;'));
    assert.ok(html.includes('<span class="diff-added">Sue. </span>'));
    assert.ok(html.includes('layer 0 (3)') && html.includes('layer 1 (1)'));
    assert.ok(html.includes('data-action="apply"') && !html.includes('data-action="discard"'));
  });

  it('the standalone export has no scripts and fetches nothing', () => {
    const html = standaloneReportHtml(correctionViewModel(correctReport()));
    assert.ok(!html.includes('<script'));
    assert.match(html, /default-src 'none'/);
    assert.ok(!/(src|href)="http/.test(html));
  });

  it('accepts only known button messages and the handshake from the webview', () => {
    assert.ok(isWebviewMessage({ type: 'action', action: 'apply' }));
    assert.ok(isWebviewMessage({ type: 'ready' }));
    assert.ok(isWebviewMessage({ type: 'rendered', ms: 3 }));
    assert.ok(!isWebviewMessage({ type: 'rendered', ms: 'soon' }));
    assert.ok(!isWebviewMessage({ type: 'action', action: 'rm -rf' }));
    assert.ok(!isWebviewMessage(null));
  });
});
