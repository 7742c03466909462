/**
 * The relevance panel's HTML: the webview shell (strict CSP, one nonce per render) and the self-contained
 * HTML export. No vscode import: the extension passes in webview.cspSource and asWebviewUri strings.
 */
import type { AttributionResult } from '../../engine/attribution/result';
import { escapeMarkup } from '../escape';
import { standalonePage, webviewPage } from '../webviewPage';
import type { PanelAssets } from '../webviewPage';
export { newNonce, panelCsp } from '../webviewPage';
import { heatmapSvg, legendSvg, neuronBarsSvg, tokenHeatmapSvg } from './svg';
import { buildViewModel } from './viewModel';
import type { ViewOptions } from './viewModel';

export function panelHtml(assets: PanelAssets): string {
  return webviewPage({
    ...assets,
    title: 'LRP Lens: relevance',
    body: '<main id="app" aria-live="polite"><p class="status">Waiting for an attribution…</p></main>',
  });
}

const STANDALONE_CSS = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f1f1f; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 20px 0 6px; }
.subtitle, .note { color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; } td, th { padding: 2px 8px; text-align: left; }
.target { font-weight: 600; } svg { display: block; max-width: 100%; height: auto; }
`;

/** Self-contained HTML export: inline SVG and CSS, no scripts, nothing fetched. */
export function standaloneHtml(result: AttributionResult, options: ViewOptions = {}): string {
  const vm = buildViewModel(result, options);
  const light = { theme: 'light' } as const;
  const predictions = vm.predictions
    .map(
      (p) =>
        `<tr class="${p.isTarget ? 'target' : ''}"><td>${escapeMarkup(JSON.stringify(p.text))}</td><td>${p.id}</td><td>${(p.prob * 100).toFixed(1)}%</td></tr>`,
    )
    .join('');
  const foil = vm.target.foil ? ` − ${escapeMarkup(JSON.stringify(vm.target.foil.text))}` : '';
  const warnings = vm.warnings.map((w) => `<p class="note">warning: ${escapeMarkup(w)}</p>`).join('');
  return standalonePage(
    vm.title,
    STANDALONE_CSS,
    `<h1>${escapeMarkup(vm.title)}${foil}</h1>
<p class="subtitle">${escapeMarkup(vm.subtitle)} · explained score ${vm.seed.toFixed(4)}</p>
<h2>Tokens</h2>${tokenHeatmapSvg(vm.tokens, light)}
${legendSvg(vm.legend, light)}
<p class="note">Red supports the target, blue speaks against it; the ends of the scale are ±max |token relevance|.</p>
<h2>Layer × token</h2>${heatmapSvg(vm.layerTokens, light)}
<h2>Layer × head</h2>${heatmapSvg(vm.heads, light)}
<h2>Top ${vm.neurons.bars.length} of ${vm.neurons.count} neurons, layer ${vm.neurons.layer}</h2>${neuronBarsSvg(vm.neurons, light)}
<h2>Predictions</h2><table><tr><th>token</th><th>id</th><th>p</th></tr>${predictions}</table>
${warnings}
<p class="note">LRP Lens · AttnLRP. LRP is patented; free of charge for personal and scientific use only.</p>`,
  );
}
