/** "LRP Lens: Export Relevance" — the active panel's (or the active prompt file's) result as JSON or HTML into lrpLens.outputFolder. */
import * as vscode from 'vscode';
import type { Container } from '../container';

const FORMATS = [
  { label: 'JSON', description: 'the attribution result (schema lrp-lens/attribution@1)', format: 'json' as const },
  { label: 'HTML', description: 'a standalone report', format: 'html' as const },
];

/** Returns the path written (undefined when nothing was exported), so scripts and tests can find the file. */
export function registerExportRelevance(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand(
    'lrpLens.exportRelevance',
    async (format?: 'json' | 'html', uri?: vscode.Uri): Promise<string | undefined> => {
      const source = uri ?? c.panels.activeUri() ?? vscode.window.activeTextEditor?.document.uri;
      if (!source) {
        void vscode.window.showErrorMessage('LRP Lens: nothing to export. Run Compute Relevance on a prompt file first.');
        return undefined;
      }
      const chosen = format ?? (await vscode.window.showQuickPick(FORMATS, { title: 'Export relevance as' }))?.format;
      return chosen ? c.panels.exportFor(source, chosen) : undefined;
    },
  );
}
