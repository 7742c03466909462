/** What every panel front-end needs from its page: the VS Code API, elements, trusted SVG markup, PNG export. */

export interface VsCodeApi<Message, State> {
  postMessage(message: Message): void;
  getState(): State | undefined;
  setState(state: State): void;
}

declare function acquireVsCodeApi(): unknown;

/** The page's VS Code API, typed by the panel's messages and state (VS Code allows one call per page). */
export function vsCodeApi<Message, State = never>(): VsCodeApi<Message, State> {
  return acquireVsCodeApi() as VsCodeApi<Message, State>;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** Markup from the panels' svg.ts modules escapes every piece of result text, so it is safe to parse. */
export function svgBlock(markup: string, className: string): HTMLElement {
  const block = el('div', { className });
  block.innerHTML = markup;
  return block;
}

export function statusLine(message: string, isError = false): HTMLElement {
  return el('p', { className: isError ? 'status error' : 'status' }, message);
}

/** Draws a standalone SVG onto a canvas and hands back its PNG data URL (or calls onError). */
export function svgToPng(svg: string, onPng: (dataUrl: string) => void, onError: () => void): void {
  const image = new Image();
  image.onload = () => {
    const canvas = el('canvas', { width: image.naturalWidth, height: image.naturalHeight });
    canvas.getContext('2d')?.drawImage(image, 0, 0);
    onPng(canvas.toDataURL('image/png'));
  };
  image.onerror = onError;
  image.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
}
