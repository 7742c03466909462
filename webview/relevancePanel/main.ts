/**
 * Relevance panel front-end. A pure view: it renders the view model of the result the host sent and posts the
 * user's choices back; it never computes relevance.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import type { AttributionResult } from '../../src/engine/attribution/result';
import { isHostMessage } from '../../src/views/relevancePanel/protocol';
import type { ExportFormat, HostMessage, PanelState, WebviewMessage } from '../../src/views/relevancePanel/protocol';
import { heatmapSvg, legendSvg, neuronBarsSvg, reportSvg } from '../../src/views/relevancePanel/svg';
import { buildViewModel, formatValue } from '../../src/views/relevancePanel/viewModel';
import type { Heatmap, PredictionView, RelevanceViewModel, TokenView } from '../../src/views/relevancePanel/viewModel';
import { drawsOnCanvas } from '../../src/views/relevancePanel/heatmapLayout';
import { heatmapCanvas } from './heatmapCanvas';
import { el, statusLine, svgBlock, svgToPng, vsCodeApi } from '../shared/dom';
import { connect, postRendered } from '../shared/panel';

const vscode = vsCodeApi<WebviewMessage, PanelState>();
const app = document.getElementById('app') as HTMLElement;
let state: PanelState = vscode.getState() ?? {};
let shown: { result: AttributionResult; title: string } | undefined;
/** Kept across re-renders so choosing a layer or a token does not jump back to the first tab; not persisted. */
let selectedTab = 0;
let viewModelCache: { result: AttributionResult; title: string; layer?: number; vm: RelevanceViewModel } | undefined;

function post(message: WebviewMessage): void {
  vscode.postMessage(message);
}

function saveState(next: PanelState): void {
  state = next;
  vscode.setState(state);
}

function custom(tag: string, attributes: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function showStatus(message: string, isError = false): void {
  app.replaceChildren(statusLine(message, isError));
}

/** The view model changes only with the result or the layer; a token click reuses it. */
function currentViewModel(): RelevanceViewModel | undefined {
  if (!shown) return undefined;
  const c = viewModelCache;
  if (!c || c.result !== shown.result || c.title !== shown.title || c.layer !== state.layer) {
    viewModelCache = { ...shown, layer: state.layer, vm: buildViewModel(shown.result, { title: shown.title, layer: state.layer }) };
  }
  return viewModelCache!.vm;
}

function render(): void {
  const vm = currentViewModel();
  if (vm) app.replaceChildren(header(vm), tabs(vm));
}

function header(vm: RelevanceViewModel): HTMLElement {
  const foil = vm.target.foil ? ` − ${JSON.stringify(vm.target.foil.text)}` : '';
  return el(
    'header',
    {},
    el('h1', {}, vm.title + foil),
    el('p', { className: 'subtitle' }, `${vm.subtitle} · explained score ${formatValue(vm.seed)}`),
    el(
      'div',
      { className: 'toolbar' },
      foilPicker(vm),
      exportButton('json', 'Export JSON'),
      exportButton('html', 'Export HTML'),
      exportButton('png', 'Export PNG'),
    ),
    ...vm.warnings.map((w) => el('p', { className: 'warning' }, `warning: ${w}`)),
  );
}

function foilPicker(vm: RelevanceViewModel): HTMLElement {
  const options = [custom('vscode-option', { value: '' }, 'no foil')];
  for (const p of vm.predictions.filter((p) => !p.isTarget))
    options.push(custom('vscode-option', { value: String(p.id) }, `foil ${JSON.stringify(p.text)}`));
  const select = custom('vscode-single-select', { 'aria-label': 'Foil token' }, ...options) as HTMLElement & { value: string };
  select.value = vm.target.foil ? String(vm.target.foil.id) : '';
  select.addEventListener('change', () => post({ type: 'foil', tokenId: select.value === '' ? null : Number(select.value) }));
  return select;
}

function exportButton(format: ExportFormat, label: string): HTMLElement {
  const button = custom('vscode-button', { secondary: '' }, label);
  button.addEventListener('click', () => (format === 'png' ? exportPng() : post({ type: 'export', format })));
  return button;
}

/**
 * Only the selected tab is drawn; the others are drawn the first time they are shown (a 1,000-token result has
 * 30,000 layer × token cells, and most renders never look at that tab).
 */
function tabs(vm: RelevanceViewModel): HTMLElement {
  const builders: [string, () => HTMLElement][] = [
    ['Tokens', () => tokensPanel(vm)],
    ['Layers', () => heatmapFigure(vm.layerTokens, 'Layer × token relevance')],
    ['Heads', () => heatmapFigure(vm.heads, 'Layer × head relevance')],
    ['Neurons', () => neuronsPanel(vm)],
  ];
  const panels = builders.map(() => custom('vscode-tab-panel'));
  const fill = (index: number) => {
    const panel = panels[index];
    if (panel && !panel.hasChildNodes()) panel.append(builders[index][1]());
  };
  selectedTab = Math.max(0, Math.min(builders.length - 1, selectedTab));
  fill(selectedTab);
  const children = builders.flatMap(([label], i) => [custom('vscode-tab-header', { slot: 'header' }, label), panels[i]]);
  const tabSet = custom('vscode-tabs', { 'selected-index': String(selectedTab) }, ...children);
  tabSet.addEventListener('vsc-tabs-select', (e) => {
    selectedTab = (e as CustomEvent<{ selectedIndex: number }>).detail.selectedIndex;
    fill(selectedTab);
  });
  return tabSet;
}

/** Large heatmaps on a canvas, small ones as SVG (a DOM node and a title per cell). */
function heatmapFigure(map: Heatmap, label: string): HTMLElement {
  return drawsOnCanvas(map) ? heatmapCanvas(map, label) : svgBlock(heatmapSvg(map), 'figure');
}

function tokensPanel(vm: RelevanceViewModel): HTMLElement {
  const chips = el('div', { className: 'tokens', role: 'list' }, ...vm.tokens.map(tokenChip));
  // One listener for all chips (a 1,000-token prompt would otherwise add 2,000).
  const select = (target: EventTarget | null) => {
    const chip = target instanceof Element ? target.closest<HTMLElement>('.token') : null;
    if (!chip?.dataset.index) return;
    saveState({ ...state, token: Number(chip.dataset.index) });
    render();
  };
  chips.addEventListener('click', (e) => select(e.target));
  chips.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && select(e.target));
  return el(
    'section',
    {},
    chips,
    selectedTokenLine(vm),
    svgBlock(legendSvg(vm.legend), 'legend'),
    el('p', { className: 'note' }, 'Red supports the target, blue speaks against it; the ends are ±max |token relevance|.'),
    el('h2', {}, 'Predictions (click to explain)'),
    el('ol', { className: 'predictions' }, ...vm.predictions.map(predictionItem)),
  );
}

