/**
 * The circuit panel's webview shell: strict CSP (default-src 'none', a fresh nonce per render, scripts and
 * styles only from the extension), no vscode import — the host passes cspSource and asWebviewUri strings.
 */
import { escapeMarkup } from '../escape';
import { newNonce, panelCsp } from '../relevancePanel/html';

export interface CircuitPanelHtmlOptions {
  cspSource: string;
  nonce?: string;
  /** asWebviewUri(dist/webview/circuitPanel.js) */
  scriptUri: string;
  /** asWebviewUri(media/circuitPanel.css) */
  styleUri: string;
}

export function circuitPanelHtml(options: CircuitPanelHtmlOptions): string {
  const nonce = options.nonce ?? newNonce();
  const attr = escapeMarkup;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${panelCsp(options.cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${attr(options.styleUri)}">
<title>LRP Lens: circuit</title>
</head>
<body>
<main id="app" aria-live="polite"><p class="status">Loading the circuit…</p></main>
<script nonce="${attr(nonce)}" src="${attr(options.scriptUri)}"></script>
</body>
</html>`;
}
