/**
 * Relevance painted into the prompt's text: one decoration type per signed bucket (created once, as GitLens
 * does for its heatmap), ranges batched per bucket, a hover with the value and rank. Cleared on edit.
 */
import * as vscode from 'vscode';
import { Disposable } from '../dispose';
import type { AttributionResult } from '../engine/attribution/result';
import { decorationBuckets, tokenDecorations } from './decorations';

export class EditorHeatmap extends Disposable {
  /** Signed bucket → its decoration type (bucket 0, exactly zero relevance, is not painted). */
  private readonly types = new Map<number, vscode.TextEditorDecorationType>();
  private readonly painted = new Set<string>();

  constructor() {
    super();
    for (const { bucket, background } of decorationBuckets()) {
      if (background)
        this.types.set(
          bucket,
          this.register(vscode.window.createTextEditorDecorationType({ backgroundColor: background, borderRadius: '2px' })),
        );
    }
    this.register(
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length && this.painted.has(e.document.uri.toString())) this.clear(e.document.uri);
      }),
    );
  }

  /** Paints `result` onto every visible editor of `doc`; token offsets are shifted by `promptOffset` (< 0: not in the text). */
  paint(doc: vscode.TextDocument, result: AttributionResult, promptOffset: number): void {
    if (promptOffset < 0) return;
    const byBucket = new Map<number, vscode.DecorationOptions[]>([...this.types.keys()].map((b) => [b, []]));
    for (const t of tokenDecorations(result)) {
      const range = new vscode.Range(doc.positionAt(promptOffset + t.start), doc.positionAt(promptOffset + t.end));
      byBucket.get(t.bucket)?.push({ range, hoverMessage: new vscode.MarkdownString(t.hover) });
    }
    for (const editor of vscode.window.visibleTextEditors.filter((e) => e.document === doc)) {
      for (const [b, type] of this.types) editor.setDecorations(type, byBucket.get(b) ?? []);
    }
    this.painted.add(doc.uri.toString());
  }

  clear(uri?: vscode.Uri): void {
    for (const editor of vscode.window.visibleTextEditors) {
      if (uri && editor.document.uri.toString() !== uri.toString()) continue;
      for (const type of this.types.values()) editor.setDecorations(type, []);
    }
    if (uri) this.painted.delete(uri.toString());
    else this.painted.clear();
  }
}
