/** Quick picks shared by Prune Model… and Correct Behaviour…: workspace files of a kind, and checks of files given. */
import * as vscode from 'vscode';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { InputError } from '../inputError';

const TEXT_GLOB = '**/*.{txt,md,prompt,prompts.jsonl,jsonl}';
const EXCLUDE = '**/{node_modules,.git,dist,out}/**';

/** A quick pick of workspace files (text or *.prompts.jsonl); undefined when dismissed. `optional` adds "None". */
export async function pickWorkspaceFile(
  title: string,
  opts: { glob?: string; optional?: boolean } = {},
): Promise<string | null | undefined> {
  const files = await vscode.workspace.findFiles(opts.glob ?? TEXT_GLOB, EXCLUDE, 500);
  if (files.length === 0 && !opts.optional) {
    throw new InputError(
      `${title}: no text or *.prompts.jsonl file in the workspace. Add one (plain text, or one JSON object with "prompt" per line) and run the command again.`,
    );
  }
  const items: (vscode.QuickPickItem & { path: string | null })[] = files
    .map((f) => ({ label: vscode.workspace.asRelativePath(f), path: f.fsPath }))
    .sort((a, b) => a.label.localeCompare(b.label));
  if (opts.optional) items.unshift({ label: '$(circle-slash) None', path: null });
  const pick = await vscode.window.showQuickPick(items, { title, matchOnDescription: true });
  return pick === undefined ? undefined : pick.path;
}

/** A file argument as an absolute path (relative to the workspace), refused when missing or empty. */
export function checkedFile(path: string, what: string): string {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const abs = isAbsolute(path) || !root ? path : join(root, path);
  if (!existsSync(abs)) throw new InputError(`The ${what} file ${abs} does not exist. Pick an existing text or *.prompts.jsonl file.`);
  if (!statSync(abs).isFile() || readFileSync(abs, 'utf8').trim() === '')
    throw new InputError(`The ${what} file ${abs} is empty. Give it some text (or prompts, one JSON object a line).`);
  return abs;
}

/** The output folder, or an error saying to open a workspace. */
export function requireOutputFolder(folder: string | undefined): string {
  if (!folder) throw new InputError('Open a workspace folder first: masks and reports are written into its lrpLens.outputFolder.');
  return folder;
}
