/** "Attribute with LRP" on a prompt file from the explorer or editor context menu; a JSONL file asks which sample. */
import * as vscode from 'vscode';
import type { AttributionOutcome, Container } from '../container';
import { isPromptsJsonl, parsePromptsJsonl } from '../engine/attribution/promptFile';
import { targetFor } from '../attributionTarget';
import { InputError, asInputError } from '../inputError';
import { openPromptDocument } from './promptDocument';

/** Returns the outcome (see Container.attribute); undefined when the user dismissed the sample picker. */
export function registerAttributeWithLrp(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.attributeFile', async (uri?: vscode.Uri): Promise<AttributionOutcome | undefined> => {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!target)
      return c.fail(new InputError('No prompt file given. Choose a prompt file in the explorer, or open one.'), {
        what: 'relevance computation',
      });
    try {
      const doc = await openPromptDocument(target);
      if (!isPromptsJsonl(doc.fileName)) return await c.attribute(targetFor(doc));
      const samples = parsePromptsJsonl(doc.getText(), doc.fileName);
      const pick =
        samples.length === 1
          ? samples[0]
          : (
              await vscode.window.showQuickPick(
                samples.map((s) => ({
                  label: s.prompt.slice(0, 80),
                  description: `line ${s.line}${s.target ? ` → ${JSON.stringify(s.target)}` : ''}`,
                  sample: s,
                })),
                { title: 'Attribute which sample?' },
              )
            )?.sample;
      if (!pick) return undefined;
      // The prompt sits JSON-escaped inside its line, so its tokens are not painted into the editor.
      return await c.attribute({ uri: doc.uri, request: { prompt: pick.prompt, target: pick.target, foil: pick.foil }, promptOffset: -1 });
    } catch (err) {
      return c.fail(asInputError(err), { what: 'relevance computation', prompt: target });
    }
  });
}
