/**
 * Everything the extension holds, built once in activate(): the engine client (a separate process), the log,
 * the views, and the one attribution flow that every command goes through (progress with a Cancel that
 * really stops the engine, errors with the actions that fix them).
 */
import * as vscode from 'vscode';
import { basename, join } from 'node:path';
import { Disposable } from './dispose';
import { EngineClient, EngineError } from './worker/client';
import type { ExitInfo } from './worker/client';
import { readSettings } from './settings';
import type { Settings } from './settings';
import type { AttributionResult } from './engine/attribution/result';
import { StatusBar } from './views/statusBar';
import { EditorHeatmap } from './views/editorHeatmap';
import { RelevancePanels } from './views/relevancePanelHost';
import type { PanelTarget } from './views/relevancePanelHost';
import { targetFor } from './commands/computeRelevance';
import { ReportPanels } from './views/reportPanelHost';
import type { Method, Methods } from './worker/protocol';
import type { PrunedModel } from './engine/pruning/applyMask';

export class Container extends Disposable {
  readonly log = this.register(vscode.window.createOutputChannel('LRP Lens', { log: true }));
  readonly status = this.register(new StatusBar());
  readonly heatmap = this.register(new EditorHeatmap());
  readonly client: EngineClient;
  readonly panels: RelevancePanels;
  readonly reports: ReportPanels;
  /** The mask applied with Apply Mask: attributions run on its pruned model until Clear Mask. */
  appliedMask?: PrunedModel;
  /** The Hugging Face token from SecretStorage (Set Hugging Face Token…), given to the engine as HF_TOKEN. */
  hubToken?: string;

