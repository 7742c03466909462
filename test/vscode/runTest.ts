/**
 * `npm run test:vscode`: downloads VS Code once (into .vscode-test/) with @vscode/test-electron and runs the
 * extension-host tests (test/vscode/*.test.ts) in it against a fresh workspace folder. Machines that cannot
 * download VS Code run the same tests inside code-server instead (test/e2e/run.sh).
 */
import { runTests } from '@vscode/test-electron';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

async function main(): Promise<void> {
  const root = resolve(__dirname, '..', '..', '..');
  const workspace = mkdtempSync(join(tmpdir(), 'lrp-lens-vscode-'));
  await runTests({
    extensionDevelopmentPath: root,
    extensionTestsPath: join(root, 'dist', 'test', 'vscode', 'index.js'),
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
    extensionTestsEnv: { LRP_LENS_SHARED: process.env.LRP_LENS_SHARED ?? resolve(root, '..', 'shared') },
  });
  console.log(`extension-host tests passed (results in ${join(workspace, '.lrp-lens-test-results.json')})`);
}

main().catch((err: Error) => {
  const offline = /ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN/.test(err.message);
  console.error(
    `extension-host tests failed: ${err.message}` +
      (offline
        ? '\n(VS Code could not be downloaded. `npm run test:e2e` runs the same tests inside code-server, installed from npm.)'
        : ''),
  );
  process.exit(1);
});
