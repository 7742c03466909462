/**
 * The Circuits sidebar: a tree of circuits and masks found in the workspace (buildCircuitsTree does the work),
 * refreshed when JSON files under the workspace change.
 */
import * as vscode from 'vscode';
import { readFile } from 'node:fs/promises';
import { Disposable } from '../dispose';
import { buildCircuitsTree } from './circuitsTree/treeModel';
import type { FoundFile, TreeNode } from './circuitsTree/treeModel';

export const CIRCUITS_VIEW_ID = 'lrpLens.circuits';
const MAX_FILES = 2000;

export class CircuitsView extends Disposable implements vscode.TreeDataProvider<TreeNode> {
  private readonly changed = this.register(new vscode.EventEmitter<TreeNode | undefined>());
  readonly onDidChangeTreeData = this.changed.event;
  private roots: Promise<TreeNode[]> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor() {
    super();
    this.register(vscode.window.createTreeView(CIRCUITS_VIEW_ID, { treeDataProvider: this, showCollapseAll: true }));
    const watcher = this.register(vscode.workspace.createFileSystemWatcher('**/*.json'));
    for (const event of [watcher.onDidCreate, watcher.onDidChange, watcher.onDidDelete]) this.register(event(() => this.refreshSoon()));
    this.register({ dispose: () => clearTimeout(this.timer) });
  }

  refresh(): void {
    this.roots = undefined;
    this.changed.fire(undefined);
  }

  /** Circuits and masks as the tree shows them (tests read it). */
  async nodes(): Promise<TreeNode[]> {
    this.roots ??= scanWorkspace().then((files) => buildCircuitsTree(files, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath));
    return this.roots;
  }

  private refreshSoon(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 300);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const collapsible = node.kind === 'group' ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None;
    const item = new vscode.TreeItem(node.label, collapsible);
    item.id = node.id;
    item.description = node.description;
    item.tooltip = node.tooltip;
    item.contextValue = node.kind === 'circuit' && node.maskPath ? 'circuit.withMask' : node.kind;
    if (node.path) item.resourceUri = vscode.Uri.file(node.path);
    item.iconPath = new vscode.ThemeIcon(
      node.kind === 'circuit' ? 'type-hierarchy' : node.kind === 'mask' ? 'filter' : node.kind === 'group' ? 'folder' : 'info',
    );
    if (node.kind === 'circuit' || node.kind === 'mask')
      item.command = { command: 'lrpLens.circuits.open', title: 'Open', arguments: [node] };
    return item;
  }

  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    return node ? node.children : this.nodes();
  }
}

/** circuit.json files and JSON files that mention the mask format, parsed; unreadable files are skipped. */
async function scanWorkspace(): Promise<FoundFile[]> {
  const uris = await vscode.workspace.findFiles('**/*.json', '{**/node_modules/**,**/.git/**}', MAX_FILES);
  const found = await Promise.all(
    uris.map(async (uri): Promise<FoundFile | undefined> => {
      try {
        const text = await readFile(uri.fsPath, 'utf8');
        if (!uri.fsPath.endsWith('circuit.json') && !text.includes('lrp-lens-mask')) return undefined;
        return { path: uri.fsPath, content: JSON.parse(text) as unknown };
      } catch {
        return undefined;
      }
    }),
  );
  return found.filter((f): f is FoundFile => f !== undefined);
}
