/**
 * Messages between the extension host and the circuit panel webview, imported by both ends. The record shown
 * is circuit.json's content (schema lrp-lens/circuit@1), read from disk by the host.
 */
import type { CircuitRecord } from '../../engine/circuits/discover';
import { hasType, isHandshakeMessage } from '../panelProtocol';
import type { HandshakeMessage } from '../panelProtocol';

export type HostMessage =
  /** `uri`: the circuit.json shown, persisted so a reloaded window can show it again. */
  { type: 'show'; record: CircuitRecord; title: string; uri: string } | { type: 'error'; message: string };

export type ExportFormat = 'svg' | 'png' | 'json';

export type WebviewMessage =
  | HandshakeMessage
  /** PNG is drawn in the webview (SVG onto a canvas) and arrives as a data: URL; SVG and JSON are written by the host. */
  | { type: 'export'; format: ExportFormat; dataUrl?: string }
  /** Apply this circuit's mask (lrpLens.applyMask). */
  | { type: 'apply' };

/** Persisted with setState: which file, the edge count and the pinned node; never the record. */
export interface CircuitPanelState {
  uri?: string;
  topK?: number;
  pinned?: string;
}

const HOST_TYPES = new Set<HostMessage['type']>(['show', 'error']);

export function isHostMessage(value: unknown): value is HostMessage {
  return hasType(value) && HOST_TYPES.has(value.type as HostMessage['type']);
}

/** Webview input is untrusted: checks each message's fields, not just the tag. */
export function isWebviewMessage(value: unknown): value is WebviewMessage {
  if (isHandshakeMessage(value)) return true;
  if (!hasType(value)) return false;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'apply':
      return true;
    case 'export':
      return (
        (m.format === 'svg' || m.format === 'png' || m.format === 'json') && (m.dataUrl === undefined || typeof m.dataUrl === 'string')
      );
    default:
      return false;
  }
}
