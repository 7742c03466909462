/**
 * Messages between the extension host and the relevance panel webview. Imported by both ends
 * (src/ and the webview/ bundle), so a renamed field breaks the build on both sides.
 */
import type { AttributionResult } from '../../engine/attribution/result';
import { hasType, isHandshakeMessage } from '../panelProtocol';
import type { HandshakeMessage } from '../panelProtocol';

export type HostMessage =
  /** `uri`: the prompt file explained, persisted so a reloaded window can recompute this panel. */
  | { type: 'show'; result: AttributionResult; title: string; uri: string }
  | { type: 'busy'; message: string }
  | { type: 'error'; message: string };

export type ExportFormat = 'json' | 'html' | 'png';

export type WebviewMessage =
  | HandshakeMessage
  /** A prediction was clicked: explain this token instead. */
  | { type: 'retarget'; tokenId: number }
  /** Contrast the target against this token (null: no foil). */
  | { type: 'foil'; tokenId: number | null }
  /** PNG is drawn in the webview (SVG onto a canvas) and arrives as a data: URL; JSON and HTML are written by the host. */
  | { type: 'export'; format: ExportFormat; dataUrl?: string };

/**
 * What the webview persists with setState: navigation only. Results are not persisted because they go stale;
 * the host sends 'show' again after 'ready'.
 */
export interface PanelState {
  layer?: number;
  token?: number;
  /** The prompt file this panel explains. */
  uri?: string;
}

const HOST_TYPES = new Set<HostMessage['type']>(['show', 'busy', 'error']);

export function isHostMessage(value: unknown): value is HostMessage {
  return hasType(value) && HOST_TYPES.has(value.type as HostMessage['type']);
}

/** Webview input is untrusted: checks the fields each message type carries, not just the tag. */
export function isWebviewMessage(value: unknown): value is WebviewMessage {
  if (isHandshakeMessage(value)) return true;
  if (!hasType(value)) return false;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'retarget':
      return Number.isInteger(m.tokenId);
    case 'foil':
      return m.tokenId === null || Number.isInteger(m.tokenId);
    case 'export':
      return (
        (m.format === 'json' || m.format === 'html' || m.format === 'png') && (m.dataUrl === undefined || typeof m.dataUrl === 'string')
      );
    default:
      return false;
  }
}
