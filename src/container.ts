/**
 * Everything the extension holds, built once in activate(): the engine client (a separate process), the log,
 * the views, and the one attribution flow that every command goes through (progress with a Cancel that
 * really stops the engine, errors with the actions that fix them).
 */
import * as vscode from 'vscode';
import { join } from 'node:path';
import { Disposable } from './dispose';
import { EngineClient, EngineError } from './worker/client';
import { readSettings } from './settings';
import { StatusBar } from './views/statusBar';
import { EditorHeatmap } from './views/editorHeatmap';
import { RelevancePanels } from './views/relevancePanelHost';
import type { PanelTarget } from './views/relevancePanelHost';
import { targetFor } from './commands/computeRelevance';

export class Container extends Disposable {
  readonly log = this.register(vscode.window.createOutputChannel('LRP Lens', { log: true }));
  readonly status = this.register(new StatusBar());
  readonly heatmap = this.register(new EditorHeatmap());
  readonly client: EngineClient;
  readonly panels: RelevancePanels;

  constructor(readonly context: vscode.ExtensionContext) {
    super();
    this.client = new EngineClient({
      workerPath: join(context.extensionPath, 'dist', 'worker.js'),
      log: (line) => this.log.info(line),
    });
    this.register({ dispose: () => this.client.dispose() });
    this.panels = this.register(new RelevancePanels(context.extensionUri, {
      rerun: (target) => this.attribute(target),
      restore: async (uri) => {
        try {
          await this.attribute(targetFor(await vscode.workspace.openTextDocument(uri)));
        } catch (err) {
          this.log.warn(`could not restore the relevance panel for ${uri.fsPath}: ${(err as Error).message}`);
        }
      },
      outputFolder: () => {
        const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        return root ? join(root, readSettings().outputFolder) : undefined;
      },
    }));
    this.status.update(readSettings());
    this.register(vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('lrpLens')) this.status.update(readSettings());
    }));
  }

  /** Runs one attribution with a cancellable progress notification, then shows it in the panel and editor. */
  async attribute(target: PanelTarget): Promise<void> {
    const settings = readSettings();
    const doc = await vscode.workspace.openTextDocument(target.uri);
    this.status.update(settings, { busy: true });
    this.panels.busy(target.uri, 'Computing relevance…');
    const t0 = Date.now();
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'LRP Lens', cancellable: true },
        (progress, token) => {
          const abort = new AbortController();
          token.onCancellationRequested(() => abort.abort());
          return this.client.request(
            'attribute',
            { model: settings.model, rule: settings.rule, device: settings.device, maxTokens: settings.maxTokens, request: target.request },
            { signal: abort.signal, onProgress: (p) => progress.report({ message: p.message }) },
          );
        },
      );
      this.panels.show(target, result);
      this.heatmap.paint(doc, result, target.promptOffset);
      this.status.update(settings, { device: result.model.device, lastRunMs: Date.now() - t0 });
      this.log.info(`${doc.fileName}: target ${JSON.stringify(result.target.text)}, ${result.tokens.length} tokens, run ${result.timing.runMs.toFixed(1)} ms`);
      for (const w of result.warnings) this.log.warn(w);
    } catch (err) {
      this.status.update(settings);
      await this.reportError(target.uri, err);
    }
  }

  private async reportError(uri: vscode.Uri, err: unknown): Promise<void> {
    const e = err instanceof EngineError ? err : new EngineError('internal', (err as Error)?.message ?? String(err));
    this.log.error(`${e.reason}: ${e.message}`);
    this.panels.error(uri, e.message);
    if (e.reason === 'cancelled') {
      void vscode.window.showInformationMessage('LRP Lens: relevance computation cancelled.');
      return;
    }
    const actions = e.reason === 'engine-exited' ? ['Restart Engine', 'Show Log'] : /model|causal/.test(e.reason) ? ['Select Model…', 'Show Log'] : ['Show Log'];
    const pick = await vscode.window.showErrorMessage(`LRP Lens: ${e.message}`, ...actions);
    if (pick === 'Restart Engine') await vscode.commands.executeCommand('lrpLens.restartEngine');
    else if (pick === 'Select Model…') await vscode.commands.executeCommand('lrpLens.selectModel');
    else if (pick === 'Show Log') this.log.show();
  }
}
