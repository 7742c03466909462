/**
 * "Prune Model…": method, sparsity, reference and (optional) evaluation file by quick picks — or all given as an
 * argument, which skips the picks (scripts and tests) — then `prune` in the engine with progress and Cancel, the
 * mask and its report written into lrpLens.outputFolder/masks, and the pruning diff panel opened.
 */
import * as vscode from 'vscode';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { byFraction } from '../container';
import type { Container } from '../container';
import type { PruneReport } from '../engine/pruning/pruneRun';
import { reportKind } from '../views/reportPanel/viewModel';
import type { CompareReport } from '../views/reportPanel/viewModel';
import { readSettings } from '../settings';
import { InputError } from '../inputError';
import { checkedFile, pickWorkspaceFile, requireOutputFolder } from './pickInputs';

export const PRUNE_METHODS = ['lrp', 'wanda', 'magnitude', 'gradient', 'random'] as const;

export interface PruneArgs {
  method: string;
  sparsity: number;
  /** Needed by lrp, wanda and gradient. */
  reference?: string;
  eval?: string;
  /** Prompts to generate from before and after (default: two story openings, DEFAULT_PROMPTS). */
  prompts?: string[];
  samples?: number;
  seqLen?: number;
  /** Mask name (default `<method>-<percent>`). */
  name?: string;
}

export type PruneOutcome = { report: PruneReport; reportPath: string } | { error: { reason: string; message: string } };

const DEFAULT_PROMPTS = ['Once upon a time, there was a little girl named', 'One day, Tom went to the park and'];

async function pickArgs(): Promise<PruneArgs | undefined> {
  const method = (
    await vscode.window.showQuickPick(
      [
        { label: 'lrp', description: 'mean weight relevance over the reference (AttnLRP)' },
        { label: 'wanda', description: '|W|·‖X‖₂ over the reference' },
        { label: 'magnitude', description: '|W|, needs no data' },
        { label: 'gradient', description: '|W·∂logit/∂W| over the reference' },
        { label: 'random', description: 'seeded baseline' },
      ],
      { title: 'Prune Model: scoring method' },
    )
  )?.label;
  if (!method) return undefined;
  const sparsity = await pickSparsity();
  if (sparsity === undefined) return undefined;
  let reference: string | undefined;
  if (method !== 'magnitude' && method !== 'random') {
    const r = await pickWorkspaceFile(`Prune Model: reference text for ${method} (plain text or *.prompts.jsonl)`);
    if (!r) return undefined;
    reference = r;
  }
  const evaluation = await pickWorkspaceFile('Prune Model: evaluation text for perplexity (optional)', { optional: true });
  if (evaluation === undefined) return undefined;
  return { method, sparsity, reference, eval: evaluation ?? undefined };
}

async function pickSparsity(): Promise<number | undefined> {
  const items = ['0.3', '0.5', '0.6', '0.7'].map((label) => ({
    label,
    description: `${Math.round(Number(label) * 100)}% of each row's weights`,
  }));
  const qp = vscode.window.createQuickPick();
  qp.title = 'Prune Model: sparsity (pick one or type a fraction in [0, 1))';
  qp.items = items;
  return new Promise((done) => {
    qp.onDidAccept(() => {
      const value = Number(qp.selectedItems[0]?.label ?? qp.value);
      if (!Number.isFinite(value) || value <= 0 || value >= 1) {
        qp.placeholder = `'${qp.value}' is not a fraction between 0 and 1; type e.g. 0.5`;
        return;
      }
      done(value);
      qp.hide();
    });
    qp.onDidHide(() => {
      done(undefined);
      qp.dispose();
    });
    qp.show();
  });
}

function checkArgs(a: PruneArgs): void {
  if (!(PRUNE_METHODS as readonly string[]).includes(a.method))
    throw new InputError(`Unknown pruning method '${a.method}'. Use one of ${PRUNE_METHODS.join(', ')}.`);
  if (!(a.sparsity > 0 && a.sparsity < 1)) throw new InputError(`Sparsity ${a.sparsity} is not a fraction in (0, 1). Give e.g. 0.5.`);
  if (!a.reference && a.method !== 'magnitude' && a.method !== 'random') {
    throw new InputError(
      `The ${a.method} method needs a reference file (text or *.prompts.jsonl) to score the weights on. Pick one, or use magnitude.`,
    );
  }
}

/** A compare report (`lrp-lens compare --json lrp/compare.json`) of the same model, for the method curves. */
function compareFor(folder: string, model: string): CompareReport | undefined {
  const path = join(folder, 'compare.json');
  if (!existsSync(path)) return undefined;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as CompareReport;
    return reportKind(r) === 'compare' && r.model === model ? r : undefined;
  } catch {
    return undefined;
  }
}

export async function pruneModel(c: Container, args: PruneArgs): Promise<PruneOutcome> {
  checkArgs(args);
  const folder = requireOutputFolder(c.outputFolder());
  const settings = readSettings();
  const name = args.name ?? `${args.method}-${Math.round(args.sparsity * 100)}`;
  const out = join(folder, 'masks', name);
  const report = await c.withEngineProgress(
    'prune',
    {
      model: settings.model,
      device: settings.device,
      execution: settings.execution,
      memoryLimit: settings.memoryLimit,
      method: args.method,
      sparsity: [args.sparsity],
      reference: args.reference && checkedFile(args.reference, 'reference'),
      eval: args.eval && checkedFile(args.eval, 'evaluation'),
      samples: args.samples,
      seqLen: args.seqLen,
      promptList: args.prompts ?? DEFAULT_PROMPTS,
      generationTokens: 30,
      out,
    },
    { title: `LRP Lens: pruning with ${args.method} at ${Math.round(args.sparsity * 100)}%`, percent: byFraction },
  );
  mkdirSync(join(folder, 'masks'), { recursive: true });
  const reportPath = `${out}.report.json`;
  writeFileSync(reportPath, JSON.stringify(report, null, 2) + '\n');
  c.log.info(
    `pruned with ${args.method} at ${args.sparsity}: perplexity ${report.dense.perplexity?.toFixed(3) ?? '-'} → ${report.points[0].perplexity?.toFixed(3) ?? '-'}; mask ${report.points[0].mask}`,
  );
  c.reports.show({ report, reportPath, compare: compareFor(folder, report.model.ref) });
  return { report, reportPath };
}

export function registerPruneModel(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.pruneModel', async (given?: PruneArgs): Promise<PruneOutcome | undefined> => {
    try {
      const args = given ?? (await pickArgs());
      return args ? await pruneModel(c, args) : undefined;
    } catch (err) {
      return c.fail(err, { what: 'pruning' });
    }
  });
}
