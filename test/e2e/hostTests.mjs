// Runs the extension-host tests (dist/test/vscode) inside code-server: opens a window whose payload names the
// extension under development and the tests, waits for the results file run() writes, prints it, and exits
// non-zero on any failure (code-server does not report run()'s outcome itself).
// env: CS_PORT, EXT (extension folder), WS (workspace folder), RESULTS (the file run() writes)
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHROMIUM, CHROMIUM_ARGS, chromiumEnv } from './chromium.mjs';

const { CS_PORT, EXT, WS, RESULTS } = process.env;
const TIMEOUT_MS = 300_000;
const remote = (p) => `vscode-remote://127.0.0.1:${CS_PORT}${p}`;
const payload = [
  ['extensionDevelopmentPath', remote(EXT)],
  ['extensionTestsPath', remote(path.join(EXT, 'dist', 'test', 'vscode', 'index.js'))],
];
const url = `http://127.0.0.1:${CS_PORT}/?folder=${WS}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-chromium-'));
const t0 = Date.now();

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: CHROMIUM_ARGS,
  env: chromiumEnv(profile),
});
let results;
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('pageerror:', e.message));
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  while (!results && Date.now() - t0 < TIMEOUT_MS) {
    await new Promise((r) => setTimeout(r, 500));
    if (fs.existsSync(RESULTS)) results = JSON.parse(fs.readFileSync(RESULTS, 'utf8'));
  }
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
if (!results) {
  console.log(`extension-host tests: no results after ${TIMEOUT_MS / 1000} s (${RESULTS} missing); see the extension-host log below`);
  process.exit(1);
}
console.log(`extension-host tests in VS Code ${results.vscode} (Node ${results.node}), ${((Date.now() - t0) / 1000).toFixed(1)} s:`);
for (const t of results.tests) {
  console.log(
    `  ${t.state === 'passed' ? 'PASS' : t.state === 'pending' ? 'SKIP' : 'FAIL'}  ${t.title}${t.ms !== undefined ? ` (${t.ms} ms)` : ''}`,
  );
  if (t.error) console.log(t.error.replace(/^/gm, '        '));
}
const ok = results.failures === 0 && results.passes > 0;
console.log(`${results.passes} passing, ${results.failures} failing, ${results.tests.filter((t) => t.state === 'pending').length} pending`);
process.exit(ok ? 0 : 1);
