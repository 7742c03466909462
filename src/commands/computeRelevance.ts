/** "LRP Lens: Compute Relevance" — the active editor's selection, else the whole file (prompt-file header honoured). */
import * as vscode from 'vscode';
import type { AttributionOutcome, Container } from '../container';
import { targetFor } from '../attributionTarget';
import type { AttributionTarget } from '../attributionTarget';
import { InputError, asInputError } from '../inputError';

/** Returns the outcome (see Container.attribute) to whoever executed the command. */
export function registerComputeRelevance(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.computeRelevance', async (): Promise<AttributionOutcome> => {
    const editor = vscode.window.activeTextEditor;
    if (!editor)
      return c.fail(new InputError('No editor is active. Open a prompt file (or select text) first.'), { what: 'relevance computation' });
    let target: AttributionTarget;
    try {
      target = targetFor(editor.document, editor.selection);
    } catch (err) {
      // Prompt-file parse errors already name the file, the line and the fix.
      return c.fail(asInputError(err), { what: 'relevance computation', prompt: editor.document.uri });
    }
    return c.attribute(target);
  });
}
