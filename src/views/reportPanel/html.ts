/**
 * The pruning and correction panels' HTML: the report rendered to markup (escaped text, inline SVG charts),
 * inside a webview shell with a strict CSP (no inline styles or scripts; one nonce per render), or as a
 * self-contained HTML export. No vscode import: the host passes webview.cspSource and the resource URIs.
 */
import { escapeMarkup } from '../escape';
import { standalonePage, webviewPage } from '../webviewPage';
import type { PanelAssets } from '../webviewPage';
import type { DiffPart } from '../wordDiff';
import { barsSvg, formatNumber, lineChartSvg } from './svg';
import type { ComponentGroup, CorrectionViewModel, GenerationPair, PruningViewModel, ReportViewModel } from './viewModel';
import { PANEL_ACTIONS } from './protocol';
import type { PanelAction } from './protocol';

const esc = escapeMarkup;

function diffMarkup(parts: readonly DiffPart[]): string {
  return parts.map((p) => (p.op === 'same' ? esc(p.text) : `<span class="diff-${p.op}">${esc(p.text)}</span>`)).join('');
}

/** Before / after side by side, differences marked (removed words on the left, added on the right). */
export function generationsTable(pairs: readonly GenerationPair[], empty: string): string {
  if (pairs.length === 0) return `<p class="note">${esc(empty)}</p>`;
  const rows = pairs
    .map(
      (g) =>
        `<tr><td class="prompt">${esc(g.prompt)}</td><td class="gen">${diffMarkup(g.before)}</td><td class="gen">${diffMarkup(g.after)}</td><td class="num">${(g.same * 100).toFixed(0)}%</td></tr>`,
    )
    .join('');
  return `<table class="generations"><thead><tr><th>prompt</th><th>before</th><th>after</th><th>unchanged</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function metric(label: string, value: string): string {
  return `<div class="metric"><div class="metric-label">${esc(label)}</div><div class="metric-value">${esc(value)}</div></div>`;
}

const num = (v: number | null) => (v === null ? '–' : formatNumber(v));

export function pruningBody(vm: PruningViewModel): string {
  const rise =
    vm.densePerplexity && vm.prunedPerplexity
      ? ` (${vm.prunedPerplexity >= vm.densePerplexity ? '+' : ''}${((vm.prunedPerplexity / vm.densePerplexity - 1) * 100).toFixed(1)}%)`
      : '';
  return `<h1>${esc(vm.title)}</h1><p class="subtitle">${esc(vm.subtitle)}</p>
<div class="metrics">${metric('perplexity before', num(vm.densePerplexity))}${metric('perplexity after', num(vm.prunedPerplexity) + rise)}${metric('sparsity achieved', `${(vm.achieved * 100).toFixed(2)}%`)}</div>
<h2>Perplexity vs sparsity</h2>${lineChartSvg(vm.curves)}
<h2>Sparsity per layer</h2>${barsSvg(vm.layers, `${vm.layers.length} weights`)}
<h2>Generations before / after</h2>${generationsTable(vm.generations, 'No generations in this report (give prompts to compare them).')}
<p class="note">Mask: ${esc(vm.mask)}</p>`;
}

export function componentsList(groups: readonly ComponentGroup[]): string {
  if (groups.length === 0) return '<p class="note">No components pruned.</p>';
  return groups
    .map((g) => {
      const items = g.items
        .map(
          (c) =>
            `<li><code>${esc(c.kind)}</code> #${c.index} <span class="note">${esc(c.weight)} · score ${formatNumber(c.score)}</span></li>`,
        )
        .join('');
      return `<details open><summary>${esc(g.layer)} (${g.items.length})</summary><ul class="components">${items}</ul></details>`;
    })
    .join('');
}

