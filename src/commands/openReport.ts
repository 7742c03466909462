/** "LRP Lens: Open Pruning or Correction Report": a *.report.json (from Prune Model…, Correct Behaviour… or the CLI) in its panel. */
import * as vscode from 'vscode';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Container } from '../container';
import type { PruneReport } from '../engine/pruning/pruneRun';
import type { CorrectReport } from '../engine/correction/correctionRun';
import { reportKind } from '../views/reportPanel/viewModel';
import { InputError } from '../inputError';

export function registerOpenReport(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.openReport', async (arg?: vscode.Uri) => {
    try {
      const uri = arg ?? vscode.window.activeTextEditor?.document.uri;
      if (!uri)
        throw new InputError(
          'No report given. Choose a *.report.json file written by Prune Model… or Correct Behaviour… (or lrp-lens prune/correct --json).',
        );
      c.reports.show({ report: parseReport(uri.fsPath), reportPath: uri.fsPath });
      return { opened: uri.fsPath };
    } catch (err) {
      return c.fail(err, { what: 'opening the report' });
    }
  });
}

function parseReport(path: string): PruneReport | CorrectReport {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InputError(
      `${basename(path)} is not readable JSON (${(err as Error).message}). Open a report written by Prune Model… or Correct Behaviour….`,
    );
  }
  const kind = reportKind(value);
  if (kind !== 'prune' && kind !== 'correct') {
    throw new InputError(
      `${basename(path)} is not a pruning or correction report (schema lrp-lens/prune@1 or lrp-lens/correct@1). Open the *.report.json beside a mask.`,
    );
  }
  return value as PruneReport | CorrectReport;
}
