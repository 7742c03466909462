/**
 * Extension-host test runner: VS Code calls run() inside the extension host, either through
 * @vscode/test-electron (`npm run test:vscode`) or through code-server's `extensionTestsPath` payload
 * (test/e2e/run.sh). Results go to a JSON file as well, since code-server does not report run()'s outcome:
 * $LRP_LENS_VSCODE_RESULTS, else `.lrp-lens-test-results.json` in the first workspace folder. $LRP_LENS_VSCODE_GREP
 * runs only the tests whose title matches it.
 */
import * as vscode from 'vscode';
import Mocha from 'mocha';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface TestRecord {
  title: string;
  state: 'passed' | 'failed' | 'pending';
  ms?: number;
  error?: string;
}

export function resultsFile(): string {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  return process.env.LRP_LENS_VSCODE_RESULTS ?? join(root ?? __dirname, '.lrp-lens-test-results.json');
}

export async function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 120_000, color: false, grep: process.env.LRP_LENS_VSCODE_GREP || undefined });
  for (const f of readdirSync(__dirname).filter((f) => f.endsWith('.test.js'))) mocha.addFile(join(__dirname, f));
  const tests: TestRecord[] = [];
  const failures = await new Promise<number>((resolve) => {
    const runner = mocha.run(resolve);
    runner.on('pass', (t) => tests.push({ title: t.fullTitle(), state: 'passed', ms: t.duration }));
    runner.on('fail', (t, err: Error) => tests.push({ title: t.fullTitle(), state: 'failed', error: err.stack ?? err.message }));
    runner.on('pending', (t) => tests.push({ title: t.fullTitle(), state: 'pending' }));
  });
  const summary = {
    vscode: vscode.version,
    node: process.version,
    passes: tests.filter((t) => t.state === 'passed').length,
    failures,
    tests,
  };
  writeFileSync(resultsFile(), JSON.stringify(summary, null, 2) + '\n');
  if (failures > 0) throw new Error(`${failures} extension-host test(s) failed`);
}
