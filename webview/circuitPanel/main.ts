/**
 * Circuit panel front-end. A pure view: renders the view model of the circuit.json the host sent, lets the user
 * choose how many edges to show and pin a node, and posts exports and "apply" back; it never computes relevance.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { CircuitRecord } from '../../src/engine/circuits/discover';
import { isHostMessage } from '../../src/views/circuitPanel/protocol';
import type { CircuitPanelState, ExportFormat, HostMessage, WebviewMessage } from '../../src/views/circuitPanel/protocol';
import { curvesSvg, graphSvg, reportSvg } from '../../src/views/circuitPanel/svg';
import { DEFAULT_TOP_K, buildCircuitViewModel, formatNumber } from '../../src/views/circuitPanel/viewModel';
import type { CircuitViewModel, GraphEdgeView, PinnedView } from '../../src/views/circuitPanel/viewModel';
import { el, statusLine, svgBlock, svgToPng, vsCodeApi } from '../shared/dom';
import { connect, postRendered } from '../shared/panel';

const vscode = vsCodeApi<WebviewMessage, CircuitPanelState>();
const app = document.getElementById('app') as HTMLElement;
let state: CircuitPanelState = vscode.getState() ?? {};
let shown: { record: CircuitRecord; title: string } | undefined;

const post = (m: WebviewMessage) => vscode.postMessage(m);

function saveState(next: CircuitPanelState): void {
  state = next;
  vscode.setState(state);
}

function button(label: string, onClick: () => void, secondary = true): HTMLElement {
  const b = document.createElement('vscode-button');
  if (secondary) b.setAttribute('secondary', '');
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

function viewModel(): CircuitViewModel | undefined {
  return shown && buildCircuitViewModel(shown.record, { title: shown.title, topK: state.topK ?? DEFAULT_TOP_K, pinned: state.pinned });
}

function render(): void {
  const vm = viewModel();
  if (!vm) return;
  const summary = el(
    'table',
    { className: 'summary' },
    ...vm.summary.map((s) => el('tr', {}, el('th', {}, s.label), el('td', {}, s.value))),
  );
  const toolbar = el(
    'div',
    { className: 'toolbar' },
    button('Apply mask', () => post({ type: 'apply' }), false),
    ...(['svg', 'png', 'json'] as ExportFormat[]).map((f) => button(`Export ${f.toUpperCase()}`, () => exportAs(f))),
  );
  app.replaceChildren(
    el('h1', {}, vm.title),
    el('p', { className: 'subtitle' }, vm.subtitle),
    summary,
    toolbar,
    el('h2', {}, 'Faithfulness: task metric vs sparsity'),
    svgBlock(curvesSvg(vm.curves), 'figure'),
    el('h2', {}, 'Circuit graph'),
    edgeSlider(vm),
    el('p', { className: 'note', id: 'hover' }, 'Hover a node or edge for its values; click a node to pin it.'),
    graphBlock(vm),
    pinnedSection(vm.pinned),
  );
}

function edgeSlider(vm: CircuitViewModel): HTMLElement {
  const input = el('input', { type: 'range', min: '0', max: String(vm.graph.totalEdges), value: String(vm.graph.topK), id: 'topk' });
  input.setAttribute('aria-label', 'edges shown');
  const label = el('label', { htmlFor: 'topk' }, `top ${vm.graph.topK} of ${vm.graph.totalEdges} edges`);
  input.addEventListener('input', () => {
    saveState({ ...state, topK: Number(input.value) });
    render();
    document.getElementById('topk')?.focus();
  });
  return el('div', { className: 'toolbar' }, label, input);
}

function graphBlock(vm: CircuitViewModel): HTMLElement {
  const block = svgBlock(graphSvg(vm.graph, { pinned: state.pinned }), 'figure graph');
  const hover = (text: string) => {
    const h = document.getElementById('hover');
    if (h) h.textContent = text;
  };
  block.addEventListener('mouseover', (e) => {
    const t = e.target as Element;
    const title = t.querySelector?.('title')?.textContent;
    if (title) hover(title);
  });
  const pin = (e: Event) => {
    const id = (e.target as Element).getAttribute?.('data-node');
    if (!id) return;
    saveState({ ...state, pinned: state.pinned === id ? undefined : id });
    render();
  };
  block.addEventListener('click', pin);
  block.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && pin(e));
  return block;
}

function edgeList(title: string, edges: GraphEdgeView[], other: (e: GraphEdgeView) => string): HTMLElement {
  if (!edges.length) return el('p', { className: 'note' }, `${title}: none among the edges shown.`);
  return el(
    'div',
    {},
    el('h3', {}, title),
    el('ul', {}, ...edges.map((e) => el('li', {}, `${other(e)}: ${formatNumber(e.relevance)} (${e.weights.join(', ')})`))),
  );
}

function pinnedSection(p: PinnedView | undefined): HTMLElement {
  if (!p) return el('section', { className: 'pinned' });
  const samples = el(
    'table',
    { className: 'samples' },
    el(
      'tr',
      {},
      el('th', {}, 'line'),
      el('th', {}, 'prompt'),
      el('th', {}, 'target / foil'),
      el('th', {}, 'dense'),
      el('th', {}, 'circuit'),
    ),
    ...p.samples.map((s) =>
      el(
        'tr',
        {},
        el('td', {}, String(s.line)),
        el('td', { className: 'prompt' }, s.prompt),
        el('td', {}, `${JSON.stringify(s.target)}${s.foil ? ` / ${JSON.stringify(s.foil)}` : ''}`),
        el('td', {}, formatNumber(s.dense)),
        el('td', {}, formatNumber(s.circuit)),
      ),
    ),
  );
  return el(
    'section',
    { className: 'pinned' },
    el('h2', {}, `Pinned: ${p.node.label}`),
    el('p', {}, `relevance ${formatNumber(p.node.relevance)}`),
    edgeList('Incoming', p.incoming, (e) => e.source),
    edgeList('Outgoing', p.outgoing, (e) => e.target),
    el('h3', {}, 'Top held-out task samples (largest circuit metric)'),
    samples,
    button('Unpin', () => {
      saveState({ ...state, pinned: undefined });
      render();
    }),
  );
}

function exportAs(format: ExportFormat): void {
  if (format !== 'png') {
    post({ type: 'export', format });
    return;
  }
  const vm = viewModel();
  if (!vm) return;
  svgToPng(
    reportSvg(vm, { theme: 'light' }),
    (dataUrl) => post({ type: 'export', format: 'png', dataUrl }),
    () => showStatus('Could not draw the PNG export.', true),
  );
}

function showStatus(message: string, isError = false): void {
  app.replaceChildren(statusLine(message, isError));
}

function onMessage(m: HostMessage): void {
  if (m.type === 'error') {
    showStatus(m.message, true);
    return;
  }
  const t0 = performance.now();
  shown = { record: m.record, title: m.title };
  saveState({ ...state, uri: m.uri });
  render();
  postRendered(vscode, t0);
}

connect(vscode, isHostMessage, onMessage);
