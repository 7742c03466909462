/**
 * "Correct Behaviour…": the undesired set (*.prompts.jsonl), the general set, the behaviour metric and the
 * counts by quick picks — or all given as an argument — then `correct` in the engine with progress and Cancel,
 * the chosen mask and its report written into lrpLens.outputFolder/masks, and the correction panel opened.
 */
import * as vscode from 'vscode';
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { byFraction } from '../container';
import type { Container } from '../container';
import type { CorrectReport } from '../engine/correction/correctionRun';
import { readSettings } from '../settings';
import { InputError } from '../inputError';
import { checkedFile, pickWorkspaceFile, requireOutputFolder } from './pickInputs';

export interface CorrectArgs {
  undesired: string;
  general: string;
  heldOut?: string;
  metric?: string;
  counts: number[];
  granularity?: 'neurons' | 'weights';
  layers?: string;
  method?: 'lrp' | 'wanda' | 'gradient';
  samples?: number;
  seqLen?: number;
  steps?: number;
  name?: string;
}

export type CorrectOutcome = { report: CorrectReport; reportPath: string } | { error: { reason: string; message: string } };

async function pickArgs(): Promise<CorrectArgs | undefined> {
  const undesired = await pickWorkspaceFile('Correct Behaviour: prompts that trigger the undesired behaviour (*.prompts.jsonl)', {
    glob: '**/*.prompts.jsonl',
  });
  if (!undesired) return undefined;
  const general = await pickWorkspaceFile('Correct Behaviour: general text whose ability should stay');
  if (!general) return undefined;
  const metric = await vscode.window.showQuickPick(
    [
      { label: 'repetition', description: 'unique ÷ total tokens of 50 greedy tokens (higher is better)' },
      { label: 'word-rate', description: 'probability of the prompts\' "target" words next (lower is better)' },
    ],
    { title: 'Correct Behaviour: behaviour metric' },
  );
  if (!metric) return undefined;
  const counts = await vscode.window.showInputBox({
    title: 'Correct Behaviour: how many neurons to prune (a count or a list to sweep)',
    value: '5,10,20',
    validateInput: (v) => (parseCounts(v) ? undefined : 'Whole numbers ≥ 1, e.g. 10 or 5,10,20'),
  });
  if (!counts) return undefined;
  return { undesired, general, metric: metric.label, counts: parseCounts(counts)! };
}

export function parseCounts(v: string): number[] | undefined {
  const list = v.split(',').map((s) => Number(s.trim()));
  return list.length > 0 && list.every((n) => Number.isInteger(n) && n >= 1) ? list : undefined;
}

export async function correctBehaviour(c: Container, args: CorrectArgs): Promise<CorrectOutcome> {
  if (!args.counts?.length) throw new InputError('No count given: say how many components to prune, e.g. 10, or a list such as 5,10,20.');
  const folder = requireOutputFolder(c.outputFolder());
  const settings = readSettings();
  const name = args.name ?? `correct-${basename(args.undesired).replace(/\..*$/, '')}`;
  const out = join(folder, 'masks', name);
  const report = await c.withEngineProgress(
    'correct',
    {
      model: settings.model,
      device: settings.device,
      execution: settings.execution,
      memoryLimit: settings.memoryLimit,
      undesired: checkedFile(args.undesired, 'undesired'),
      general: checkedFile(args.general, 'general'),
      heldOut: args.heldOut && checkedFile(args.heldOut, 'held-out'),
      metric: args.metric ?? 'repetition',
      counts: args.counts,
      granularity: args.granularity ?? 'neurons',
      layers: args.layers,
      method: args.method ?? 'lrp',
      samples: args.samples,
      seqLen: args.seqLen,
      steps: args.steps,
      out,
    },
    { title: `LRP Lens: correcting (${args.metric ?? 'repetition'})`, percent: byFraction },
  );
  const reportPath = `${out}.report.json`;
  writeFileSync(reportPath, JSON.stringify(report, null, 2) + '\n');
  c.log.info(
    `correction: chose ${report.chosen.count} ${report.granularity}; ${report.metric.kind} ${report.dense.behaviour.toFixed(4)} → ${report.points.find((p) => p.count === report.chosen.count)?.behaviour.toFixed(4)}; mask ${report.chosen.mask}`,
  );
  c.reports.show({ report, reportPath });
  return { report, reportPath };
}

export function registerCorrectBehaviour(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.correctBehaviour', async (given?: CorrectArgs): Promise<CorrectOutcome | undefined> => {
    try {
      const args = given ?? (await pickArgs());
      return args ? await correctBehaviour(c, args) : undefined;
    } catch (err) {
      return c.fail(err, { what: 'correction' });
    }
  });
}
