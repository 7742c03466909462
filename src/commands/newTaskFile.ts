/** "LRP Lens: New Task File…": a generated pronoun or IOI task (the engine's generators) written into the workspace. */
import * as vscode from 'vscode';
import { join } from 'node:path';
import type { TaskKind } from '../engine/tasks/generators';
import { DEFAULT_TASK_SAMPLES } from '../engine/tasks/taskDefaults';
import type { Container } from '../container';
import { InputError } from '../inputError';
import { readSettings } from '../settings';

export interface NewTaskOptions {
  kind: TaskKind;
  n?: number;
  seed?: number;
  /** Workspace-relative or absolute path; default `<kind>.task.jsonl` in the workspace root. */
  out?: string;
  /** Open the file in an editor (default true). */
  open?: boolean;
}

const WHAT = 'generating the task';

export function registerNewTaskFile(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.newTaskFile', async (options?: NewTaskOptions): Promise<string | undefined> => {
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    if (!root) {
      c.fail(new InputError('Open a workspace folder first: the task file is written into it.'), { what: WHAT });
      return undefined;
    }
    const o = options ?? (await ask());
    if (!o) return undefined;
    const out = o.out ? (o.out.startsWith('/') ? o.out : join(root, o.out)) : join(root, `${o.kind}.task.jsonl`);
    try {
      const made = await c.withEngineProgress(
        'makeTask',
        { kind: o.kind, n: o.n, seed: o.seed ?? 1, model: readSettings().model, out },
        { title: 'LRP Lens: generating task', location: 'window' },
      );
      c.log.info(`wrote ${made.samples} ${o.kind} samples to ${made.path}`);
      if (o.open !== false) await vscode.window.showTextDocument(vscode.Uri.file(made.path));
      return made.path;
    } catch (err) {
      c.fail(err, { what: WHAT });
      return undefined;
    }
  });
}

async function ask(): Promise<NewTaskOptions | undefined> {
  const kind = (
    await vscode.window.showQuickPick(
      [
        { label: 'pronoun', description: 'a name, then " he" / " she" must agree (stories260k can do it)' },
        { label: 'ioi', description: 'indirect-object identification (needs a larger model)' },
      ],
      { title: 'Task kind' },
    )
  )?.label as TaskKind | undefined;
  if (!kind) return undefined;
  const n = await vscode.window.showInputBox({
    title: 'Samples',
    value: String(DEFAULT_TASK_SAMPLES),
    validateInput: (v) => (Number.isInteger(Number(v)) && Number(v) > 1 ? undefined : 'An integer above 1'),
  });
  if (!n) return undefined;
  return { kind, n: Number(n), seed: 1 };
}
