/**
 * Everything the extension holds, built once in activate(): the engine client (a separate process), the log,
 * the status bar, the editor heatmap, the panels and the Circuits view. It owns the three things every command
 * shares: the one way to run the engine (withEngineProgress: progress with a Cancel that really stops it), the
 * one way a failure reaches the user (fail: logged, shown with the actions that fix it, returned as the
 * command's outcome), and the mask that attributions run on.
 */
import * as vscode from 'vscode';
import { basename, join } from 'node:path';
import { Disposable } from './dispose';
import { EngineClient, EngineError } from './worker/client';
import type { ExitInfo } from './worker/client';
import type { Method, Methods, ProgressNotification } from './worker/protocol';
import { InputError } from './inputError';
import { fixActions } from './fixActions';
import type { FixAction } from './fixActions';
import { LrpLensError } from './engine/errors';
import type { AttributionResult } from './engine/attribution/result';
import type { PrunedModel } from './engine/pruning/applyMask';
import { readSettings } from './settings';
import { targetFor } from './attributionTarget';
import type { AttributionTarget } from './attributionTarget';
import { StatusBar } from './views/statusBar';
import { EditorHeatmap } from './views/editorHeatmap';
import { CircuitsView } from './views/circuitsView';
import type { PanelServices } from './views/panelHost';
import { RelevancePanels } from './views/relevancePanel/host';
import { CircuitPanels } from './views/circuitPanel/host';
import { ReportPanels } from './views/reportPanel/host';

/** A failure as a command returns it (to scripts and the extension-host tests, through executeCommand), with the buttons offered. */
export type Failure = { error: { reason: string; message: string; actions?: FixAction[] } };

/** What an attribution command returns: the result, or the error the user was shown. */
export type AttributionOutcome = { result: AttributionResult } | Failure;

export interface EngineProgressOptions {
  /** The progress title ("LRP Lens: pruning with lrp at 50%"). */
  title: string;
  /** 'window': a spinner in the status bar, without Cancel, for short requests. Default: a notification with Cancel. */
  location?: 'notification' | 'window';
  /** How far the whole request is, in percent, after a progress notification; undefined (the default): the bar does not move. */
  percent?: (p: ProgressNotification['params']) => number | undefined;
}

/** Progress through a request whose stages report fractions of the whole. */
export const byFraction = (p: ProgressNotification['params']): number | undefined =>
  p.fraction !== undefined ? Math.round(p.fraction * 100) : undefined;

export interface FailureContext {
  /** What was being done, for the log and "LRP Lens: … cancelled." ("relevance computation", "pruning"). */
  what: string;
  /** The prompt file attributed: its panel shows the error, and the message names the file. */
  prompt?: vscode.Uri;
  /** A file the message may point into ("f.task.jsonl:7: …"): the notification then offers Go to Line. */
  source?: vscode.Uri;
  /** Runs the failed request again (Run Block-wise, Run Anyway: past the memory estimate). */
  rerun?: (o: RerunOptions) => Promise<unknown>;
}

export interface RerunOptions {
  /** Run past the memory estimate. */
  force?: boolean;
}

