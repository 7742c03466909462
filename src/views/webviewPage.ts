/**
 * The page every LRP Lens webview is: a strict CSP (default-src 'none', one fresh nonce per render, scripts and
 * styles only from the extension) and the self-contained export page (inline CSS, no scripts, nothing fetched).
 * No vscode import: hosts pass webview.cspSource and asWebviewUri strings.
 */
import { randomBytes } from 'node:crypto';
import { escapeMarkup } from './escape';

/** 128 random bits, base64: a nonce a page cannot guess (Math.random can be predicted). */
export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

export function panelCsp(cspSource: string, nonce: string): string {
  return [
    `default-src 'none'`,
    `style-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
  ].join('; ');
}

/** What a panel's page loads: the webview's CSP source and the URIs of the panel's bundle and stylesheet. */
export interface PanelAssets {
  /** webview.cspSource */
  cspSource: string;
  /** asWebviewUri(dist/webview/PANEL.js) */
  scriptUri: string;
  /** asWebviewUri(media/PANEL.css) */
  styleUri: string;
  /** Fresh per render; newNonce() when omitted. */
  nonce?: string;
}

export interface WebviewPageOptions extends PanelAssets {
  /** Plain text; escaped here. */
  title: string;
  /** Markup of the body, before the script. */
  body: string;
}

export function webviewPage(o: WebviewPageOptions): string {
  const nonce = o.nonce ?? newNonce();
  const attr = escapeMarkup;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${panelCsp(o.cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${attr(o.styleUri)}">
<title>${attr(o.title)}</title>
</head>
<body>
${o.body}
<script nonce="${attr(nonce)}" src="${attr(o.scriptUri)}"></script>
</body>
</html>`;
}

/** A self-contained export: the given CSS inline, no scripts, nothing fetched. `title` is plain text. */
export function standalonePage(title: string, css: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeMarkup(title)}</title>
<style>${css}</style>
</head>
<body>
${body}
</body>
</html>`;
}
