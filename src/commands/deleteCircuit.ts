/**
 * The Circuits view's Delete…: a circuit's folder, or a mask's manifest and its safetensors file, after
 * confirmation (a script may pass `confirmed`). Returns whether anything was deleted.
 */
import * as vscode from 'vscode';
import { existsSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { Container } from '../container';
import type { TreeNode } from '../views/circuitsTree/treeModel';

export function registerDeleteCircuit(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.circuits.delete', async (n?: TreeNode, confirmed = false): Promise<boolean> => {
    if (!n?.path || (n.kind !== 'circuit' && n.kind !== 'mask')) return false;
    const targets = n.kind === 'circuit' && n.folder ? [n.folder] : [n.path, n.path.replace(/\.json$/i, '.safetensors')].filter(existsSync);
    const what =
      n.kind === 'circuit' ? `the circuit "${n.label}" (folder ${basename(n.folder!)})` : `the mask ${basename(n.path)} and its tensors`;
    if (
      !confirmed &&
      (await vscode.window.showWarningMessage(`Delete ${what}? This cannot be undone.`, { modal: true }, 'Delete')) !== 'Delete'
    )
      return false;
    if (n.kind === 'circuit') c.circuitPanels.close(n.path);
    for (const t of targets) rmSync(t, { recursive: true, force: true });
    c.circuitsView.refresh();
    return true;
  });
}
