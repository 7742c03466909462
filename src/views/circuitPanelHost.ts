/**
 * The circuit panel's host side: one webview panel per circuit.json, restored after a reload by a serializer
 * (the persisted state holds the file path and UI state; the record is read from disk again).
 */
import * as vscode from 'vscode';
import { panelAssets, panelWebviewOptions } from './webviewAssets';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Disposable } from '../dispose';
import type { CircuitRecord } from '../engine/circuits/discover';
import { circuitPanelHtml } from './circuitPanel/html';
import { isWebviewMessage } from './circuitPanel/protocol';
import type { CircuitPanelState, ExportFormat, HostMessage, WebviewMessage } from './circuitPanel/protocol';
import { reportSvg } from './circuitPanel/svg';
import { buildCircuitViewModel, DEFAULT_TOP_K } from './circuitPanel/viewModel';
import { isCircuitJson } from './circuitsTree/treeModel';

export const CIRCUIT_VIEW_TYPE = 'lrpLens.circuit';

interface Entry {
  panel: vscode.WebviewPanel;
  file: string;
  record?: CircuitRecord;
  ready: boolean;
  queued: HostMessage[];
}

export interface CircuitPanelActions {
  /** Workspace folder for exports (lrpLens.outputFolder). */
  outputFolder(): string | undefined;
  /** Apply a mask manifest (lrpLens.applyMask). */
  applyMask(manifest: string): Promise<void>;
  log(message: string): void;
}

/** Reads and checks a circuit.json; the error says what the file should be. */
export function readCircuitRecord(file: string): CircuitRecord {
  let content: unknown;
  try {
    content = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${basename(file)} could not be read as JSON (${(err as Error).message}). Run Discover Circuit again to rewrite it.`);
  }
  if (!isCircuitJson(content))
    throw new Error(
      `${file} is not a circuit file (schema lrp-lens/circuit@1). Open a circuit.json written by Discover Circuit or \`lrp-lens circuit\`.`,
    );
  return content as unknown as CircuitRecord;
}

export class CircuitPanels extends Disposable {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly actions: CircuitPanelActions,
  ) {
    super();
    this.register(
      vscode.window.registerWebviewPanelSerializer(CIRCUIT_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: CircuitPanelState | undefined) => {
          const file = state?.uri ? vscode.Uri.parse(state.uri).fsPath : undefined;
          if (!file || !existsSync(file)) {
            panel.dispose(); // the circuit was deleted (or never shown)
            return;
          }
          const entry = this.adopt(panel, file);
          this.entries.set(file, entry);
          this.load(entry);
        },
      }),
    );
  }

  /** Opens (or reveals) the panel of a circuit.json; returns the record shown. */
  show(file: string): CircuitRecord | undefined {
    const existing = this.entries.get(file);
    const entry = existing ?? this.create(file);
    this.load(entry);
    entry.panel.reveal(vscode.ViewColumn.Beside, true);
    return entry.record;
  }

  /** Panels open, by circuit.json path (tests and the tree read it). */
  openFiles(): string[] {
    return [...this.entries.keys()];
  }

  /** Closes the panel of a circuit being deleted. */
  close(file: string): void {
    this.entries.get(file)?.panel.dispose();
  }

  private create(file: string): Entry {
    const panel = vscode.window.createWebviewPanel(
      CIRCUIT_VIEW_TYPE,
      titleOf(file),
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      panelWebviewOptions(this.extensionUri),
    );
    const entry = this.adopt(panel, file);
    this.entries.set(file, entry);
    return entry;
  }

  private load(entry: Entry): void {
    try {
      entry.record = readCircuitRecord(entry.file);
      entry.panel.title = `Circuit: ${entry.record.task.name}`;
      this.post(entry, {
        type: 'show',
        record: entry.record,
        title: `Circuit: ${entry.record.task.name}`,
        uri: vscode.Uri.file(entry.file).toString(),
      });
    } catch (err) {
      this.post(entry, { type: 'error', message: (err as Error).message });
    }
  }

  private adopt(panel: vscode.WebviewPanel, file: string): Entry {
    const entry: Entry = { panel, file, ready: false, queued: [] };
    const webview = panel.webview;
    webview.options = panelWebviewOptions(this.extensionUri);
    webview.html = circuitPanelHtml(panelAssets(webview, this.extensionUri, 'circuitPanel'));
    const sub = webview.onDidReceiveMessage((m: unknown) => {
      if (isWebviewMessage(m)) void this.onMessage(entry, m);
    });
    panel.onDidDispose(() => {
      sub.dispose();
      if (this.entries.get(entry.file) === entry) this.entries.delete(entry.file);
    });
    return entry;
  }

  private post(entry: Entry, message: HostMessage): void {
    if (entry.ready) void entry.panel.webview.postMessage(message);
    else entry.queued.push(message);
  }

  private async onMessage(entry: Entry, m: WebviewMessage): Promise<void> {
    if (m.type === 'ready') {
      entry.ready = true;
      for (const q of entry.queued.splice(0)) void entry.panel.webview.postMessage(q);
    } else if (m.type === 'export') {
      await this.exportFor(entry.file, m.format, m.dataUrl);
    } else if (m.type === 'apply') {
      await this.actions.applyMask(join(dirname(entry.file), entry.record?.files?.manifest ?? 'mask.json'));
    } else if (m.type === 'rendered') {
      this.actions.log(`${titleOf(entry.file)}: panel rendered in ${m.ms.toFixed(1)} ms`);
    }
  }

  /** Writes the circuit as SVG, PNG (drawn by the webview) or JSON into lrpLens.outputFolder; returns the file. */
  async exportFor(file: string, format: ExportFormat, dataUrl?: string): Promise<string | undefined> {
    const folder = this.actions.outputFolder();
    if (!folder) {
      void vscode.window.showErrorMessage('LRP Lens: open a workspace folder to export (files go to lrpLens.outputFolder).');
      return undefined;
    }
    if (format === 'png' && !dataUrl?.startsWith('data:image/png;base64,')) {
      void vscode.window.showErrorMessage('LRP Lens: the panel sent no PNG data to export.');
      return undefined;
    }
    const record = readCircuitRecord(file);
    const out = join(folder, 'exports', `${basename(dirname(file))}.circuit.${format}`);
    mkdirSync(dirname(out), { recursive: true });
    if (format === 'json') writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
    else if (format === 'svg') writeFileSync(out, reportSvg(buildCircuitViewModel(record, { topK: DEFAULT_TOP_K }), { theme: 'light' }));
    else writeFileSync(out, Buffer.from(dataUrl!.slice(22), 'base64'));
    void vscode.window
      .showInformationMessage(`LRP Lens: exported ${basename(out)}`, 'Reveal')
      .then((pick) => pick && vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(out)));
    return out;
  }

  override dispose(): void {
    for (const e of this.entries.values()) e.panel.dispose();
    this.entries.clear();
    super.dispose();
  }
}

function titleOf(file: string): string {
  return `Circuit: ${basename(dirname(file))}`;
}