function tokenChip(token: TokenView): HTMLElement {
  const chip = el(
    'span',
    { className: token.index === state.token ? 'token selected' : 'token', title: token.title, tabIndex: 0 },
    token.text || '·',
  );
  chip.setAttribute('role', 'listitem');
  chip.dataset.index = String(token.index);
  // CSSOM assignments are allowed under the CSP; style attributes in markup are not.
  chip.style.backgroundColor = token.color;
  chip.style.color = token.textColor;
  return chip;
}

function selectedTokenLine(vm: RelevanceViewModel): HTMLElement {
  const token = state.token === undefined ? undefined : vm.tokens[state.token];
  if (!token) return el('p', { className: 'note' }, 'Select a token to see its relevance by layer.');
  const byLayer = vm.layerTokens.cells.filter((c) => c.col === token.index).map((c) => `L${c.row} ${formatValue(c.value)}`);
  return el('p', { className: 'selected-token' }, `${token.title}${byLayer.length ? ' · ' + byLayer.join(', ') : ''}`);
}

function predictionItem(p: PredictionView): HTMLElement {
  const label = `${JSON.stringify(p.text)} ${(p.prob * 100).toFixed(1)}%${p.isTarget ? ' (explained)' : ''}${p.isFoil ? ' (foil)' : ''}`;
  const button = custom('vscode-button', p.isTarget ? {} : { secondary: '' }, label);
  button.title = `token id ${p.id}`;
  button.addEventListener('click', () => post({ type: 'retarget', tokenId: p.id }));
  return el('li', {}, button);
}

function neuronsPanel(vm: RelevanceViewModel): HTMLElement {
  const options = Array.from({ length: vm.layerCount }, (_, l) => custom('vscode-option', { value: String(l) }, `layer ${l}`));
  const select = custom('vscode-single-select', { 'aria-label': 'Layer' }, ...options) as HTMLElement & { value: string };
  select.value = String(vm.neurons.layer);
  select.addEventListener('change', () => {
    const layer = Number(select.value);
    saveState({ ...state, layer });
    render();
  });
  const caption = `Top ${vm.neurons.bars.length} of ${vm.neurons.count} MLP neurons by |relevance|`;
  return el(
    'section',
    {},
    el('div', { className: 'toolbar' }, select, el('span', { className: 'note' }, caption)),
    svgBlock(neuronBarsSvg(vm.neurons), 'figure'),
  );
}

/** The PNG is drawn here because only the webview has a canvas; the host just writes the bytes. */
function exportPng(): void {
  const vm = currentViewModel();
  if (!vm) return;
  svgToPng(
    reportSvg(vm),
    (dataUrl) => post({ type: 'export', format: 'png', dataUrl }),
    () => showStatus('Could not draw the PNG export.', true),
  );
}

function onMessage(message: HostMessage): void {
  switch (message.type) {
    case 'show': {
      const t0 = performance.now();
      shown = { result: message.result, title: message.title };
      saveState({
        ...state,
        uri: message.uri,
        token: state.token !== undefined && state.token < message.result.tokens.length ? state.token : undefined,
      });
      render();
      postRendered(vscode, t0);
      break;
    }
    case 'busy':
      showStatus(message.message);
      break;
    case 'error':
      showStatus(message.message, true);
      break;
  }
}

// A theme change restyles the SVG (currentColor) but not a canvas: draw again in the new colours.
new MutationObserver(() => shown && render()).observe(document.body, { attributes: true, attributeFilter: ['class'] });

connect(vscode, isHostMessage, onMessage);
