/** Messages between the pruning / correction panels and their host. Imported by both ends. */
export const PANEL_ACTIONS = ['apply', 'save', 'discard', 'exportJson', 'exportHtml'] as const;
export type PanelAction = (typeof PANEL_ACTIONS)[number];

/** webview → host: a button was pressed. */
export interface ActionMessage {
  type: 'action';
  action: PanelAction;
}

export type ReportWebviewMessage = ActionMessage;

export function isReportWebviewMessage(m: unknown): m is ReportWebviewMessage {
  const v = m as { type?: unknown; action?: unknown } | null;
  return v?.type === 'action' && (PANEL_ACTIONS as readonly unknown[]).includes(v.action);
}
