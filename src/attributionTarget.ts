/** What one attribution explains: a document (its selection, a prompt file's header, or the whole text). */
import type * as vscode from 'vscode';
import type { AttributeRequest } from './engine/attribution/attribute';
import { isPromptFile, parsePromptFile } from './engine/attribution/promptFile';

/** The file, the request, and where the prompt starts in the file (−1: not as plain text, so not painted). */
export interface AttributionTarget {
  uri: vscode.Uri;
  request: AttributeRequest;
  promptOffset: number;
}

/** The selection when there is one, else the prompt file's request (header honoured), else the whole text. */
export function targetFor(doc: vscode.TextDocument, selection?: vscode.Selection): AttributionTarget {
  if (selection && !selection.isEmpty) {
    return { uri: doc.uri, request: { prompt: doc.getText(selection) }, promptOffset: doc.offsetAt(selection.start) };
  }
  if (isPromptFile(doc.fileName)) {
    const p = parsePromptFile(doc.getText(), doc.fileName);
    return { uri: doc.uri, request: p.request, promptOffset: p.promptOffset };
  }
  return { uri: doc.uri, request: { prompt: doc.getText() }, promptOffset: 0 };
}
