/**
 * Screenshots of the pruning, correction and circuit panels for the README, from real reports: the panels' own
 * view models rendered as their standalone exports (the same markup and charts as in VS Code, light theme) and
 * photographed in Debian's Chromium.
 * usage: tsx test/e2e/panelShots.ts PRUNE_REPORT COMPARE_REPORT CORRECT_REPORT CIRCUIT_JSON OUT_DIR
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { standaloneReportHtml } from '../../src/views/reportPanel/html';
import { correctionViewModel, pruningViewModel } from '../../src/views/reportPanel/viewModel';
import { buildCircuitViewModel } from '../../src/views/circuitPanel/viewModel';
import { reportSvg } from '../../src/views/circuitPanel/svg';

const [prune, compare, correct, circuit, out] = process.argv.slice(2);
if (!out) throw new Error('usage: panelShots.ts PRUNE_REPORT COMPARE_REPORT CORRECT_REPORT CIRCUIT_JSON OUT_DIR');
const json = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
mkdirSync(out, { recursive: true });
const pages: [string, string][] = [
  ['pruning-panel', standaloneReportHtml(pruningViewModel(json(prune), { compare: json(compare) }))],
  ['correction-panel', standaloneReportHtml(correctionViewModel(json(correct)))],
  [
    'circuit-panel',
    `<!DOCTYPE html><html><body style="margin:0;background:#fff">${reportSvg(buildCircuitViewModel(json(circuit)), { theme: 'light' })}</body></html>`,
  ],
];

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    for (const [name, html] of pages) {
      const file = join(out, `${name}.html`);
      writeFileSync(file, html);
      await page.goto(`file://${file}`);
      await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
      console.log(`wrote ${join(out, `${name}.png`)}`);
    }
  } finally {
    await browser.close();
  }
})();
