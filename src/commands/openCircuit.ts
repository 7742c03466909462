/** The Circuits view's Open: a circuit in its panel, a mask manifest in an editor. */
import * as vscode from 'vscode';
import type { Container } from '../container';
import type { TreeNode } from '../views/circuitsTree/treeModel';

export function registerOpenCircuit(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.circuits.open', async (n?: TreeNode) => {
    if (!n?.path) return;
    if (n.kind === 'circuit') c.circuitPanels.show(n.path);
    else await vscode.window.showTextDocument(vscode.Uri.file(n.path));
  });
}
