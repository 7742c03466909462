/**
 * Relevance painted into the prompt's text: one decoration type per signed bucket (created once, as GitLens
 * does for its heatmap), ranges batched per bucket, a hover with the value and rank. Cleared on edit.
 */
import * as vscode from 'vscode';
import { Disposable } from '../dispose';
import type { AttributionResult } from '../engine/attribution/result';
import { BUCKET_COUNT, bucketColor, tokenDecorations } from './decorations';

export class EditorHeatmap extends Disposable {
  private readonly types: vscode.TextEditorDecorationType[] = [];
  private readonly painted = new Set<string>();

  constructor() {
    super();
    for (let b = 0; b < BUCKET_COUNT; b++) {
      this.types.push(this.register(vscode.window.createTextEditorDecorationType({ backgroundColor: bucketColor(b), borderRadius: '2px' })));
    }
    this.register(vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.contentChanges.length && this.painted.has(e.document.uri.toString())) this.clear(e.document.uri);
    }));
  }

  /** Paints `result` onto every visible editor of `doc`; token offsets are shifted by `promptOffset` (< 0: not in the text). */
  paint(doc: vscode.TextDocument, result: AttributionResult, promptOffset: number): void {
    if (promptOffset < 0) return;
    const byBucket: vscode.DecorationOptions[][] = this.types.map(() => []);
    for (const t of tokenDecorations(result)) {
      if (t.end <= t.start) continue;
      const range = new vscode.Range(doc.positionAt(promptOffset + t.start), doc.positionAt(promptOffset + t.end));
      byBucket[t.bucket].push({ range, hoverMessage: new vscode.MarkdownString(t.hover) });
    }
    for (const editor of vscode.window.visibleTextEditors.filter((e) => e.document === doc)) {
      this.types.forEach((type, b) => editor.setDecorations(type, byBucket[b]));
    }
    this.painted.add(doc.uri.toString());
  }

  clear(uri?: vscode.Uri): void {
    for (const editor of vscode.window.visibleTextEditors) {
      if (uri && editor.document.uri.toString() !== uri.toString()) continue;
      for (const type of this.types) editor.setDecorations(type, []);
    }
    if (uri) this.painted.delete(uri.toString());
    else this.painted.clear();
  }
}
