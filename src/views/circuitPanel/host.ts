/**
 * The circuit panel's host side: one webview panel per circuit.json, restored after a reload (the persisted
 * state holds the file path and UI state; the record is read from disk again).
 */
import * as vscode from 'vscode';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { CircuitRecord } from '../../engine/circuits/discover';
import { PanelHost } from '../panelHost';
import type { OwnMessage, PanelEntry, PanelServices } from '../panelHost';
import { isCircuitJson } from '../circuitsTree/treeModel';
import { circuitPanelHtml } from './html';
import { isWebviewMessage } from './protocol';
import type { CircuitPanelState, ExportFormat, HostMessage, WebviewMessage } from './protocol';
import { reportSvg } from './svg';
import { buildCircuitViewModel, DEFAULT_TOP_K } from './viewModel';

export const CIRCUIT_VIEW_TYPE = 'lrpLens.circuit';

/** `key` is the circuit.json shown. */
interface Entry extends PanelEntry<HostMessage> {
  record?: CircuitRecord;
}

export interface CircuitPanelActions {
  /** Apply a mask manifest (lrpLens.applyMask). */
  applyMask(manifest: string): Thenable<unknown>;
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

export class CircuitPanels extends PanelHost<Entry, HostMessage, WebviewMessage> {
  constructor(
    services: PanelServices,
    private readonly actions: CircuitPanelActions,
  ) {
    super(services, { viewType: CIRCUIT_VIEW_TYPE, bundle: 'circuitPanel', isWebviewMessage });
    this.restoreWith<CircuitPanelState>(async (panel, state) => {
      const file = state?.uri ? vscode.Uri.parse(state.uri).fsPath : undefined;
      if (!file || !existsSync(file)) {
        panel.dispose(); // the circuit was deleted (or never shown)
        return;
      }
      this.load(this.track(file, panel));
    });
  }

  /** Opens (or reveals) the panel of a circuit.json; returns the record shown. */
  show(file: string): CircuitRecord | undefined {
    const entry = this.entries.get(file) ?? this.track(file, this.createPanel(titleOf(file)));
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

  private track(file: string, panel: vscode.WebviewPanel): Entry {
    return this.adopt({ key: file, panel, ready: false, queued: [] }, circuitPanelHtml);
  }

  private load(entry: Entry): void {
    try {
      entry.record = readCircuitRecord(entry.key);
      entry.panel.title = `Circuit: ${entry.record.task.name}`;
      this.post(entry, {
        type: 'show',
        record: entry.record,
        title: `Circuit: ${entry.record.task.name}`,
        uri: vscode.Uri.file(entry.key).toString(),
      });
    } catch (err) {
      this.post(entry, { type: 'error', message: (err as Error).message });
    }
  }

  protected label(entry: Entry): string {
    return titleOf(entry.key);
  }

  protected async onMessage(entry: Entry, m: OwnMessage<WebviewMessage>): Promise<unknown> {
    if (m.type === 'export') return this.exportFor(entry.key, m.format, m.dataUrl);
    return this.actions.applyMask(join(dirname(entry.key), entry.record?.files?.manifest ?? 'mask.json'));
  }

  /** Writes the circuit as SVG, PNG (drawn by the webview) or JSON into lrpLens.outputFolder; returns the file. */
  async exportFor(file: string, format: ExportFormat, dataUrl?: string): Promise<string | undefined> {
    const folder = this.exportFolder();
    if (!folder) return undefined;
    const png = format === 'png' ? this.pngBytes(dataUrl) : undefined;
    if (format === 'png' && !png) return undefined;
    const record = readCircuitRecord(file);
    const out = join(folder, 'exports', `${basename(dirname(file))}.circuit.${format}`);
    mkdirSync(dirname(out), { recursive: true });
    if (format === 'json') writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
    else if (format === 'svg') writeFileSync(out, reportSvg(buildCircuitViewModel(record, { topK: DEFAULT_TOP_K }), { theme: 'light' }));
    else writeFileSync(out, png!);
    this.announceExport(out);
    return out;
  }
}

function titleOf(file: string): string {
  return `Circuit: ${basename(dirname(file))}`;
}
