/** The Circuits view's Reveal in Explorer. */
import * as vscode from 'vscode';
import type { TreeNode } from '../views/circuitsTree/treeModel';

export function registerRevealCircuit(): vscode.Disposable {
  return vscode.commands.registerCommand(
    'lrpLens.circuits.reveal',
    (n?: TreeNode) => n?.path && vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(n.path)),
  );
}
