/**
 * The circuit panel's webview shell: strict CSP (default-src 'none', a fresh nonce per render, scripts and
 * styles only from the extension), no vscode import — the host passes cspSource and asWebviewUri strings.
 */
import { webviewPage } from '../webviewPage';
import type { PanelAssets } from '../webviewPage';

export function circuitPanelHtml(assets: PanelAssets): string {
  return webviewPage({
    ...assets,
    title: 'LRP Lens: circuit',
    body: '<main id="app" aria-live="polite"><p class="status">Loading the circuit…</p></main>',
  });
}
