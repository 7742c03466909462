/**
 * The relevance panel's host side: one webview panel per prompt file, beside the editor, restored after a
 * reload (the persisted state holds the file and UI selection only; the attribution is recomputed). The
 * front-end renders what it is sent and asks for re-targeting and exports.
 */
import * as vscode from 'vscode';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { AttributionTarget } from '../../attributionTarget';
import type { AttributionResult } from '../../engine/attribution/result';
import { PanelHost } from '../panelHost';
import type { OwnMessage, PanelEntry, PanelServices } from '../panelHost';
import { panelHtml, standaloneHtml } from './html';
import { isWebviewMessage } from './protocol';
import type { ExportFormat, HostMessage, PanelState, WebviewMessage } from './protocol';

export const VIEW_TYPE = 'lrpLens.relevance';

interface Entry extends PanelEntry<HostMessage> {
  target?: AttributionTarget;
  result?: AttributionResult;
}

export interface RelevancePanelActions {
  /** Recompute the attribution for a target (after a re-target or a foil). */
  rerun(target: AttributionTarget): Promise<unknown>;
  /** Recompute a panel restored after a reload, from its prompt file as it is now. */
  restore(uri: vscode.Uri): Promise<void>;
}

export class RelevancePanels extends PanelHost<Entry, HostMessage, WebviewMessage> {
  constructor(
    services: PanelServices,
    private readonly actions: RelevancePanelActions,
  ) {
    super(services, { viewType: VIEW_TYPE, bundle: 'relevancePanel', isWebviewMessage });
    this.restoreWith<PanelState>(async (panel, state) => {
      if (!state?.uri) {
        panel.dispose(); // nothing to restore: a panel that never showed a result
        return;
      }
      const uri = vscode.Uri.parse(state.uri);
      this.track(uri, panel);
      await this.actions.restore(uri);
    });
  }

  show(target: AttributionTarget, result: AttributionResult): void {
    const entry =
      this.entries.get(target.uri.toString()) ?? this.track(target.uri, this.createPanel(`Relevance: ${basename(target.uri.fsPath)}`));
    entry.target = target;
    entry.result = result;
    entry.panel.title = `Relevance: ${basename(target.uri.fsPath)}`;
    this.post(entry, { type: 'show', result, title: basename(target.uri.fsPath), uri: target.uri.toString() });
    entry.panel.reveal(vscode.ViewColumn.Beside, true);
  }

  busy(uri: vscode.Uri, message: string): void {
    const entry = this.entries.get(uri.toString());
    if (entry) this.post(entry, { type: 'busy', message });
  }

  error(uri: vscode.Uri, message: string): void {
    const entry = this.entries.get(uri.toString());
    if (entry) this.post(entry, { type: 'error', message });
  }

  /** Writes the result shown for `uri` into lrpLens.outputFolder (JSON or HTML); returns the file written. */
  async exportFor(uri: vscode.Uri, format: 'json' | 'html'): Promise<string | undefined> {
    const entry = this.entries.get(uri.toString());
    if (!entry?.result) {
      void vscode.window.showErrorMessage('LRP Lens: nothing to export yet. Run Compute Relevance on the prompt first.');
      return undefined;
    }
    return this.export(entry, format);
  }

  /** The prompt file whose panel is active, if any. */
  activeUri(): vscode.Uri | undefined {
    for (const e of this.entries.values()) if (e.panel.active && e.target) return e.target.uri;
    return undefined;
  }

  private track(uri: vscode.Uri, panel: vscode.WebviewPanel): Entry {
    return this.adopt({ key: uri.toString(), panel, ready: false, queued: [] }, panelHtml);
  }

  protected label(entry: Entry): string {
    return entry.target ? basename(entry.target.uri.fsPath) : 'panel';
  }

  protected async onMessage(entry: Entry, m: OwnMessage<WebviewMessage>): Promise<unknown> {
    switch (m.type) {
      case 'retarget':
        if (!entry.target) return undefined;
        return this.actions.rerun({
          ...entry.target,
          request: { ...entry.target.request, target: undefined, targetId: m.tokenId, continuation: undefined },
        });
      case 'foil':
        if (!entry.target) return undefined;
        return this.actions.rerun({
          ...entry.target,
          request: { ...entry.target.request, foil: undefined, foilId: m.tokenId ?? undefined },
        });
      case 'export':
        return this.export(entry, m.format, m.dataUrl);
    }
  }

  private async export(entry: Entry, format: ExportFormat, dataUrl?: string): Promise<string | undefined> {
    if (!entry.result || !entry.target) return undefined;
    const folder = this.exportFolder();
    if (!folder) return undefined;
    const png = format === 'png' ? this.pngBytes(dataUrl) : undefined;
    if (format === 'png' && !png) return undefined;
    mkdirSync(folder, { recursive: true });
    const stem = `${basename(entry.target.uri.fsPath).replace(/\.[^.]*$/, '')}.relevance`;
    const file = join(folder, `${stem}.${format}`);
    if (format === 'json') writeFileSync(file, JSON.stringify(entry.result, null, 2) + '\n');
    else if (format === 'html') writeFileSync(file, standaloneHtml(entry.result));
    else writeFileSync(file, png!);
    this.announceExport(file);
    return file;
  }
}
