/**
 * "LRP Lens: Discover Circuit…" on a *.task.jsonl file: quick picks for the search (skipped when a script passes
 * the options), a cancellable progress notification while the engine process runs it, then the circuit panel.
 */
import * as vscode from 'vscode';
import { basename, join } from 'node:path';
import type { Container, Failure } from '../container';
import type { CircuitRecord } from '../engine/circuits/discover';
import type { Granularity, Ranking } from '../engine/circuits/search';
import type { ProgressNotification } from '../worker/protocol';
import { InputError } from '../inputError';
import { readSettings } from '../settings';

export interface DiscoverChoices {
  method: string;
  granularity: Granularity;
  ranking: Ranking;
  threshold: number;
  compare: string[];
}

/** What the command returns: the record and the folder written, or the error the user was shown. */
export type DiscoverOutcome = { record: CircuitRecord; dir: string } | Failure;

const METHODS = ['lrp', 'wanda', 'gradient', 'activation'];
const WHAT = 'circuit discovery';

export function taskStem(file: string): string {
  return (
    basename(file)
      .replace(/\.task\.jsonl$/i, '')
      .replace(/[^\w.-]+/g, '_') || 'task'
  );
}

/** Where a circuit of `taskFile` found with these choices is written, inside the output folder. */
export function circuitDir(outputFolder: string, taskFile: string, c: Pick<DiscoverChoices, 'method' | 'granularity'>): string {
  return join(outputFolder, 'circuits', `${taskStem(taskFile)}-${c.method}-${c.granularity}`);
}

/** The bar follows the sweep over sparsities, which is most of the time. */
function sweepPercent(p: ProgressNotification['params']): number | undefined {
  return p.stage === 'sweep' && p.total ? (100 * (p.done ?? 0)) / p.total : undefined;
}

export function registerDiscoverCircuit(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand(
    'lrpLens.discoverCircuit',
    async (uri?: vscode.Uri, options?: Partial<DiscoverChoices>): Promise<DiscoverOutcome | undefined> => {
      const task = uri ?? vscode.window.activeTextEditor?.document.uri;
      if (!task || !/\.task\.jsonl$/i.test(task.fsPath))
        return c.fail(
          new InputError(
            'Discover Circuit needs a task file (*.task.jsonl). Choose one in the explorer, open one, or create one with "LRP Lens: New Task File…".',
          ),
          { what: WHAT },
        );
      const folder = c.outputFolder(task);
      if (!folder)
        return c.fail(new InputError('Open a workspace folder first: circuits are written to its lrpLens.outputFolder.'), { what: WHAT });
      const choices = options ? withDefaults(options) : await pickChoices();
      if (!choices) return undefined;
      const settings = readSettings();
      const dir = circuitDir(folder, task.fsPath, choices);
      try {
        const record = await c.withEngineProgress(
          'circuit',
          {
            ...choices,
            model: settings.model,
            device: settings.device,
            execution: settings.execution,
            memoryLimit: settings.memoryLimit,
            task: task.fsPath,
            out: dir,
          },
          { title: `LRP Lens: discovering a circuit (${choices.method}, ${choices.granularity})`, percent: sweepPercent },
        );
        c.log.info(
          `circuit ${record.task.name}: ${record.method}/${record.granularity} ${(record.circuit.sparsity * 100).toFixed(1)}% pruned, ${(record.circuit.retained * 100).toFixed(1)}% kept → ${dir}`,
        );
        c.circuitsView.refresh();
        c.circuitPanels.show(join(dir, 'circuit.json'));
        return { record, dir };
      } catch (err) {
        return c.fail(err, { what: WHAT, source: task });
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
