/**
 * "LRP Lens: Discover Circuit…" on a *.task.jsonl file: quick picks for the search (skipped when a script passes
 * the options), a cancellable progress notification while the engine process runs it, then the circuit panel.
 */
import * as vscode from 'vscode';
import { basename, join } from 'node:path';
import type { CircuitRecord } from '../engine/circuits/discover';
import type { Granularity, Ranking } from '../engine/circuits/search';
import { EngineError } from '../worker/client';
import { readSettings } from '../settings';
import type { CircuitsFeature } from './manageCircuits';

export interface DiscoverChoices {
  method: string;
  granularity: Granularity;
  ranking: Ranking;
  threshold: number;
  compare: string[];
}

/** What the command returns: the record and the folder written, or the error the user was shown. */
export type DiscoverOutcome = { record: CircuitRecord; dir: string } | { error: { reason: string; message: string } };

const METHODS = ['lrp', 'wanda', 'gradient', 'activation'];

export function taskStem(file: string): string {
  return (
    basename(file)
      .replace(/\.task\.jsonl$/i, '')
      .replace(/[^\w.-]+/g, '_') || 'task'
  );
}

export function circuitDir(
  root: string,
  outputFolder: string,
  taskFile: string,
  c: Pick<DiscoverChoices, 'method' | 'granularity'>,
): string {
  return join(root, outputFolder, 'circuits', `${taskStem(taskFile)}-${c.method}-${c.granularity}`);
}

export function registerDiscoverCircuit(f: CircuitsFeature): vscode.Disposable {
  return vscode.commands.registerCommand(
    'lrpLens.discoverCircuit',
    async (uri?: vscode.Uri, options?: Partial<DiscoverChoices>): Promise<DiscoverOutcome | undefined> => {
      const task = uri ?? vscode.window.activeTextEditor?.document.uri;
      if (!task || !/\.task\.jsonl$/i.test(task.fsPath))
        return f.fail(
          new EngineError(
            'bad-argument',
            'Discover Circuit needs a task file (*.task.jsonl). Choose one in the explorer, open one, or create one with "LRP Lens: New Task File…".',
          ),
        );
      const root = vscode.workspace.getWorkspaceFolder(task)?.uri.fsPath ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
      if (!root)
        return f.fail(new EngineError('bad-argument', 'Open a workspace folder first: circuits are written to its lrpLens.outputFolder.'));
      const choices = options ? withDefaults(options) : await pickChoices();
      if (!choices) return undefined;
      const settings = readSettings();
      const dir = circuitDir(root, settings.outputFolder, task.fsPath, choices);
      try {
        const record = await run(f, { ...choices, model: settings.model, device: settings.device, task: task.fsPath, out: dir });
        f.log.info(
          `circuit ${record.task.name}: ${record.method}/${record.granularity} ${(record.circuit.sparsity * 100).toFixed(1)}% pruned, ${(record.circuit.retained * 100).toFixed(1)}% kept → ${dir}`,
        );
        f.view.refresh();
        f.panels.show(join(dir, 'circuit.json'));
        return { record, dir };
      } catch (err) {
        return f.fail(err, task);
      }
    },
  );
}

function withDefaults(o: Partial<DiscoverChoices>): DiscoverChoices {
  return {
    method: o.method ?? 'lrp',
    granularity: o.granularity ?? 'heads',
    ranking: o.ranking ?? 'global',
    threshold: o.threshold ?? 0.9,
    compare: o.compare ?? [],
  };
}

function run(
  f: CircuitsFeature,
  params: DiscoverChoices & { model: string; device: 'cpu' | 'cuda'; task: string; out: string },
): Thenable<CircuitRecord> {
  return vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: `LRP Lens: discovering a circuit (${params.method}, ${params.granularity})`,
      cancellable: true,
    },
    (progress, token) => {
      const abort = new AbortController();
      token.onCancellationRequested(() => abort.abort());
      let last = 0;
      return f.client.request('circuit', params, {
        signal: abort.signal,
        onProgress: (p) => {
          const overall = p.stage === 'sweep' && p.total ? (100 * (p.done ?? 0)) / p.total : undefined;
          progress.report({ message: p.message, increment: overall === undefined ? undefined : Math.max(0, overall - last) });
          if (overall !== undefined) last = Math.max(last, overall);
        },
      });
    },
  );
}

async function pickChoices(): Promise<DiscoverChoices | undefined> {
  const method = await pick(
    'Score components with',
    METHODS.map((m) => ({ label: m, description: m === 'lrp' ? 'Layer-wise Relevance Propagation (default)' : undefined })),
  );
  if (!method) return undefined;
  const granularity = (await pick('Granularity', [
    { label: 'heads', description: 'attention heads (quick, robust)' },
    { label: 'neurons', description: 'whole output units' },
    { label: 'weights', description: 'single weights' },
  ])) as Granularity | undefined;
  if (!granularity) return undefined;
  const ranking = (await pick('Ranking', [
    { label: 'global', description: 'one ranking over the model' },
    { label: 'row', description: granularity === 'weights' ? 'per row' : 'per layer' },
  ])) as Ranking | undefined;
  if (!ranking) return undefined;
  const threshold = await vscode.window.showInputBox({
    title: 'Keep at least this fraction of the dense metric',
    value: '0.9',
    validateInput: (v) => (Number(v) > 0 && Number(v) <= 1 ? undefined : 'A number in (0, 1]'),
  });
  if (threshold === undefined) return undefined;
  const compare = await vscode.window.showQuickPick(
    METHODS.filter((m) => m !== method).map((label) => ({ label })),
    { title: 'Compare with (optional; Enter for none)', canPickMany: true },
  );
  if (!compare) return undefined;
  return { method, granularity, ranking, threshold: Number(threshold), compare: compare.map((c) => c.label) };
}

async function pick(title: string, items: vscode.QuickPickItem[]): Promise<string | undefined> {
  return (await vscode.window.showQuickPick(items, { title }))?.label;
}
