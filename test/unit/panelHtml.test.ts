/** The relevance panel's webview HTML (CSP, nonce), the standalone HTML export, and the message guards. */
import assert from 'node:assert/strict';
import { newNonce, panelHtml, standaloneHtml } from '../../src/views/relevancePanel/html';
import { isHostMessage, isWebviewMessage } from '../../src/views/relevancePanel/protocol';
import { HOSTILE_TEXTS, fixtureResult } from '../fixtures/attributionResults';

const URIS = {
  cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
  scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/relevancePanel.js',
  styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/media/relevancePanel.css',
};

function csp(html: string): string {
  return /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)![1];
}

describe('relevance panel HTML', () => {
  it('sets a strict CSP: default-src none, styles and images from the webview only, scripts by nonce', () => {
    const html = panelHtml(URIS);
    const policy = csp(html).split('; ');
    assert.equal(policy[0], "default-src 'none'");
    assert.ok(policy.includes(`style-src ${URIS.cspSource}`), 'no unsafe-inline styles');
    assert.ok(policy.includes(`img-src ${URIS.cspSource} data:`));
    assert.ok(policy.includes(`font-src ${URIS.cspSource}`));
    const nonce = /'nonce-([^']+)'/.exec(csp(html))![1];
    assert.ok(policy.includes(`script-src 'nonce-${nonce}'`));
    assert.ok(!html.includes('unsafe-inline') && !html.includes('unsafe-eval'));
    const scripts = html.match(/<script\b[^>]*>/g)!;
    assert.equal(scripts.length, 1);
    assert.ok(scripts[0].includes(`nonce="${nonce}"`) && scripts[0].includes(`src="${URIS.scriptUri}"`));
    assert.ok(html.includes(`<link rel="stylesheet" href="${URIS.styleUri}">`));
  });

  it('makes a fresh nonce on every render', () => {
    const nonceOf = (html: string) => /'nonce-([^']+)'/.exec(csp(html))![1];
    const a = nonceOf(panelHtml(URIS));
    const b = nonceOf(panelHtml(URIS));
    assert.notEqual(a, b);
    assert.ok(Buffer.from(a, 'base64').length >= 16, '128 random bits');
    const given = newNonce();
    assert.equal(nonceOf(panelHtml({ ...URIS, nonce: given })), given);
  });

  it('escapes token text with <script>, & and quotes in the standalone export, which runs no script', () => {
    const html = standaloneHtml(fixtureResult({ texts: HOSTILE_TEXTS }));
    assert.ok(!/<script/i.test(html), 'no script element, hostile token included');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(html.includes('Tom &amp; Jerry') && !html.includes('Tom & Jerry'));
    assert.ok(html.includes('&quot;quoted&quot;'));
    assert.ok(html.includes('it&#39;s'));
    assert.match(csp(html), /^default-src 'none'/);
    for (const section of ['Tokens', 'Layer × token', 'Layer × head', 'neurons, layer', 'Predictions'])
      assert.ok(html.includes(section), section);
    assert.equal(html.match(/<svg\b/g)!.length, 5, 'tokens, legend, layer × token, heads, neurons');
  });
});

describe('relevance panel messages', () => {
  it('accepts well-formed messages and rejects unknown or malformed ones', () => {
    assert.ok(isWebviewMessage({ type: 'ready' }));
    assert.ok(isWebviewMessage({ type: 'retarget', tokenId: 3 }));
    assert.ok(isWebviewMessage({ type: 'foil', tokenId: null }));
    assert.ok(isWebviewMessage({ type: 'export', format: 'png', dataUrl: 'data:image/png;base64,AA==' }));
    assert.ok(isWebviewMessage({ type: 'rendered', ms: 12.5 }));
    assert.ok(!isWebviewMessage({ type: 'rendered', ms: Infinity }));
    assert.ok(!isWebviewMessage({ type: 'selectLayer', layer: 2 }), 'no message the host would drop');
    assert.ok(!isWebviewMessage({ type: 'retarget', tokenId: '3' }));
    assert.ok(!isWebviewMessage({ type: 'export', format: 'pdf' }));
    assert.ok(!isWebviewMessage({ type: 'delete' }));
    assert.ok(!isWebviewMessage(null));
    assert.ok(isHostMessage({ type: 'busy', message: 'attributing…' }));
    assert.ok(!isHostMessage({ type: 'ready' }));
  });
});
