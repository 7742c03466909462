/** Opens a prompt file as text, refusing binary files with a message that says what a prompt file must be. */
import * as vscode from 'vscode';
import { basename } from 'node:path';
import { InputError } from '../inputError';

/** Why `bytes` are not a UTF-8 text file, or undefined when they are. */
export function binaryProblem(bytes: Uint8Array): string | undefined {
  const nul = bytes.indexOf(0);
  if (nul >= 0) return `it holds binary data (a NUL byte at offset ${nul})`;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return undefined;
  } catch {
    return 'it is not valid UTF-8 text';
  }
}

/** An open document as it is; a file on disk only after checking that it is text. */
export async function openPromptDocument(uri: vscode.Uri): Promise<vscode.TextDocument> {
  const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (open) return open;
  if (uri.scheme === 'file') {
    const problem = binaryProblem(await vscode.workspace.fs.readFile(uri));
    if (problem) {
      throw new InputError(
        `${basename(uri.fsPath)} is not a text file: ${problem}. A prompt file must be UTF-8 text; put the prompt in a .prompt text file.`,
      );
    }
  }
  return vscode.workspace.openTextDocument(uri);
}
