/** "LRP Lens: Clear Heatmap": removes the relevance painted into every editor. */
import * as vscode from 'vscode';
import type { Container } from '../container';

export function registerClearHeatmap(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.clearHeatmap', () => c.heatmap.clear());
}
