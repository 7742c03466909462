/**
 * The pruning and correction panels' host: one webview panel per report, opened after a run or from a report
 * file. The page is the report rendered by reportPanel/html.ts; its buttons come back as actions: apply
 * (Apply Mask), save (keep the files, reveal them), discard (delete the mask and report files), export.
 */
import * as vscode from 'vscode';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { maskPaths } from '../../engine/pruning/maskPaths';
import type { PruneReport } from '../../engine/pruning/pruneRun';
import type { CorrectReport } from '../../engine/correction/correctionRun';
import { PanelHost } from '../panelHost';
import type { OwnMessage, PanelEntry, PanelServices } from '../panelHost';
import { reportPanelHtml, standaloneReportHtml } from './html';
import { isWebviewMessage } from './protocol';
import type { HostMessage, PanelAction, WebviewMessage } from './protocol';
import { correctionViewModel, pruningViewModel } from './viewModel';
import type { CompareReport, ReportViewModel } from './viewModel';

export const REPORT_VIEW_TYPE = 'lrpLens.report';

export interface ShownReport {
  report: PruneReport | CorrectReport;
  /** Where the report JSON lies (written beside the mask). */
  reportPath?: string;
  compare?: CompareReport;
}

interface Entry extends PanelEntry<HostMessage> {
  shown: ShownReport;
  vm: ReportViewModel;
}

export interface ReportPanelActions {
  applyMask(mask: string): Thenable<unknown>;
}

export class ReportPanels extends PanelHost<Entry, HostMessage, WebviewMessage> {
  constructor(
    services: PanelServices,
    private readonly actions: ReportPanelActions,
  ) {
    super(services, { viewType: REPORT_VIEW_TYPE, bundle: 'reportPanel', isWebviewMessage });
  }

  /** Opens (or replaces) the panel for a report; returns the view model shown. */
  show(shown: ShownReport): ReportViewModel {
    const vm =
      shown.report.schema === 'lrp-lens/prune@1'
        ? pruningViewModel(shown.report, { compare: shown.compare })
        : correctionViewModel(shown.report);
    const key = shown.reportPath ?? vm.mask;
    this.entries.get(key)?.panel.dispose();
    const panel = this.createPanel(vm.title, false);
    this.adopt({ key, panel, ready: false, queued: [], shown, vm }, (assets) => reportPanelHtml(vm, assets));
    return vm;
  }

  protected label(entry: Entry): string {
    return entry.vm.title;
  }

  protected onMessage(entry: Entry, m: OwnMessage<WebviewMessage>): Promise<string | undefined> {
    return this.onAction(entry, m.action);
  }

  private async onAction({ panel, shown, vm }: Entry, action: PanelAction): Promise<string | undefined> {
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
    const folder = this.exportFolder();
    if (!folder) return undefined;
    mkdirSync(folder, { recursive: true });
    const file = join(folder, `${basename(vm.mask).replace(/\.safetensors$/, '')}.${vm.kind}.${format}`);
    writeFileSync(file, format === 'json' ? JSON.stringify(shown.report, null, 2) + '\n' : standaloneReportHtml(vm));
    this.announceExport(file);
    return file;
  }
}

/** Deletes the masks a run wrote (safetensors + manifest, every point) and its report. */
function discardFiles(shown: ShownReport, mask: string): void {
  const masks = shown.report.schema === 'lrp-lens/prune@1' ? shown.report.points.map((p) => p.mask) : [mask];
  for (const m of masks) {
    const paths = maskPaths(m);
    rmSync(paths.safetensors, { force: true });
    rmSync(paths.manifest, { force: true });
  }
  if (shown.reportPath) rmSync(shown.reportPath, { force: true });
}