export function correctionBody(vm: CorrectionViewModel): string {
  const budget = vm.chosen.withinBudget ? '' : ' — no count kept perplexity within the budget; the smallest was kept';
  return `<h1>${esc(vm.title)}</h1><p class="subtitle">${esc(vm.subtitle)}</p>
<div class="metrics">${metric('behaviour before', formatNumber(vm.dense.behaviour))}${metric('behaviour after', formatNumber(vm.chosen.behaviour))}${metric('perplexity before', formatNumber(vm.dense.perplexity))}${metric('perplexity after', formatNumber(vm.chosen.perplexity))}</div>
<p class="note">Chosen: ${vm.chosen.count}${esc(budget)}</p>
<h2>Trade-off</h2><div class="charts">${lineChartSvg(vm.behaviourCurve)}${lineChartSvg(vm.perplexityCurve)}</div>
<h2>Undesired prompts: before / after</h2>${generationsTable(vm.undesired, 'No continuations in this report.')}
<h2>General prompts: before / after</h2>${generationsTable(vm.general, 'No continuations in this report.')}
<h2>Pruned components by layer</h2>${componentsList(vm.components)}
<p class="note">Mask: ${esc(vm.mask)}</p>`;
}

export function reportBody(vm: ReportViewModel): string {
  return vm.kind === 'pruning' ? pruningBody(vm) : correctionBody(vm);
}

const BUTTON_TEXT: Record<PanelAction, string> = {
  apply: 'Apply Mask',
  save: 'Save',
  discard: 'Discard',
  exportJson: 'Export JSON',
  exportHtml: 'Export HTML',
};

function toolbar(actions: readonly PanelAction[]): string {
  const buttons = actions
    .map((a) => `<vscode-button data-action="${a}"${a === 'apply' ? '' : ' secondary'}>${BUTTON_TEXT[a]}</vscode-button>`)
    .join('');
  return `<div class="toolbar">${buttons}<span id="status" class="note" role="status"></span></div>`;
}

/** The report rendered into the page; `actions`: the buttons to show (a report opened from a file may omit apply/discard). */
export function reportPanelHtml(vm: ReportViewModel, assets: PanelAssets, actions: readonly PanelAction[] = PANEL_ACTIONS): string {
  return webviewPage({ ...assets, title: vm.title, body: `${toolbar(actions)}\n<main id="app">${reportBody(vm)}</main>` });
}

const STANDALONE_CSS = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f1f1f; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 20px 0 6px; }
.subtitle, .note { color: #555; font-size: 12px; }
.metrics { display: flex; gap: 24px; } .metric-label { font-size: 11px; color: #555; } .metric-value { font-size: 16px; font-weight: 600; }
table { border-collapse: collapse; font-size: 12px; } td, th { padding: 3px 8px; text-align: left; vertical-align: top; border-bottom: 1px solid #ddd; }
.gen { font-family: monospace; white-space: pre-wrap; max-width: 420px; } .num { text-align: right; }
.diff-removed { background: #ffd7d5; text-decoration: line-through; } .diff-added { background: #ccf0d0; }
.axis { stroke: #666; } .grid { stroke: #eee; } .reference { stroke: #888; } .bar { fill: #0969da; } .bar-track { fill: #eee; }
.series-0 { stroke: #0969da; fill: #0969da; } .series-1 { stroke: #d1242f; fill: #d1242f; } .series-2 { stroke: #1a7f37; fill: #1a7f37; }
.series-3 { stroke: #9a6700; fill: #9a6700; } .series-4 { stroke: #8250df; fill: #8250df; } .series-5 { stroke: #57606a; fill: #57606a; }
polyline, polyline[class] { fill: none; } svg { display: block; max-width: 100%; height: auto; } .charts { display: flex; flex-wrap: wrap; gap: 16px; }
`;

/** Self-contained HTML export: inline SVG and CSS, no scripts, nothing fetched. */
export function standaloneReportHtml(vm: ReportViewModel): string {
  return standalonePage(
    vm.title,
    STANDALONE_CSS,
    `${reportBody(vm)}
<p class="note">LRP Lens. LRP is patented; free of charge for personal and scientific use only.</p>`,
  );
}
