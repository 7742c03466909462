/**
 * The relevance panel's host side: one webview panel per prompt file, beside the editor, restored after a
 * reload by a serializer (the persisted state holds the file and UI selection only; the attribution is
 * recomputed). The front-end renders what it is sent and asks for re-targeting and exports.
 */
import * as vscode from 'vscode';
import { panelAssets, panelWebviewOptions } from './webviewAssets';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Disposable } from '../dispose';
import type { AttributeRequest } from '../engine/attribution/attribute';
import type { AttributionResult } from '../engine/attribution/result';
import { panelHtml, standaloneHtml } from './relevancePanel/html';
import { isWebviewMessage } from './relevancePanel/protocol';
import type { ExportFormat, HostMessage, PanelState, WebviewMessage } from './relevancePanel/protocol';

export const VIEW_TYPE = 'lrpLens.relevance';

/** What a panel explains: the file, the request, and where the prompt starts in the file (−1: not as plain text). */
export interface PanelTarget {
  uri: vscode.Uri;
  request: AttributeRequest;
  promptOffset: number;
}

interface PanelEntry {
  panel: vscode.WebviewPanel;
  target?: PanelTarget;
  result?: AttributionResult;
  ready: boolean;
  queued: HostMessage[];
}

export interface PanelActions {
  /** Recompute the attribution for a target (after a re-target or a foil). */
  rerun(target: PanelTarget): Promise<unknown>;
  /** Recompute a panel restored after a reload, from its prompt file as it is now. */
  restore(uri: vscode.Uri): Promise<void>;
  /** Workspace folder for exports (lrpLens.outputFolder). */
  outputFolder(): string | undefined;
  /** The webview finished drawing a result, `ms` after it arrived (logged; the benchmark reads it). */
  rendered?(uri: vscode.Uri | undefined, ms: number): void;
}

export class RelevancePanels extends Disposable {
  private readonly panels = new Map<string, PanelEntry>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly actions: PanelActions,
  ) {
    super();
    this.register(
      vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: PanelState | undefined) => {
          if (!state?.uri) {
            panel.dispose(); // nothing to restore: a panel that never showed a result
            return;
          }
          const uri = vscode.Uri.parse(state.uri);
          this.panels.set(uri.toString(), this.adopt(panel));
          await this.actions.restore(uri);
        },
      }),
    );
  }

  show(target: PanelTarget, result: AttributionResult): void {
    const entry = this.entryFor(target.uri);
    entry.target = target;
    entry.result = result;
    entry.panel.title = `Relevance: ${basename(target.uri.fsPath)}`;
    this.post(entry, { type: 'show', result, title: basename(target.uri.fsPath), uri: target.uri.toString() });
    entry.panel.reveal(vscode.ViewColumn.Beside, true);
  }

  busy(uri: vscode.Uri, message: string): void {
    const entry = this.panels.get(uri.toString());
    if (entry) this.post(entry, { type: 'busy', message });
  }

  error(uri: vscode.Uri, message: string): void {
    const entry = this.panels.get(uri.toString());
    if (entry) this.post(entry, { type: 'error', message });
  }

  private entryFor(uri: vscode.Uri): PanelEntry {
    const existing = this.panels.get(uri.toString());
    if (existing) return existing;
    const panel = vscode.window.createWebviewPanel(
      VIEW_TYPE,
      `Relevance: ${basename(uri.fsPath)}`,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      panelWebviewOptions(this.extensionUri),
    );
    const entry = this.adopt(panel);
    this.panels.set(uri.toString(), entry);
    return entry;
  }

  private adopt(panel: vscode.WebviewPanel): PanelEntry {
    const entry: PanelEntry = { panel, ready: false, queued: [] };
    const webview = panel.webview;
    webview.options = panelWebviewOptions(this.extensionUri);
    webview.html = panelHtml(panelAssets(webview, this.extensionUri, 'relevancePanel'));
    const sub = webview.onDidReceiveMessage((m: unknown) => {
      if (isWebviewMessage(m)) void this.onMessage(entry, m);
    });
    panel.onDidDispose(() => {
      sub.dispose();
      for (const [k, v] of this.panels) if (v === entry) this.panels.delete(k);
    });
    return entry;
  }

  private post(entry: PanelEntry, message: HostMessage): void {
    if (entry.ready) void entry.panel.webview.postMessage(message);
    else entry.queued.push(message);
  }

  private async onMessage(entry: PanelEntry, m: WebviewMessage): Promise<void> {
    switch (m.type) {
      case 'ready':
        entry.ready = true;
        for (const q of entry.queued.splice(0)) void entry.panel.webview.postMessage(q);
        return;
      case 'retarget':
        if (entry.target)
          await this.actions.rerun({
            ...entry.target,
            request: { ...entry.target.request, target: undefined, targetId: m.tokenId, continuation: undefined },
          });
        return;
      case 'foil':
        if (entry.target)
          await this.actions.rerun({
            ...entry.target,
            request: { ...entry.target.request, foil: undefined, foilId: m.tokenId ?? undefined },
          });
        return;
      case 'export':
        await this.export(entry, m.format, m.dataUrl);
        return;
      case 'rendered':
        this.actions.rendered?.(entry.target?.uri, m.ms);
        return;
      default:
        return;
    }
  }

  /** Writes the result shown for `uri` into lrpLens.outputFolder (JSON or HTML); returns the file written. */
  async exportFor(uri: vscode.Uri, format: 'json' | 'html'): Promise<string | undefined> {
    const entry = this.panels.get(uri.toString());
    if (!entry?.result) {
      void vscode.window.showErrorMessage('LRP Lens: nothing to export yet. Run Compute Relevance on the prompt first.');
      return undefined;
    }
    return this.export(entry, format);
  }

  /** The prompt file whose panel is active, if any. */
  activeUri(): vscode.Uri | undefined {
    for (const e of this.panels.values()) if (e.panel.active && e.target) return e.target.uri;
    return undefined;
  }

  private async export(entry: PanelEntry, format: ExportFormat, dataUrl?: string): Promise<string | undefined> {
    const folder = this.actions.outputFolder();
    if (!entry.result || !entry.target) return undefined;
    if (!folder) {
      void vscode.window.showErrorMessage('LRP Lens: open a workspace folder to export (files go to lrpLens.outputFolder).');
      return undefined;
    }
    if (format === 'png' && !dataUrl?.startsWith('data:image/png;base64,')) {
      void vscode.window.showErrorMessage('LRP Lens: the panel sent no PNG data to export.');
      return undefined;
    }
    mkdirSync(folder, { recursive: true });
    const stem = `${basename(entry.target.uri.fsPath).replace(/\.[^.]*$/, '')}.relevance`;
    const file = join(folder, `${stem}.${format}`);
    if (format === 'json') writeFileSync(file, JSON.stringify(entry.result, null, 2) + '\n');
    else if (format === 'html') writeFileSync(file, standaloneHtml(entry.result));
    else writeFileSync(file, Buffer.from(dataUrl!.slice(22), 'base64'));
    void vscode.window.showInformationMessage(`LRP Lens: exported ${basename(file)}`, 'Reveal').then((open) => {
      if (open) void vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(file));
    });
    return file;
  }

  override dispose(): void {
    for (const e of this.panels.values()) e.panel.dispose();
    this.panels.clear();
    super.dispose();
  }
}