  constructor(readonly context: vscode.ExtensionContext) {
    super();
    this.client = new EngineClient({
      workerPath: join(context.extensionPath, 'dist', 'worker.js'),
      env: () => (this.hubToken ? { ...process.env, HF_TOKEN: this.hubToken } : process.env),
      log: (line) => this.log.info(line),
    });
    this.register({ dispose: () => this.client.dispose() });
    this.register({ dispose: this.client.onDidExit((info) => this.onEngineExit(info)) });
    this.panels = this.register(
      new RelevancePanels(context.extensionUri, {
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
        rendered: (uri, ms) => this.log.info(`${uri ? basename(uri.fsPath) : 'panel'}: panel rendered in ${ms.toFixed(1)} ms`),
      }),
    );
    this.reports = this.register(
      new ReportPanels(context.extensionUri, {
        applyMask: (mask) => vscode.commands.executeCommand('lrpLens.applyMask', vscode.Uri.file(mask)),
        outputFolder: () => this.outputFolder(),
      }),
    );
    this.status.update(readSettings());
    this.register(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('lrpLens')) this.status.update(readSettings());
      }),
    );
  }

  /**
   * Runs one attribution with a cancellable progress notification, then shows it in the panel and editor.
   * Resolves with the outcome (never rejects), which the commands return to their callers: the
   * extension-host tests read it through `executeCommand`, and so can scripts.
   */
  async attribute(target: PanelTarget): Promise<AttributionOutcome> {
    const settings = readSettings();
    this.status.update(settings, { busy: true });
    this.panels.busy(target.uri, 'Computing relevance…');
    const t0 = Date.now();
    try {
      const doc = await vscode.workspace.openTextDocument(target.uri);
      const result = await this.runEngine(target, settings);
      const engineMs = Date.now() - t0;
      this.panels.show(target, result);
      this.heatmap.paint(doc, result, target.promptOffset);
      this.status.update(settings, { device: result.model.device, lastRunMs: engineMs });
      this.log.info(
        `${basename(doc.fileName)}: target ${JSON.stringify(result.target.text)}, ${result.tokens.length} tokens, engine ${engineMs} ms (run ${result.timing.runMs.toFixed(1)} ms)`,
      );
      for (const w of result.warnings) this.log.warn(w);
      return { result };
    } catch (err) {
      this.status.update(settings);
      return this.fail(target.uri, err);
    }
  }

  private runEngine(target: PanelTarget, settings: Settings): Thenable<AttributionResult> {
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'LRP Lens', cancellable: true },
      (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        return this.client.request(
          'attribute',
          {
            model: settings.model,
            rule: settings.rule,
            device: settings.device,
            dtype: settings.dtype,
            maxTokens: settings.maxTokens,
            request: target.request,
            mask: this.appliedMask?.mask,
          },
          { signal: abort.signal, onProgress: (p) => progress.report({ message: p.message }) },
        );
      },
    );
  }

  /** lrpLens.outputFolder inside the first workspace folder; undefined without a workspace. */
  outputFolder(): string | undefined {
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return root ? join(root, readSettings().outputFolder) : undefined;
  }

  /**
   * Runs a long engine request (prune, correct, applyMask) under a cancellable progress notification: Cancel
   * kills the engine process, so the work really stops.
   */
  runTask<M extends Method>(method: M, params: Methods[M]['params'], title: string): Thenable<Methods[M]['result']> {
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `LRP Lens: ${title}`, cancellable: true },
      (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        let last = 0;
        return this.client.request(method, params, {
          signal: abort.signal,
          onProgress: (p) => {
            const pct = p.fraction !== undefined ? Math.round(p.fraction * 100) : undefined;
            // withProgress adds increments; report the stage's fraction as a step from the last one.
            const increment = pct !== undefined ? pct - last : undefined;
            if (pct !== undefined) last = pct;
            progress.report({ message: p.message, increment: increment !== undefined && increment > 0 ? increment : undefined });
          },
        });
      },
    );
  }

  /** Reports a failed task (not an attribution) like fail() does, without a panel. */
  failTask(what: string, err: unknown): { error: { reason: string; message: string } } {
    const e = err instanceof EngineError ? err : new EngineError('internal', (err as Error)?.message ?? String(err));
    this.log.error(`${what}: ${e.reason}: ${e.message}`);
    if (e.reason === 'cancelled') void vscode.window.showInformationMessage(`LRP Lens: ${what} cancelled.`);
    else void this.offerFix(`LRP Lens: ${e.message}`, fixActions(e.reason));
    return { error: { reason: e.reason, message: e.message } };
  }

  /**
   * Logs the error, shows it in the panel and as a notification whose buttons fix it (without waiting for the
   * user to answer), and returns it as the outcome.
   */
  fail(uri: vscode.Uri | undefined, err: unknown): AttributionOutcome {
    const e = err instanceof EngineError ? err : new EngineError('internal', (err as Error)?.message ?? String(err));
    const where = uri && !e.message.includes(basename(uri.fsPath)) ? `${basename(uri.fsPath)}: ` : '';
    this.log.error(`${where}${e.reason}: ${e.message}`);
    if (uri) this.panels.error(uri, e.message);
    if (e.reason === 'cancelled') void vscode.window.showInformationMessage('LRP Lens: relevance computation cancelled.');
    else void this.offerFix(`LRP Lens: ${where}${e.message}`, fixActions(e.reason));
    return { error: { reason: e.reason, message: e.message } };
  }

  /** A crash with a request waiting is reported by that request; an idle crash gets its own notification. */
  private onEngineExit(info: ExitInfo): void {
    if (!info.unexpected || info.pending > 0) return;
    const how = info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
    const e = new EngineError(
      'engine-exited',
      `The LRP Lens engine stopped unexpectedly (${how}). Restart it; the next computation would also start a fresh one.`,
    );
    void this.fail(undefined, e);
  }

  private async offerFix(message: string, actions: FixAction[]): Promise<void> {
    const pick = await vscode.window.showErrorMessage(message, ...actions);
    if (pick === 'Restart Engine') await vscode.commands.executeCommand('lrpLens.restartEngine');
    else if (pick === 'Select Model…') await vscode.commands.executeCommand('lrpLens.selectModel');
    else if (pick === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', 'lrpLens.maxTokens');
    else if (pick === 'Show Log') this.log.show();
  }
}

/** What an attribution command returns: the result, or the error the user was shown. */
export type AttributionOutcome = { result: AttributionResult } | { error: { reason: string; message: string } };

type FixAction = 'Restart Engine' | 'Select Model…' | 'Open Settings' | 'Show Log';

function fixActions(reason: string): FixAction[] {
  if (reason === 'engine-exited') return ['Restart Engine', 'Show Log'];
  if (reason === 'prompt-too-long') return ['Open Settings', 'Show Log'];
  if (/model|causal/.test(reason)) return ['Select Model…', 'Show Log'];
  return ['Show Log'];
}
