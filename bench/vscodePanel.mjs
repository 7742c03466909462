// Benchmarks of the extension in a real browser (run by `run.sh bench`, part of `npm run bench`):
//  1. command → panel rendered, warm engine, stories260k, in code-server: the wall time from pressing Enter on
//     "LRP Lens: Compute Relevance" to the new panel contents, split into the engine's round trip (host side),
//     the webview's render (webview side, reported by the panel) and the rest (command dispatch, message transfer);
//  2. the panel's render of a large result (1,000 tokens × 30 layers × 32 heads) in plain Chromium, from the
//     'show' message to the frame after the DOM update. Target ≤ 200 ms.
// env: CS_URL, UD (code-server user-data-dir: logs), RENDER_PAGE (panelRenderPage.ts output), OUT (JSON),
//      BENCH_ONLY=render (only part 2: no code-server needed; `run.sh render`)
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHROMIUM, CHROMIUM_ARGS, chromiumEnv } from '../test/e2e/chromium.mjs';

const REPS = 7;
const RENDER_TARGET_MS = 200;
const { CS_URL, UD, RENDER_PAGE, OUT, BENCH_ONLY } = process.env;
const renderOnly = BENCH_ONLY === 'render';
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-chromium-'));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const logText = () =>
  fs
    .readdirSync(path.join(UD, 'logs'), { recursive: true })
    .map(String)
    .filter((f) => /LRP Lens\.log$/.test(f))
    .sort()
    .map((f) => fs.readFileSync(path.join(UD, 'logs', f), 'utf8'))
    .join('');

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: [...CHROMIUM_ARGS, '--allow-file-access-from-files'],
  viewport: { width: 1600, height: 1000 },
  env: chromiumEnv(profile),
});
const page = ctx.pages()[0] || (await ctx.newPage());
const input = page.locator('.quick-input-widget input.input');

/** Opens the palette on `label`; returns a function that presses Enter and resolves with the time it did. */
async function armPalette(label) {
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first();
  for (let attempt = 1; attempt <= 15; attempt++) {
    if (!(await input.isVisible())) {
      await page.keyboard.press(attempt % 2 ? 'F1' : 'Control+Shift+P');
      await input.waitFor({ state: 'visible', timeout: 3000 }).catch(() => {});
    }
    await input.fill('>' + label).catch(() => {});
    if (
      await row.waitFor({ timeout: 4000 }).then(
        () => true,
        () => false,
      )
    )
      return async () => {
        const t = Date.now();
        await page.keyboard.press('Enter');
        return t;
      };
    await page.keyboard.press('Escape');
  }
  throw new Error(`command "${label}" never appeared in the palette`);
}

async function openPrompt() {
  await page.goto(CS_URL, { waitUntil: 'domcontentloaded' });
  await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60000 });
  for (let attempt = 1; attempt <= 10; attempt++) {
    await page.keyboard.press('Control+P');
    await input.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {});
    await input.fill('lily.prompt');
    if (
      await page
        .locator('.quick-input-list .monaco-list-row', { hasText: 'lily.prompt' })
        .first()
        .waitFor({ timeout: 4000 })
        .then(
          () => true,
          () => false,
        )
    )
      break;
    await page.keyboard.press('Escape');
  }
  await page.keyboard.press('Enter');
  await page.locator('.part.editor .monaco-editor .view-lines', { hasText: 'Once upon' }).first().waitFor({ timeout: 15000 });
}

/** One Compute Relevance: wall time to new panel contents, and the engine and render times the log reports for it. */
async function commandToPanel() {
  const inner = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
  await inner
    .locator('#app > header')
    .evaluate((h) => h.setAttribute('data-stale', ''))
    .catch(() => {});
  const before = logText().length;
  await page.locator('.part.editor .monaco-editor .view-lines', { hasText: 'Once upon' }).first().click();
  const t0 = await (await armPalette('LRP Lens: Compute Relevance'))();
  await inner.locator('#app > header:not([data-stale])').first().waitFor({ timeout: 60000 });
  await inner.locator('.tokens .token').first().waitFor({ timeout: 60000 });
  const wallMs = Date.now() - t0;
  let engineMs, renderMs;
  for (let i = 0; i < 100 && renderMs === undefined; i++) {
    const fresh = logText().slice(before);
    engineMs = Number(/lily\.prompt: target .* engine (\d+) ms/.exec(fresh)?.[1]);
    renderMs = /lily\.prompt: panel rendered in ([\d.]+) ms/.exec(fresh)?.[1];
    if (renderMs === undefined) await page.waitForTimeout(100);
  }
  return { wallMs, engineMs, renderMs: Number(renderMs) };
}

async function panelBench() {
  await openPrompt();
  const cold = await commandToPanel();
  const warm = [];
  for (let r = 0; r < REPS; r++) warm.push(await commandToPanel());
  const m = (k) => median(warm.map((w) => w[k]));
  return {
    cold,
    warm: {
      reps: REPS,
      wallMs: m('wallMs'),
      engineMs: m('engineMs'),
      renderMs: m('renderMs'),
      otherMs: m('wallMs') - m('engineMs') - m('renderMs'),
    },
    runs: warm,
  };
}

