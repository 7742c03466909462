/** "LRP Lens: Restart Engine": kills the engine process; the next request starts a fresh one. */
import * as vscode from 'vscode';
import type { Container } from '../container';

export function registerRestartEngine(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.restartEngine', async () => {
    await c.client.restart();
    c.log.info('engine restarted');
    void vscode.window.showInformationMessage('LRP Lens: engine restarted.');
  });
}
