/** Terminal rendering of an attribution: a diverging token heatmap and the top predictions. */
import type { AttributionResult } from '../engine/attribution/result';
import { divergingColor, normalise } from '../views/colors';
import { visibleToken as visible } from '../views/escape';

export function renderHeatmap(r: AttributionResult, color: boolean, tokenRelevance = r.relevance.tokens): string {
  const scaled = normalise(tokenRelevance);
  if (!color) {
    return r.tokens.map((t, i) => `[${visible(t.text)}|${tokenRelevance[i].toFixed(3)}]`).join(' ');
  }
  return r.tokens
    .map((t, i) => {
      const [R, G, B] = divergingColor(scaled[i]);
      return `\x1b[48;2;${R};${G};${B}m\x1b[38;2;0;0;0m${visible(t.text) || '·'}\x1b[0m`;
    })
    .join('');
}

export function renderSummary(r: AttributionResult, color: boolean): string {
  const lines: string[] = [];
  const foil = r.target.foil ? ` − ${JSON.stringify(r.target.foil.text)} (id ${r.target.foil.id})` : '';
  lines.push(
    `target ${JSON.stringify(r.target.text)} (id ${r.target.id}, p=${r.target.prob.toFixed(3)})${foil} at position ${r.target.position}; rule ${r.rule}`,
  );
  lines.push(renderHeatmap(r, color));
  if (color) lines.push(`legend: ${scaleLegend()}  (relevance / max |relevance|)`);
  const total = r.relevance.tokens.reduce((a, b) => a + b, 0);
  const absorbed = Object.entries(r.relevance.absorbed)
    .map(([k, v]) => `${k} ${v.toFixed(4)}`)
    .join(', ');
  lines.push(`seed ${r.relevance.seed.toFixed(4)} = tokens ${total.toFixed(4)}${absorbed ? ` + absorbed (${absorbed})` : ''}`);
  lines.push('top predictions:');
  for (const p of r.predictions) lines.push(`  ${(p.prob * 100).toFixed(1).padStart(5)}%  ${JSON.stringify(p.text)} (${p.id})`);
  const rank = [...r.relevance.tokens.keys()].sort((a, b) => Math.abs(r.relevance.tokens[b]) - Math.abs(r.relevance.tokens[a])).slice(0, 5);
  lines.push(
    'most relevant tokens: ' + rank.map((i) => `${JSON.stringify(r.tokens[i].text)}@${i} ${r.relevance.tokens[i].toFixed(3)}`).join(', '),
  );
  if (r.continuation) {
    lines.push('continuation (target × source):');
    r.continuation.targets.forEach((t, k) =>
      lines.push(`  ${JSON.stringify(t.text).padEnd(12)} ${renderHeatmap(r, color, r.continuation!.matrix[k])}`),
    );
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  lines.push(
    `time: load ${r.timing.loadMs.toFixed(0)} ms (compile ${r.timing.compiledFromCache ? 'cached' : `${r.timing.compileMs.toFixed(0)} ms`}), run ${r.timing.runMs.toFixed(1)} ms`,
  );
  return lines.join('\n');
}

function scaleLegend(): string {
  return [-1, -0.5, 0, 0.5, 1]
    .map((v) => {
      const [R, G, B] = divergingColor(v);
      return `\x1b[48;2;${R};${G};${B}m\x1b[38;2;0;0;0m ${v >= 0 ? '+' : ''}${v} \x1b[0m`;
    })
    .join('');
}
