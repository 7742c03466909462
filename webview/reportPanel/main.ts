/**
 * Pruning / correction panel front-end. The host renders the report into the page; this script only defines
 * the buttons (@vscode-elements), posts which one was pressed, and completes the handshake. It computes nothing.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import { PANEL_ACTIONS } from '../../src/views/reportPanel/protocol';
import type { HostMessage, PanelAction, WebviewMessage } from '../../src/views/reportPanel/protocol';
import { vsCodeApi } from '../shared/dom';
import { connect, postRendered } from '../shared/panel';

const vscode = vsCodeApi<WebviewMessage>();

for (const button of document.querySelectorAll<HTMLElement>('[data-action]')) {
  const action = button.dataset.action as PanelAction;
  if (!PANEL_ACTIONS.includes(action)) continue;
  button.addEventListener('click', () => vscode.postMessage({ type: 'action', action }));
}

// The host sends nothing after the page it rendered; the report was there from the page's start (t0 = 0).
connect(
  vscode,
  (_value: unknown): _value is HostMessage => false,
  () => undefined,
);
postRendered(vscode, 0);
