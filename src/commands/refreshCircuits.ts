/** The Circuits view's Refresh: scan the workspace for circuits and masks again. */
import * as vscode from 'vscode';
import type { Container } from '../container';

export function registerRefreshCircuits(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.circuits.refresh', () => c.circuitsView.refresh());
}
