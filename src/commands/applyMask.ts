/**
 * "Apply Mask" and "Clear Mask": later attributions run on the pruned model of a mask (exported once into the
 * cache by the engine), shown in the status bar; Clear Mask returns to the dense model. "Open Report" opens a
 * prune or correct report file in its panel.
 */
import * as vscode from 'vscode';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Container } from '../container';
import type { PrunedModel } from '../engine/pruning/applyMask';
import type { PruneReport } from '../engine/pruning/pruneRun';
import type { CorrectReport } from '../engine/correction/correctionRun';
import { reportKind } from '../views/reportPanels/viewModel';
import { readSettings } from '../settings';
import { EngineError } from '../worker/client';

const APPLIED_KEY = 'lrpLens.appliedMask';

async function pickMask(c: Container): Promise<string | undefined> {
  const folder = c.outputFolder();
  const masks = folder ? await vscode.workspace.findFiles(new vscode.RelativePattern(folder, '**/*.safetensors'), undefined, 500) : [];
  if (masks.length === 0)
    throw new EngineError(
      'bad-argument',
      `No mask in ${folder ?? 'the output folder'}. Run LRP Lens: Prune Model… or Correct Behaviour… first, or pass a mask file.`,
    );
  const pick = await vscode.window.showQuickPick(
    masks.map((m) => ({ label: basename(m.fsPath, '.safetensors'), description: vscode.workspace.asRelativePath(m), path: m.fsPath })),
    { title: 'Apply which mask?' },
  );
  return pick?.path;
}

export async function applyMask(c: Container, mask: string): Promise<PrunedModel> {
  const settings = readSettings();
  const pruned = await c.runTask('applyMask', { model: settings.model, mask }, `applying ${basename(mask)}`);
  c.appliedMask = pruned;
  c.status.setMask({ name: basename(pruned.mask, '.safetensors'), sparsity: pruned.sparsity });
  await c.context.workspaceState.update(APPLIED_KEY, pruned.mask);
  c.log.info(`mask ${pruned.mask} applied: attributions run on ${pruned.dir}${pruned.cached ? ' (cached)' : ' (exported)'}`);
  void vscode.window.showInformationMessage(
    `LRP Lens: mask ${basename(pruned.mask)} applied (${(pruned.sparsity * 100).toFixed(1)}% pruned). Attributions now use the pruned model.`,
  );
  return pruned;
}

export function registerApplyMask(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.applyMask', async (arg?: vscode.Uri | string) => {
    try {
      const mask = typeof arg === 'string' ? arg : (arg?.fsPath ?? (await pickMask(c)));
      return mask ? { applied: await applyMask(c, mask) } : undefined;
    } catch (err) {
      return c.failTask('applying the mask', err);
    }
  });
}

export function registerClearMask(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.clearMask', async () => {
    const was = c.appliedMask;
    c.appliedMask = undefined;
    c.status.setMask(undefined);
    await c.context.workspaceState.update(APPLIED_KEY, undefined);
    if (was) void vscode.window.showInformationMessage(`LRP Lens: mask ${basename(was.mask)} cleared; attributions use the dense model.`);
    return { cleared: was?.mask ?? null };
  });
}

/** Re-applies the mask of the last session quietly (the pruned model is cached); a failure only logs. */
export async function restoreAppliedMask(c: Container): Promise<void> {
  const mask = c.context.workspaceState.get<string>(APPLIED_KEY);
  if (!mask) return;
  try {
    c.appliedMask = await c.client.request('applyMask', { model: readSettings().model, mask });
    c.status.setMask({ name: basename(mask, '.safetensors'), sparsity: c.appliedMask.sparsity });
  } catch (err) {
    c.log.warn(`could not re-apply mask ${mask}: ${(err as Error).message}`);
    await c.context.workspaceState.update(APPLIED_KEY, undefined);
  }
}

export function registerOpenReport(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.openReport', async (arg?: vscode.Uri) => {
    try {
      const uri = arg ?? vscode.window.activeTextEditor?.document.uri;
      if (!uri)
        throw new EngineError(
          'bad-argument',
          'No report given. Choose a *.report.json file written by Prune Model… or Correct Behaviour… (or lrp-lens prune/correct --json).',
        );
      c.reports.show({ report: parseReport(uri.fsPath), reportPath: uri.fsPath });
      return { opened: uri.fsPath };
    } catch (err) {
      return c.failTask('opening the report', err);
    }
  });
}

function parseReport(path: string): PruneReport | CorrectReport {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new EngineError(
      'bad-argument',
      `${basename(path)} is not readable JSON (${(err as Error).message}). Open a report written by Prune Model… or Correct Behaviour….`,
    );
  }
  const kind = reportKind(value);
  if (kind !== 'prune' && kind !== 'correct') {
    throw new EngineError(
      'bad-argument',
      `${basename(path)} is not a pruning or correction report (schema lrp-lens/prune@1 or lrp-lens/correct@1). Open the *.report.json beside a mask.`,
    );
  }
  return value as PruneReport | CorrectReport;
}
