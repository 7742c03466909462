/** "Attribute with LRP" on a prompt file from the explorer or editor context menu; a JSONL file asks which sample. */
import * as vscode from 'vscode';
import type { Container } from '../container';
import { isPromptsJsonl, parsePromptsJsonl } from '../engine/attribution/promptFile';
import { targetFor } from './computeRelevance';

export function registerAttributeWithLrp(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.attributeFile', async (uri?: vscode.Uri) => {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!target) {
      void vscode.window.showErrorMessage('LRP Lens: choose a prompt file to attribute.');
      return;
    }
    try {
      const doc = await vscode.workspace.openTextDocument(target);
      if (!isPromptsJsonl(doc.fileName)) return await c.attribute(targetFor(doc));
      const samples = parsePromptsJsonl(doc.getText(), doc.fileName);
      const pick = samples.length === 1 ? samples[0] : (await vscode.window.showQuickPick(
        samples.map((s) => ({ label: s.prompt.slice(0, 80), description: `line ${s.line}${s.target ? ` → ${JSON.stringify(s.target)}` : ''}`, sample: s })),
        { title: 'Attribute which sample?' },
      ))?.sample;
      if (!pick) return;
      // The prompt sits JSON-escaped inside its line, so its tokens are not painted into the editor.
      await c.attribute({ uri: doc.uri, request: { prompt: pick.prompt, target: pick.target, foil: pick.foil }, promptOffset: -1 });
    } catch (err) {
      void vscode.window.showErrorMessage(`LRP Lens: ${(err as Error).message}`);
    }
  });
}
