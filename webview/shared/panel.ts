/**
 * The page's side of the handshake every panel shares (src/views/panelProtocol.ts): listen for the host's
 * messages, then say `ready`; say `rendered` once what was shown is on screen.
 */
import type { HandshakeMessage } from '../../src/views/panelProtocol';
import type { VsCodeApi } from './dom';

/** Hands each valid host message to `onMessage`, then tells the host the page listens. */
export function connect<HostMessage>(
  vscode: VsCodeApi<HandshakeMessage, unknown>,
  isHostMessage: (value: unknown) => value is HostMessage,
  onMessage: (message: HostMessage) => void,
): void {
  window.addEventListener('message', (event: MessageEvent) => {
    if (isHostMessage(event.data)) onMessage(event.data);
  });
  vscode.postMessage({ type: 'ready' });
}

/** Posts `rendered` with the time since `t0` once the frame showing the current DOM is drawn (a rAF, then a task). */
export function postRendered(vscode: VsCodeApi<HandshakeMessage, unknown>, t0: number): void {
  requestAnimationFrame(() => setTimeout(() => vscode.postMessage({ type: 'rendered', ms: performance.now() - t0 }), 0));
}
