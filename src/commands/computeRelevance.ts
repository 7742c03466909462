/** "LRP Lens: Compute Relevance" — the active editor's selection, else the whole file (prompt-file header honoured). */
import * as vscode from 'vscode';
import type { AttributionOutcome, Container } from '../container';
import { isPromptFile, parsePromptFile } from '../engine/attribution/promptFile';
import { EngineError } from '../worker/client';
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

/** Returns the outcome (see Container.attribute) to whoever executed the command. */
export function registerComputeRelevance(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.computeRelevance', async (): Promise<AttributionOutcome> => {
    const editor = vscode.window.activeTextEditor;
    if (!editor)
      return c.fail(undefined, new EngineError('bad-argument', 'No editor is active. Open a prompt file (or select text) first.'));
    let target: PanelTarget;
    try {
      target = targetFor(editor.document, editor.selection);
    } catch (err) {
      return c.fail(editor.document.uri, badArgument(err));
    }
    return c.attribute(target);
  });
}

/** Prompt-file parse errors already name the file, the line and the fix. */
export function badArgument(err: unknown): EngineError {
  return err instanceof EngineError ? err : new EngineError('bad-argument', (err as Error)?.message ?? String(err));
}
