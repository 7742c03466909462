/** The Circuits view's Apply Mask: a circuit's own mask, or a mask listed on its own, through Apply Mask. */
import * as vscode from 'vscode';
import type { Container } from '../container';
import type { TreeNode } from '../views/circuitsTree/treeModel';

export function registerApplyCircuitMask(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.circuits.apply', (n?: TreeNode) => n?.maskPath && c.applyMaskFile(n.maskPath));
}