/** The line number in a message like "f.task.jsonl:7: …". */
export function lineOf(message: string, file: string): number | undefined {
  const m = new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+)`).exec(message);
  return m ? Number(m[1]) : undefined;
}

const APPLIED_MASK_KEY = 'lrpLens.appliedMask';

export class Container extends Disposable {
  readonly log = this.register(vscode.window.createOutputChannel('LRP Lens', { log: true }));
  readonly status = this.register(new StatusBar());
  readonly heatmap = this.register(new EditorHeatmap());
  readonly circuitsView = this.register(new CircuitsView());
  readonly client: EngineClient;
  readonly panels: RelevancePanels;
  readonly circuitPanels: CircuitPanels;
  readonly reports: ReportPanels;
  private applied?: PrunedModel;
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
    const services: PanelServices = {
      extensionUri: context.extensionUri,
      outputFolder: () => this.outputFolder(),
      log: (line) => this.log.info(line),
    };
    this.panels = this.register(
      new RelevancePanels(services, {
        rerun: (target) => this.attribute(target),
        restore: async (uri) => {
          try {
            await this.attribute(targetFor(await vscode.workspace.openTextDocument(uri)));
          } catch (err) {
            this.log.warn(`could not restore the relevance panel for ${uri.fsPath}: ${(err as Error).message}`);
          }
        },
      }),
    );
    this.circuitPanels = this.register(new CircuitPanels(services, { applyMask: (manifest) => this.applyMaskFile(manifest) }));
    this.reports = this.register(new ReportPanels(services, { applyMask: (mask) => this.applyMaskFile(mask) }));
    this.status.update(readSettings());
    this.register(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('lrpLens')) this.status.update(readSettings());
      }),
    );
  }

  /** lrpLens.outputFolder inside the workspace folder of `within` (default: the first); undefined without a workspace. */
  outputFolder(within?: vscode.Uri): string | undefined {
    const root = (within && vscode.workspace.getWorkspaceFolder(within)?.uri.fsPath) ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return root ? join(root, readSettings().outputFolder) : undefined;
  }

  /**
   * Runs one engine request under a progress indicator. In a notification, Cancel aborts the request, which
   * kills the engine process, so the work really stops.
   */
  withEngineProgress<M extends Method>(method: M, params: Methods[M]['params'], o: EngineProgressOptions): Thenable<Methods[M]['result']> {
    if (o.location === 'window')
      return vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: o.title }, () =>
        this.client.request(method, params),
      );
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: o.title, cancellable: true },
      (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        let shown = 0;
        return this.client.request(method, params, {
          signal: abort.signal,
          onProgress: (p) => {
            // withProgress adds increments: report the step from what the bar shows already.
            const pct = o.percent?.(p);
            const increment = pct !== undefined && pct > shown ? pct - shown : undefined;
            if (pct !== undefined) shown = Math.max(shown, pct);
            progress.report({ message: p.message, increment });
          },
        });
      },
    );
  }

  /**
   * Runs one attribution with a cancellable progress notification, then shows it in the panel and editor.
   * Resolves with the outcome (never rejects), which the commands return to their callers.
   */
  async attribute(target: AttributionTarget, rerun: RerunOptions = {}): Promise<AttributionOutcome> {
    const settings = readSettings();
    this.status.update(settings, { busy: true });
    this.panels.busy(target.uri, 'Computing relevance…');
    const t0 = Date.now();
    try {
      const doc = await vscode.workspace.openTextDocument(target.uri);
      const result = await this.withEngineProgress(
        'attribute',
        {
          model: settings.model,
          rule: settings.rule,
          device: settings.device,
          dtype: settings.dtype,
          execution: settings.execution,
          memoryLimit: settings.memoryLimit,
          force: rerun.force,
          maxTokens: settings.maxTokens,
          request: target.request,
          mask: this.applied?.mask,
        },
        { title: 'LRP Lens' },
      );
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
      return this.fail(err, { what: 'relevance computation', prompt: target.uri, rerun: (o) => this.attribute(target, o) });
    }
  }

  /**
   * The one way a failure reaches the user: logged; shown in the prompt's panel; a notification whose buttons
   * fix it (not waited for), or a plain note for a cancel; and returned as the command's outcome.
   */
  fail(err: unknown, at: FailureContext): Failure {
    const { reason, message } = reasonOf(err);
    let actions: FixAction[] = [];
    const where = at.prompt && !message.includes(basename(at.prompt.fsPath)) ? `${basename(at.prompt.fsPath)}: ` : '';
    this.log.error(`${at.what}: ${where}${reason}: ${message}`);
    if (at.prompt) this.panels.error(at.prompt, message);
    if (reason === 'cancelled') {
      void vscode.window.showInformationMessage(`LRP Lens: ${at.what} cancelled.`);
    } else {
      const line = at.source ? lineOf(message, basename(at.source.fsPath)) : undefined;
      const fixes = fixActions(reason, { execution: readSettings().execution, canRerun: !!at.rerun });
      actions = [...(line ? (['Go to Line'] as const) : []), ...fixes];
      void vscode.window
        .showErrorMessage(`LRP Lens: ${where}${message}`, ...actions)
        .then((pick) => pick && this.runFix(pick, at, at.source && line ? { file: at.source, line } : undefined));
    }
    return { error: { reason, message, actions } };
  }

  private async runFix(action: FixAction, failed: FailureContext, at?: { file: vscode.Uri; line: number }): Promise<void> {
    switch (action) {
      case 'Run Block-wise':
        await vscode.workspace
          .getConfiguration('lrpLens')
          .update(
            'execution',
            'blockwise',
            vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global,
          );
        await failed.rerun?.({});
        return;
      case 'Set Memory Limit…':
        await vscode.commands.executeCommand('workbench.action.openSettings', 'lrpLens.memoryLimit');
        return;
      case 'Run Anyway':
        await failed.rerun?.({ force: true });
        return;
      case 'Go to Line':
        if (at) await vscode.window.showTextDocument(at.file, { selection: new vscode.Range(at.line - 1, 0, at.line - 1, 0) });
        return;
      case 'Restart Engine':
        await vscode.commands.executeCommand('lrpLens.restartEngine');
        return;
      case 'Select Model…':
        await vscode.commands.executeCommand('lrpLens.selectModel');
        return;
      case 'Open Settings':
        await vscode.commands.executeCommand('workbench.action.openSettings', 'lrpLens.maxTokens');
        return;
      case 'Show Log':
        this.log.show();
        return;
    }
  }

  /** A crash with a request waiting is reported by that request; an idle crash gets its own notification. */
  private onEngineExit(info: ExitInfo): void {
    if (!info.unexpected || info.pending > 0) return;
    const how = info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
    const e = new EngineError(
      'engine-exited',
      `The LRP Lens engine stopped unexpectedly (${how}). Restart it; the next computation would also start a fresh one.`,
    );
    void this.fail(e, { what: 'engine' });
  }

  /** The mask applied with Apply Mask: attributions run on its pruned model until Clear Mask. */
  get appliedMask(): PrunedModel | undefined {
    return this.applied;
  }

  /** Sets (or, with undefined, clears) the applied mask, shows it in the status bar, and keeps it for the next session. */
  async setAppliedMask(pruned: PrunedModel | undefined): Promise<void> {
    this.applied = pruned;
    this.status.setMask(pruned && { name: basename(pruned.mask, '.safetensors'), sparsity: pruned.sparsity });
    await this.context.workspaceState.update(APPLIED_MASK_KEY, pruned?.mask);
  }

  /** Re-applies the mask of the last session quietly (the pruned model is cached); a failure only logs. */
  async restoreAppliedMask(): Promise<void> {
    const mask = this.context.workspaceState.get<string>(APPLIED_MASK_KEY);
    if (!mask) return;
    try {
      await this.setAppliedMask(await this.client.request('applyMask', { model: readSettings().model, mask }));
    } catch (err) {
      this.log.warn(`could not re-apply mask ${mask}: ${(err as Error).message}`);
      await this.setAppliedMask(undefined);
    }
  }

  /** Apply Mask on a mask file, for the panels' and the Circuits view's buttons. */
  applyMaskFile(path: string): Thenable<unknown> {
    this.log.info(`applying mask ${path}`);
    return vscode.commands.executeCommand('lrpLens.applyMask', vscode.Uri.file(path));
  }

  /** Disposes everything; resolves once the engine process has exited (deactivate returns this). */
  shutdown(): Promise<void> {
    this.dispose();
    return this.client.shutdown();
  }
}

function reasonOf(err: unknown): Failure['error'] {
  if (err instanceof EngineError || err instanceof InputError || LrpLensError.is(err)) return { reason: err.reason, message: err.message };
  return { reason: 'internal', message: (err as Error)?.message ?? String(err) };
}
