/**
 * The pruning and correction panels' host: one webview panel per report, opened after a run or from a report
 * file. The page is the report rendered by reportPanels/html.ts; its buttons come back as actions: apply
 * (Apply Mask), save (keep the files, reveal them), discard (delete the mask and report files), export.
 */
import * as vscode from 'vscode';
import { panelAssets, panelWebviewOptions } from './webviewAssets';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Disposable } from '../dispose';
import { maskPaths } from '../engine/pruning/maskPaths';
import { reportPanelHtml, standaloneReportHtml } from './reportPanels/html';
import { isReportWebviewMessage } from './reportPanels/protocol';
import type { PanelAction } from './reportPanels/protocol';
import { correctionViewModel, pruningViewModel } from './reportPanels/viewModel';
import type { CompareReport, ReportViewModel } from './reportPanels/viewModel';
import type { PruneReport } from '../engine/pruning/pruneRun';
import type { CorrectReport } from '../engine/correction/correctionRun';

export const REPORT_VIEW_TYPE = 'lrpLens.report';

export interface ShownReport {
  report: PruneReport | CorrectReport;
  /** Where the report JSON lies (written beside the mask). */
  reportPath?: string;
  compare?: CompareReport;
}

export interface ReportPanelActions {
  applyMask(mask: string): Thenable<unknown>;
  outputFolder(): string | undefined;
}

export class ReportPanels extends Disposable {
  private readonly panels = new Map<string, vscode.WebviewPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly actions: ReportPanelActions,
  ) {
    super();
  }

  /** Opens (or replaces) the panel for a report; returns the view model shown. */
  show(shown: ShownReport): ReportViewModel {
    const vm =
      shown.report.schema === 'lrp-lens/prune@1'
        ? pruningViewModel(shown.report, { compare: shown.compare })
        : correctionViewModel(shown.report);
    const key = shown.reportPath ?? vm.mask;
    this.panels.get(key)?.dispose();
    const panel = vscode.window.createWebviewPanel(
      REPORT_VIEW_TYPE,
      vm.title,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
      panelWebviewOptions(this.extensionUri),
    );
    const webview = panel.webview;
    webview.html = reportPanelHtml(vm, panelAssets(webview, this.extensionUri, 'reportPanel'));
    const sub = webview.onDidReceiveMessage((m: unknown) => {
      if (isReportWebviewMessage(m)) void this.onAction(panel, shown, vm, m.action);
    });
    panel.onDidDispose(() => {
      sub.dispose();
      if (this.panels.get(key) === panel) this.panels.delete(key);
    });
    this.panels.set(key, panel);
    return vm;
  }

  /** Runs a panel button's action; exported so tests and scripts can drive a panel like a user. */
  async onAction(panel: vscode.WebviewPanel, shown: ShownReport, vm: ReportViewModel, action: PanelAction): Promise<string | undefined> {
    switch (action) {
      case 'apply':
        await this.actions.applyMask(vm.mask);
        return vm.mask;
      case 'save':
        void vscode.window
          .showInformationMessage(`LRP Lens: mask kept at ${vm.mask}`, 'Reveal')
          .then((r) => r && vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(vm.mask)));
        return vm.mask;
      case 'discard':
        discardFiles(shown, vm.mask);
        panel.dispose();
        void vscode.window.showInformationMessage(`LRP Lens: discarded ${basename(vm.mask)}.`);
        return vm.mask;
      default:
        return this.export(shown, vm, action === 'exportJson' ? 'json' : 'html');
    }
  }

  private export(shown: ShownReport, vm: ReportViewModel, format: 'json' | 'html'): string | undefined {
    const folder = this.actions.outputFolder();
    if (!folder) {
      void vscode.window.showErrorMessage('LRP Lens: open a workspace folder to export (files go to lrpLens.outputFolder).');
      return undefined;
    }
    mkdirSync(folder, { recursive: true });
    const file = join(folder, `${basename(vm.mask).replace(/\.safetensors$/, '')}.${vm.kind}.${format}`);
    writeFileSync(file, format === 'json' ? JSON.stringify(shown.report, null, 2) + '\n' : standaloneReportHtml(vm));
    void vscode.window.showInformationMessage(`LRP Lens: exported ${basename(file)}`);
    return file;
  }

  override dispose(): void {
    for (const p of this.panels.values()) p.dispose();
    this.panels.clear();
    super.dispose();
  }
}

/** Deletes the masks a run wrote (safetensors + manifest, every point) and its report. */
export function discardFiles(shown: ShownReport, mask: string): void {
  const masks = shown.report.schema === 'lrp-lens/prune@1' ? shown.report.points.map((p) => p.mask) : [mask];
  for (const m of masks) {
    const paths = maskPaths(m);
    rmSync(paths.safetensors, { force: true });
    rmSync(paths.manifest, { force: true });
  }
  if (shown.reportPath) rmSync(shown.reportPath, { force: true });
}
