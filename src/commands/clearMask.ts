/** "LRP Lens: Clear Mask": attributions return to the dense model. */
import * as vscode from 'vscode';
import { basename } from 'node:path';
import type { Container } from '../container';

export function registerClearMask(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.clearMask', async () => {
    const was = c.appliedMask;
    await c.setAppliedMask(undefined);
    if (was) void vscode.window.showInformationMessage(`LRP Lens: mask ${basename(was.mask)} cleared; attributions use the dense model.`);
    return { cleared: was?.mask ?? null };
  });
}
