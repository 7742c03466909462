/**
 * The circuit panel's webview shell: strict CSP (default-src 'none', a fresh nonce per render, scripts and
 * styles only from the extension), no vscode import — the host passes cspSource and asWebviewUri strings.
 */
import { webviewPage } from '../webviewPage';

export interface CircuitPanelHtmlOptions {
  cspSource: string;
  nonce?: string;
  /** asWebviewUri(dist/webview/circuitPanel.js) */
  scriptUri: string;
  /** asWebviewUri(media/circuitPanel.css) */
  styleUri: string;
}

export function circuitPanelHtml(options: CircuitPanelHtmlOptions): string {
  return webviewPage({
    ...options,
    title: 'LRP Lens: circuit',
    body: '<main id="app" aria-live="polite"><p class="status">Loading the circuit…</p></main>',
  });
}
