/**
 * The relevance panel's front-end as a plain page, for timing its render in Chromium without VS Code: the
 * panel's own HTML (same CSP, same bundle and stylesheet) and a result of 1,000 tokens × 30 layers × 32 heads.
 * usage: tsx bench/panelRenderPage.ts OUT_DIR EXTENSION_DIR  → OUT_DIR/{index.html, result.json, …}
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { panelHtml } from '../src/views/relevancePanel/html';
import { fixtureResult } from '../test/fixtures/attributionResults';

export const RENDER_SHAPE = { tokens: 1000, layers: 30, heads: 32, neurons: 8192 };

const [out, ext] = process.argv.slice(2);
if (!out || !ext) throw new Error('usage: panelRenderPage.ts OUT_DIR EXTENSION_DIR');
mkdirSync(out, { recursive: true });
copyFileSync(join(ext, 'dist', 'webview', 'relevancePanel.js'), join(out, 'relevancePanel.js'));
copyFileSync(join(ext, 'media', 'relevancePanel.css'), join(out, 'relevancePanel.css'));
const url = (f: string) => pathToFileURL(join(out, f)).toString();
writeFileSync(
  join(out, 'index.html'),
  panelHtml({ cspSource: 'file:', scriptUri: url('relevancePanel.js'), styleUri: url('relevancePanel.css') }),
);
const texts = Array.from({ length: RENDER_SHAPE.tokens }, (_, i) => (i === 0 ? '<s>' : ` w${i}`));
const result = fixtureResult({ texts, layers: RENDER_SHAPE.layers, heads: RENDER_SHAPE.heads, neurons: RENDER_SHAPE.neurons });
writeFileSync(join(out, 'result.json'), JSON.stringify({ shape: RENDER_SHAPE, result }));
