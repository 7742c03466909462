/**
 * Pruning / correction panel front-end. The host renders the report into the page; this script only defines
 * the buttons (@vscode-elements) and posts which one was pressed. It computes nothing.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import { PANEL_ACTIONS } from '../../src/views/reportPanels/protocol';
import type { PanelAction, ReportWebviewMessage } from '../../src/views/reportPanels/protocol';
import { vsCodeApi } from '../shared/dom';

const vscode = vsCodeApi<ReportWebviewMessage>();

for (const button of document.querySelectorAll<HTMLElement>('[data-action]')) {
  const action = button.dataset.action as PanelAction;
  if (!PANEL_ACTIONS.includes(action)) continue;
  button.addEventListener('click', () => vscode.postMessage({ type: 'action', action }));
}
