/**
 * What every panel's host does the same way: the webview options and assets, the page, the message guard, the
 * ready/rendered handshake (messages wait in a queue until the page says `ready`), the serializer that brings
 * panels back after a reload, exports into lrpLens.outputFolder, and closing every panel on dispose. A panel's
 * own host (views/<panel>/host.ts) adds what it shows and what its messages do.
 */
import * as vscode from 'vscode';
import { basename } from 'node:path';
import { Disposable } from '../dispose';
import { isHandshakeMessage } from './panelProtocol';
import type { HandshakeMessage } from './panelProtocol';
import type { PanelAssets } from './webviewPage';

/** What the container gives every panel host. */
export interface PanelServices {
  extensionUri: vscode.Uri;
  /** lrpLens.outputFolder in the first workspace folder; undefined without a workspace. */
  outputFolder(): string | undefined;
  log(line: string): void;
}

/** A panel's own messages: what the page posts besides the handshake. */
export type OwnMessage<WebviewMessage> = Exclude<WebviewMessage, HandshakeMessage>;

/** The fixed facts of one kind of panel. */
export interface PanelKind<WebviewMessage> {
  viewType: string;
  /** dist/webview/BUNDLE.js and media/BUNDLE.css */
  bundle: string;
  isWebviewMessage(value: unknown): value is WebviewMessage;
}

/** One open panel: its key (the file it shows), the webview panel, and the messages waiting for `ready`. */
export interface PanelEntry<HostMessage> {
  readonly key: string;
  readonly panel: vscode.WebviewPanel;
  ready: boolean;
  queued: HostMessage[];
}

/** Scripts only from dist/webview, styles only from media; the page is rebuilt when it is shown again. */
function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    retainContextWhenHidden: false,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

function assetsOf(webview: vscode.Webview, extensionUri: vscode.Uri, bundle: string): PanelAssets {
  return {
    cspSource: webview.cspSource,
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${bundle}.js`)).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', `${bundle}.css`)).toString(),
  };
}

export abstract class PanelHost<
  Entry extends PanelEntry<HostMessage>,
  HostMessage,
  WebviewMessage extends { type: string },
> extends Disposable {
  protected readonly entries = new Map<string, Entry>();

  constructor(
    protected readonly services: PanelServices,
    private readonly kind: PanelKind<WebviewMessage>,
  ) {
    super();
  }

  /** What the panel's own messages (not the handshake) do. */
  protected abstract onMessage(entry: Entry, message: OwnMessage<WebviewMessage>): Promise<unknown>;

  /** How the log names a panel ("lily.prompt", "Circuit: pronoun-lrp-heads"). */
  protected abstract label(entry: Entry): string;

  /** Brings panels of this kind back after a reload; `restore` adopts the panel or disposes it. */
  protected restoreWith<State>(restore: (panel: vscode.WebviewPanel, state: State | undefined) => Promise<void>): void {
    this.register(vscode.window.registerWebviewPanelSerializer(this.kind.viewType, { deserializeWebviewPanel: restore }));
  }

  protected createPanel(title: string, preserveFocus = true): vscode.WebviewPanel {
    return vscode.window.createWebviewPanel(
      this.kind.viewType,
      title,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus },
      webviewOptions(this.services.extensionUri),
    );
  }

  /** Puts the page into `entry.panel` and tracks the panel under `entry.key` until it is closed. */
  protected adopt(entry: Entry, page: (assets: PanelAssets) => string): Entry {
    const webview = entry.panel.webview;
    webview.options = webviewOptions(this.services.extensionUri);
    webview.html = page(assetsOf(webview, this.services.extensionUri, this.kind.bundle));
    const sub = webview.onDidReceiveMessage((m: unknown) => {
      if (this.kind.isWebviewMessage(m)) void this.receive(entry, m);
    });
    entry.panel.onDidDispose(() => {
      sub.dispose();
      if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    });
    this.entries.set(entry.key, entry);
    return entry;
  }

  private async receive(entry: Entry, m: WebviewMessage): Promise<void> {
    if (!isHandshakeMessage(m)) await this.onMessage(entry, m as OwnMessage<WebviewMessage>);
    else if (m.type === 'rendered') this.services.log(`${this.label(entry)}: panel rendered in ${m.ms.toFixed(1)} ms`);
    else {
      entry.ready = true;
      for (const q of entry.queued.splice(0)) void entry.panel.webview.postMessage(q);
    }
  }

  /** Sends now if the page listens, else once it says `ready`. */
  protected post(entry: Entry, message: HostMessage): void {
    if (entry.ready) void entry.panel.webview.postMessage(message);
    else entry.queued.push(message);
  }

  /** The export folder, or undefined after telling the user to open a workspace. */
  protected exportFolder(): string | undefined {
    const folder = this.services.outputFolder();
    if (!folder) void vscode.window.showErrorMessage('LRP Lens: open a workspace folder to export (files go to lrpLens.outputFolder).');
    return folder;
  }

  /** The bytes of a PNG the page drew (a data: URL), or undefined after saying none came. */
  protected pngBytes(dataUrl: string | undefined): Buffer | undefined {
    if (dataUrl?.startsWith('data:image/png;base64,')) return Buffer.from(dataUrl.slice(22), 'base64');
    void vscode.window.showErrorMessage('LRP Lens: the panel sent no PNG data to export.');
    return undefined;
  }

  /** Says a file was exported, with a button that reveals it. */
  protected announceExport(file: string): void {
    void vscode.window
      .showInformationMessage(`LRP Lens: exported ${basename(file)}`, 'Reveal')
      .then((pick) => pick && vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(file)));
  }

  override dispose(): void {
    for (const e of [...this.entries.values()]) e.panel.dispose();
    this.entries.clear();
    super.dispose();
  }
}
