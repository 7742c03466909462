/** The circuit panel's pure parts: view model (curves, threshold, top-k, pinning), SVG (escaping) and HTML (CSP). */
import assert from 'node:assert/strict';
import type { CircuitRecord } from '../../src/engine/circuits/discover';
import { buildCircuitViewModel } from '../../src/views/circuitPanel/viewModel';
import { curvesSvg, graphSvg, reportSvg } from '../../src/views/circuitPanel/svg';
import { circuitPanelHtml } from '../../src/views/circuitPanel/html';
import { isWebviewMessage } from '../../src/views/circuitPanel/protocol';

function record(): CircuitRecord {
  const pts = (ys: number[]) => ys.map((y, i) => ({ sparsity: (i + 1) / 10, achieved: (i + 1) / 10, metric: y, retained: y / 4 }));
  return {
    schema: 'lrp-lens/circuit@1',
    task: { path: '/w/p.task.jsonl', name: 'pro<noun>', metric: 'logit_diff', train: 84, heldOut: 36 },
    model: 'stories260k',
    method: 'lrp',
    granularity: 'heads',
    ranking: 'global',
    threshold: 0.9,
    dense: { metric: 4, perplexity: null },
    circuit: { sparsity: 0.3, targetSparsity: 0.3, metric: 3.8, retained: 0.95, perplexity: null },
    control: null,
    curves: [
      {
        method: 'lrp',
        points: pts([4, 3.9, 3.8, 2]),
        chosen: { sparsity: 0.3, achieved: 0.3, metric: 3.8, retained: 0.95 },
        collectMs: 10,
      },
      { method: 'wanda', points: pts([3, 2, 1, 0]), collectMs: 5 },
    ],
    samples: [
      { line: 2, prompt: 'Tom went <out>.', target: ' he', foil: ' she', dense: 4, circuit: 3 },
      { line: 3, prompt: 'Lily ran.', target: ' she', foil: ' he', dense: 5, circuit: 6 },
    ],
    graph: {
      granularity: 'heads',
      blocks: 1,
      nodes: [
        { id: 'embed.-1.0', label: 'embeddings', layer: -1, relevance: 2, x: 0.5, y: 0 },
        { id: 'head.0.1', label: 'L0 head 1 <&>', layer: 0, relevance: -1, x: 0.3, y: 0.2 },
        { id: 'logits.1.0', label: 'logits', layer: 1, relevance: 4, x: 0.5, y: 1 },
      ],
      edges: [
        { source: 'embed.-1.0', target: 'head.0.1', relevance: 0.5, weights: ['q'] },
        { source: 'head.0.1', target: 'logits.1.0', relevance: -3, weights: ['o'] },
        { source: 'embed.-1.0', target: 'logits.1.0', relevance: 1, weights: ['lm_head'] },
      ],
      sides: [],
    },
    files: { circuit: 'circuit.json', svg: 'circuit.svg', mask: 'mask.safetensors', manifest: 'mask.json' },
  };
}

