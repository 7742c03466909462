/**
 * Messages between the pruning / correction panels and their host, imported by both ends. The host renders the
 * report into the page, so it sends nothing after it; the page posts the handshake and the buttons pressed.
 */
import { hasType, isHandshakeMessage } from '../panelProtocol';
import type { HandshakeMessage } from '../panelProtocol';

export const PANEL_ACTIONS = ['apply', 'save', 'discard', 'exportJson', 'exportHtml'] as const;
export type PanelAction = (typeof PANEL_ACTIONS)[number];

/** The host has nothing to send once the page is rendered. */
export type HostMessage = never;

export type WebviewMessage =
  | HandshakeMessage
  /** A button was pressed. */
  | { type: 'action'; action: PanelAction };

export function isWebviewMessage(value: unknown): value is WebviewMessage {
  if (isHandshakeMessage(value)) return true;
  const m = value as { type?: unknown; action?: unknown };
  return hasType(value) && m.type === 'action' && (PANEL_ACTIONS as readonly unknown[]).includes(m.action);
}
