/**
 * The handshake every panel shares, imported by the hosts and the webview bundles: the page says `ready` once it
 * listens (the host queues its messages until then) and `rendered` once what it was sent is on screen.
 */
export type HandshakeMessage =
  | { type: 'ready' }
  /** Milliseconds from the content's arrival (or, for a page rendered by the host, the page's start) to the frame after the DOM update. */
  | { type: 'rendered'; ms: number };

export function hasType(value: unknown): value is { type: string } {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

/** Webview input is untrusted: `rendered` must carry a finite number. */
export function isHandshakeMessage(value: unknown): value is HandshakeMessage {
  if (!hasType(value)) return false;
  const m = value as Record<string, unknown>;
  return m.type === 'ready' || (m.type === 'rendered' && typeof m.ms === 'number' && Number.isFinite(m.ms));
}
