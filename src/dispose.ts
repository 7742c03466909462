/** Owns child disposables and releases them exactly once (after vscode-extension-samples' dispose.ts). */
import type * as vscode from 'vscode';

export abstract class Disposable implements vscode.Disposable {
  private disposed = false;
  private readonly children: vscode.Disposable[] = [];

  protected register<T extends vscode.Disposable>(d: T): T {
    if (this.disposed) d.dispose();
    else this.children.push(d);
    return d;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    while (this.children.length) this.children.pop()?.dispose();
  }
}
