/** "LRP Lens: Compute Relevance" — the active editor's selection, else the whole file (prompt-file header honoured). */
import * as vscode from 'vscode';
import type { Container } from '../container';
import { isPromptFile, parsePromptFile } from '../engine/attribution/promptFile';
import type { PanelTarget } from '../views/relevancePanelHost';

export function targetFor(doc: vscode.TextDocument, selection?: vscode.Selection): PanelTarget {
  if (selection && !selection.isEmpty) {
    return { uri: doc.uri, request: { prompt: doc.getText(selection) }, promptOffset: doc.offsetAt(selection.start) };
  }
  if (isPromptFile(doc.fileName)) {
    const p = parsePromptFile(doc.getText(), doc.fileName);
    return { uri: doc.uri, request: p.request, promptOffset: p.promptOffset };
  }
  return { uri: doc.uri, request: { prompt: doc.getText() }, promptOffset: 0 };
}

export function registerComputeRelevance(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.computeRelevance', async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showErrorMessage('LRP Lens: open a prompt file (or select text) first.');
      return;
    }
    let target: PanelTarget;
    try {
      target = targetFor(editor.document, editor.selection);
    } catch (err) {
      void vscode.window.showErrorMessage(`LRP Lens: ${(err as Error).message}`);
      return;
    }
    await c.attribute(target);
  });
}
