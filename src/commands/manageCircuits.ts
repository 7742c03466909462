/**
 * Circuit discovery in the extension: the Circuits sidebar, the circuit panel, and the commands around them —
 * Discover Circuit…, New Task File…, and the sidebar's open / apply / delete / reveal / refresh.
 */
import * as vscode from 'vscode';
import { existsSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Container } from '../container';
import { Disposable } from '../dispose';
import { EngineError } from '../worker/client';
import { readSettings } from '../settings';
import { CircuitPanels } from '../views/circuitPanelHost';
import { CircuitsView } from '../views/circuitsView';
import type { TreeNode } from '../views/circuitsTree/treeModel';
import { registerDiscoverCircuit } from './discoverCircuit';
import { registerNewTaskFile } from './newTaskFile';

export class CircuitsFeature extends Disposable {
  readonly view = this.register(new CircuitsView());
  readonly panels: CircuitPanels;

  constructor(private readonly c: Container) {
    super();
    this.panels = this.register(
      new CircuitPanels(c.context.extensionUri, {
        outputFolder: () => {
          const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
          return root ? join(root, readSettings().outputFolder) : undefined;
        },
        applyMask: (manifest) => applyMask(this, manifest),
        log: (m) => c.log.info(m),
      }),
    );
    this.register(registerDiscoverCircuit(this));
    this.register(registerNewTaskFile(this));
    this.register(vscode.commands.registerCommand('lrpLens.circuits.refresh', () => this.view.refresh()));
    this.register(vscode.commands.registerCommand('lrpLens.circuits.open', (n?: TreeNode) => this.open(n)));
    this.register(vscode.commands.registerCommand('lrpLens.circuits.apply', (n?: TreeNode) => n?.maskPath && applyMask(this, n.maskPath)));
    this.register(
      vscode.commands.registerCommand('lrpLens.circuits.delete', (n?: TreeNode, confirmed?: boolean) => this.delete(n, confirmed)),
    );
    this.register(
      vscode.commands.registerCommand(
        'lrpLens.circuits.reveal',
        (n?: TreeNode) => n?.path && vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(n.path)),
      ),
    );
  }

  get client() {
    return this.c.client;
  }

  get log() {
    return this.c.log;
  }

  /** Logs the error and shows it (a task-file error gets a button to its line); returns it as the outcome. */
  fail(err: unknown, file?: vscode.Uri): { error: { reason: string; message: string } } {
    const e = err instanceof EngineError ? err : new EngineError('internal', (err as Error)?.message ?? String(err));
    this.c.log.error(`${e.reason}: ${e.message}`);
    if (e.reason === 'cancelled') {
      void vscode.window.showInformationMessage('LRP Lens: circuit discovery cancelled.');
      return { error: { reason: e.reason, message: e.message } };
    }
    const line = file ? lineOf(e.message, basename(file.fsPath)) : undefined;
    const actions = line ? ['Go to Line', 'Show Log'] : ['Show Log'];
    void vscode.window.showErrorMessage(`LRP Lens: ${e.message}`, ...actions).then(async (pick) => {
      if (pick === 'Show Log') this.c.log.show();
      if (pick === 'Go to Line' && file && line)
        await vscode.window.showTextDocument(file, { selection: new vscode.Range(line - 1, 0, line - 1, 0) });
    });
    return { error: { reason: e.reason, message: e.message } };
  }

  private async open(n?: TreeNode): Promise<void> {
    if (!n?.path) return;
    if (n.kind === 'circuit') this.panels.show(n.path);
    else await vscode.window.showTextDocument(vscode.Uri.file(n.path));
  }

  /** Deletes a circuit's folder, or a mask's manifest and its safetensors file, after confirmation. */
  private async delete(n?: TreeNode, confirmed = false): Promise<boolean> {
    if (!n?.path || (n.kind !== 'circuit' && n.kind !== 'mask')) return false;
    const targets = n.kind === 'circuit' && n.folder ? [n.folder] : [n.path, n.path.replace(/\.json$/i, '.safetensors')].filter(existsSync);
    const what =
      n.kind === 'circuit' ? `the circuit "${n.label}" (folder ${basename(n.folder!)})` : `the mask ${basename(n.path)} and its tensors`;
    if (
      !confirmed &&
      (await vscode.window.showWarningMessage(`Delete ${what}? This cannot be undone.`, { modal: true }, 'Delete')) !== 'Delete'
    )
      return false;
    if (n.kind === 'circuit') this.panels.close(n.path);
    for (const t of targets) rmSync(t, { recursive: true, force: true });
    this.view.refresh();
    return true;
  }
}

/** The pruning UI's command; until it is installed, say so rather than fail silently. */
export async function applyMask(f: CircuitsFeature, manifest: string): Promise<void> {
  const commands = await vscode.commands.getCommands(true);
  if (!commands.includes('lrpLens.applyMask')) {
    void vscode.window.showWarningMessage(
      `LRP Lens: applying masks needs the "Apply Mask" command, which this build does not have yet. The mask is at ${manifest}; use it with \`lrp-lens task eval --mask\` or \`lrp-lens export\` meanwhile.`,
    );
    return;
  }
  f.log.info(`applying mask ${manifest}`);
  await vscode.commands.executeCommand('lrpLens.applyMask', vscode.Uri.file(manifest));
}

/** The line number in an engine message like "f.task.jsonl:7: …". */
export function lineOf(message: string, file: string): number | undefined {
  const m = new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+)`).exec(message);
  return m ? Number(m[1]) : undefined;
}

export function registerCircuits(c: Container): vscode.Disposable {
  return new CircuitsFeature(c);
}
