/**
 * "LRP Lens: Apply Mask": later attributions run on the pruned model of a mask (exported once into the cache by
 * the engine), shown in the status bar, until Clear Mask. A mask file as the argument skips the pick.
 */
import * as vscode from 'vscode';
import { basename } from 'node:path';
import { byFraction } from '../container';
import type { Container } from '../container';
import type { PrunedModel } from '../engine/pruning/applyMask';
import { readSettings } from '../settings';
import { InputError } from '../inputError';

async function pickMask(c: Container): Promise<string | undefined> {
  const folder = c.outputFolder();
  const masks = folder ? await vscode.workspace.findFiles(new vscode.RelativePattern(folder, '**/*.safetensors'), undefined, 500) : [];
  if (masks.length === 0)
    throw new InputError(
      `No mask in ${folder ?? 'the output folder'}. Run LRP Lens: Prune Model… or Correct Behaviour… first, or pass a mask file.`,
    );
  const pick = await vscode.window.showQuickPick(
    masks.map((m) => ({ label: basename(m.fsPath, '.safetensors'), description: vscode.workspace.asRelativePath(m), path: m.fsPath })),
    { title: 'Apply which mask?' },
  );
  return pick?.path;
}

async function applyMask(c: Container, mask: string): Promise<PrunedModel> {
  const pruned = await c.withEngineProgress(
    'applyMask',
    { model: readSettings().model, mask },
    { title: `LRP Lens: applying ${basename(mask)}`, percent: byFraction },
  );
  await c.setAppliedMask(pruned);
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
      return c.fail(err, { what: 'applying the mask' });
    }
  });
}
