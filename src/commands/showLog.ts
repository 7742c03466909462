/** "LRP Lens: Show Log": the LRP Lens output channel (the engine's log and stderr included). */
import * as vscode from 'vscode';
import type { Container } from '../container';

export function registerShowLog(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.showLog', () => c.log.show());
}