/** Renders the large result REPS times in the panel's own page (acquireVsCodeApi stubbed to record messages). */
async function renderBench() {
  const { shape, result } = JSON.parse(fs.readFileSync(path.join(path.dirname(RENDER_PAGE), 'result.json'), 'utf8'));
  const p = await ctx.newPage();
  await p.addInitScript(() => {
    window.__posted = [];
    window.acquireVsCodeApi = () => ({ postMessage: (m) => window.__posted.push(m), getState: () => undefined, setState: () => {} });
  });
  const errors = [];
  p.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  p.on('pageerror', (e) => errors.push(e.message));
  await p.goto('file://' + RENDER_PAGE);
  await p.waitForFunction(() => window.__posted.some((m) => m.type === 'ready'));
  await p.evaluate((r) => {
    window.__result = r;
  }, result);
  const times = [];
  for (let r = 0; r <= REPS; r++) {
    const ms = await p.evaluate(async () => {
      const n = window.__posted.length;
      window.postMessage(
        { type: 'show', result: structuredClone(window.__result), title: 'bench.prompt', uri: 'file:///bench.prompt' },
        '*',
      );
      while (!window.__posted.slice(n).some((m) => m.type === 'rendered')) await new Promise((res) => setTimeout(res, 5));
      return window.__posted.slice(n).find((m) => m.type === 'rendered').ms;
    });
    times.push(ms);
  }
  const chips = await p.locator('.tokens .token').count();
  await p.screenshot({ path: path.join(path.dirname(RENDER_PAGE), 'render.png') });
  // The other tabs are drawn when first shown: click → the frame after the DOM update.
  const tabs = {};
  let hover = '';
  for (const tab of ['Layers', 'Heads', 'Neurons']) {
    tabs[tab] = await p.evaluate(async (label) => {
      const header = [...document.querySelectorAll('vscode-tab-header')].find((h) => h.textContent.trim() === label);
      const t0 = performance.now();
      header.click();
      await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
      return performance.now() - t0;
    }, tab);
    await p.screenshot({ path: path.join(path.dirname(RENDER_PAGE), `render-${tab.toLowerCase()}.png`) });
    if (tab === 'Layers') {
      // The canvas names the cell under the pointer: layer 2 (rows of 12 px from y = 4), token 10 (columns of 1.16 px from x = 40).
      const canvas = p.locator('vscode-tab-panel:not([hidden]) .heatmap-canvas canvas');
      await canvas.hover({ position: { x: 40 + 10.5 * 1.16, y: 4 + 2.5 * 12 } });
      hover = await p.locator('vscode-tab-panel:not([hidden]) .cell-readout').textContent();
    }
  }
  await p.close();
  if (chips !== shape.tokens || errors.length)
    throw new Error(`the large panel did not render: ${chips} chips; errors ${JSON.stringify(errors)}`);
  if (!/^layer 2, " w10" \(10\): -?\d+\.\d{4}$/.test(hover))
    throw new Error(`hovering the layer × token canvas read ${JSON.stringify(hover)}`);
  return { shape, firstMs: times[0], medianMs: median(times.slice(1)), reps: REPS, targetMs: RENDER_TARGET_MS, tabMs: tabs };
}

/** The extension's activation as it logs it, counted from its bundle's first line (target ≤ 100 ms). */
function activation() {
  const m = /activated in ([\d.]+) ms \(code loading ([\d.]+) ms/.exec(logText());
  return m ? { ms: Number(m[1]), codeLoadingMs: Number(m[2]), targetMs: 100 } : undefined;
}

/** This machine's VSIX (npm run package, path in $VSIX) against the size budget. */
function vsixSize() {
  const file = process.env.VSIX;
  if (!file || !fs.existsSync(file)) return undefined;
  return { file: path.basename(file), mb: Number((fs.statSync(file).size / 2 ** 20).toFixed(1)), budgetMb: 40 };
}

let report;
try {
  const panel = renderOnly ? undefined : await panelBench();
  const render = await renderBench();
  report = {
    date: new Date().toISOString(),
    model: 'stories260k',
    panel,
    render,
    activation: renderOnly ? undefined : activation(),
    vsix: vsixSize(),
  };
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
const f = (x) => x.toFixed(0);
if (report.panel) {
  const { warm, cold } = report.panel;
  console.log('\nCompute Relevance → panel rendered (stories260k, 14 tokens, code-server + Chromium), ms:');
  console.log('| engine | runs | wall | engine round trip | panel render | command + transfer |');
  console.log('|---|---|---|---|---|---|');
  console.log(
    `| cold | 1 | ${f(cold.wallMs)} | ${f(cold.engineMs)} | ${f(cold.renderMs)} | ${f(cold.wallMs - cold.engineMs - cold.renderMs)} |`,
  );
  console.log(`| warm | median of ${warm.reps} | ${f(warm.wallMs)} | ${f(warm.engineMs)} | ${f(warm.renderMs)} | ${f(warm.otherMs)} |`);
}
const r = report.render;
console.log(
  `\nPanel render, ${r.shape.tokens} tokens × ${r.shape.layers} layers × ${r.shape.heads} heads (${r.shape.neurons} neurons/layer), Chromium: ` +
    `first ${f(r.firstMs)} ms, median of ${r.reps} ${f(r.medianMs)} ms (target ≤ ${r.targetMs} ms); ` +
    `first show of the other tabs: ${Object.entries(r.tabMs)
      .map(([t, ms]) => `${t} ${f(ms)} ms`)
      .join(', ')}`,
);
if (report.activation)
  console.log(
    `\nActivation (development bundle, code-server): ${report.activation.ms} ms, of which code loading ${report.activation.codeLoadingMs} ms (target ≤ 100 ms)`,
  );
if (report.vsix) console.log(`VSIX ${report.vsix.file}: ${report.vsix.mb} MB (budget ${report.vsix.budgetMb} MB)`);
fs.mkdirSync(path.dirname(OUT), { recursive: true });
fs.writeFileSync(OUT, JSON.stringify(report, null, 2) + '\n');
console.log(`wrote ${OUT}`);