describe('circuit panel', () => {
  it('summary: in-template and out-of-template faithfulness side by side, other prompts and stability where recorded', () => {
    const labels = (r: CircuitRecord) => buildCircuitViewModel(r).summary.map((x) => x.label);
    assert.ok(!labels(record()).includes('in-template'), 'a record from before the split shows neither');
    const r: CircuitRecord = {
      ...record(),
      faithfulness: {
        inTemplate: { samples: 40, dense: 3.5, circuit: 3.1, retained: 0.886 },
        outOfTemplate: { samples: 60, dense: 3.6, circuit: 3.3, retained: 0.917 },
        heldOutTask: { path: 'other.task.jsonl', samples: 60, dense: 1.9, circuit: 1.6, retained: 0.842 },
      },
      stability: { resamples: 20, groups: 14, groupedBy: 'template', kept: 9, consistent: 0.962, meanFrequency: 0.985 },
    };
    const rows = Object.fromEntries(buildCircuitViewModel(r).summary.map((x) => [x.label, x.value]));
    assert.equal(rows['in-template'], '88.6% kept (40 prompts)');
    assert.equal(rows['out-of-template'], '91.7% kept (60 prompts)');
    assert.match(rows['other prompts'], /^84\.2% kept \(60 prompts\) — other\.task\.jsonl$/);
    assert.match(rows.stability, /^96\.2% of kept heads chosen in ≥ 90% of 20 resamples$/);
  });

  it('curves: one line per method, the threshold level, the chosen point only where one was found', () => {
    const vm = buildCircuitViewModel(record());
    assert.deepEqual(
      vm.curves.lines.map((l) => [l.method, l.primary, !!l.chosen]),
      [
        ['lrp', true, true],
        ['wanda', false, false],
      ],
    );
    assert.equal(vm.curves.thresholdLevel, 3.6);
    assert.equal(vm.curves.yMin, 0);
    assert.equal(vm.curves.yMax, 4);
    const svg = curvesSvg(vm.curves);
    assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
    assert.equal((svg.match(/class="chosen"/g) ?? []).length, 1);
    assert.match(svg, /class="threshold"[^>]*><title>threshold 90\.0% × dense = 3\.600/);
    assert.match(svg, /wanda \(none\)/);
  });

  it('graph: the top-k edges by |relevance|, widths relative to those shown, pinning lists edges and best samples', () => {
    const vm = buildCircuitViewModel(record(), { topK: 2, pinned: 'head.0.1' });
    assert.equal(vm.graph.totalEdges, 3);
    assert.deepEqual(
      vm.graph.edges.map((e) => e.relevance),
      [-3, 1],
    );
    assert.equal(vm.graph.edges[0].width, 1);
    assert.equal(vm.graph.nodes.length, 3);
    assert.deepEqual(
      vm.pinned!.outgoing.map((e) => e.target),
      ['logits.1.0'],
    );
    assert.deepEqual(vm.pinned!.incoming, [], 'the q edge is not among the top 2');
    assert.deepEqual(
      vm.pinned!.samples.map((s) => s.line),
      [3, 2],
    );
    assert.equal(buildCircuitViewModel(record(), { topK: 99 }).graph.topK, 3, 'k is capped at the edges there are');
    assert.equal(buildCircuitViewModel(record(), { topK: 0 }).graph.edges.length, 0);
    assert.equal(buildCircuitViewModel(record(), { pinned: 'nope' }).pinned, undefined);
    const svg = graphSvg(vm.graph, { pinned: 'head.0.1' });
    assert.equal((svg.match(/class="edge"/g) ?? []).length, 2);
    assert.match(svg, /class="node pinned" data-node="head\.0\.1"/);
  });

  it('escapes record text in every SVG', () => {
    const vm = buildCircuitViewModel(record(), { topK: 3 });
    const svg = reportSvg(vm, { theme: 'light' });
    assert.ok(!svg.includes('<noun>') && !svg.includes('<&>'));
    assert.match(svg, /pro&lt;noun&gt;/);
    assert.match(svg, /L0 head 1 &lt;&amp;&gt;/);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" class="circuit-report"/);
    assert.match(svg, /fill="#ffffff"/, 'exports get a white background');
  });

  it('HTML: strict CSP with one nonce, scripts only with it, URIs escaped', () => {
    const html = circuitPanelHtml({
      cspSource: 'vscode-resource:',
      nonce: 'abc123',
      scriptUri: 'https://x/circuitPanel.js?a=1&b="2"',
      styleUri: 'https://x/c.css',
    });
    assert.match(
      html,
      /content="default-src 'none'; style-src vscode-resource:; img-src vscode-resource: data:; script-src 'nonce-abc123'; font-src vscode-resource:"/,
    );
    const scripts = html.match(/<script[^>]*>/g) ?? [];
    assert.equal(scripts.length, 1);
    assert.ok(scripts.every((s) => s.includes('nonce="abc123"')));
    assert.match(html, /a=1&amp;b=&quot;2&quot;/);
    assert.notEqual(
      circuitPanelHtml({ cspSource: 'c', scriptUri: 's', styleUri: 't' }).match(/nonce-([^']+)/)![1],
      circuitPanelHtml({ cspSource: 'c', scriptUri: 's', styleUri: 't' }).match(/nonce-([^']+)/)![1],
    );
  });

  it('accepts only well-formed webview messages', () => {
    assert.ok(isWebviewMessage({ type: 'export', format: 'png', dataUrl: 'data:image/png;base64,AA' }));
    assert.ok(isWebviewMessage({ type: 'apply' }));
    assert.ok(!isWebviewMessage({ type: 'export', format: 'exe' }));
    assert.ok(!isWebviewMessage({ type: 'rendered', ms: 'soon' }));
    assert.ok(!isWebviewMessage({ type: 'eval' }));
  });
});
