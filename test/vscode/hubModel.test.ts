/**
 * Select Model… with a hub id, against the mock hub (test/support/mockHub.ts) started inside the extension host
 * and reached by the engine process through HF_ENDPOINT: the variant list with sizes before any download, the
 * download, the settings, an attribution that records the resolved commit, and a gated repo's message.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AttributionOutcome } from '../../src/container';
import type { HubModelOutcome } from '../../src/commands/selectHubModel';
import { startMockHub } from '../support/mockHub';
import type { MockHub } from '../support/mockHub';
import { GATED_REPO, REPO, stories260kRepos } from '../support/hubRepos';

const ENV = ['HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME', 'HF_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_OFFLINE', 'LRP_LENS_OFFLINE'];
const extensionPath = () => vscode.extensions.getExtension('lrp-lens.lrp-lens')!.extensionPath;
const stories = () => join(process.env.LRP_LENS_SHARED ?? resolve(extensionPath(), '..', 'shared'), 'models', 'stories260k');

describe('Select Model… with a hub id (mock hub through HF_ENDPOINT)', function () {
  let hub: MockHub;
  let work: string;
  const saved: Record<string, string | undefined> = {};

  before(async function () {
    if (!existsSync(join(stories(), 'onnx', 'model.onnx'))) {
      console.log(`skipping: stories260k not found at ${stories()} (set LRP_LENS_SHARED)`);
      this.skip();
    }
    hub = await startMockHub(stories260kRepos(stories()));
    work = mkdtempSync(join(tmpdir(), 'lrp-hub-host-'));
    for (const k of ENV) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
    Object.assign(process.env, { HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(work, 'hub'), HF_HOME: join(work, 'home') });
    await vscode.commands.executeCommand('lrpLens.restartEngine'); // the engine starts again with this environment
  });

  after(async () => {
    if (!hub) return;
    for (const k of ENV)
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    for (const key of ['model', 'dtype'])
      await vscode.workspace.getConfiguration('lrpLens').update(key, undefined, vscode.ConfigurationTarget.Workspace);
    await vscode.commands.executeCommand('lrpLens.restartEngine');
    await hub.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('lists the variants with sizes, downloads the one picked, sets lrpLens.model / lrpLens.dtype, and attributes with it', async () => {
    const outcome = await vscode.commands.executeCommand<HubModelOutcome>('lrpLens.selectModel', { hubId: REPO, dtype: 'fp32' });
    assert.ok(outcome && !('error' in outcome), JSON.stringify(outcome));
    const commit = hub.commitOf(REPO);
    assert.equal(outcome.ref, `${REPO}@${commit}`);
    assert.deepEqual(
      outcome.items.map((i) => i.replace(/[\d.]+ (KB|MB)/, 'SIZE')),
      ['fp32 SIZE', 'fp16 (default) SIZE'],
    );
    const config = vscode.workspace.getConfiguration('lrpLens');
    assert.equal(config.get('model'), REPO);
    assert.equal(config.get('dtype'), 'fp32');
    assert.ok(existsSync(join(work, 'hub', 'models--lrp-test--stories260k', 'snapshots', commit, 'onnx', 'model.onnx')));

    const root = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const file = join(root, 'hub-model.prompt');
    writeFileSync(file, 'Once upon a time, there was a little girl named');
    const attributed = await vscode.commands.executeCommand<AttributionOutcome>('lrpLens.attributeFile', vscode.Uri.file(file));
    assert.ok(attributed && 'result' in attributed, JSON.stringify(attributed));
    assert.equal(attributed.result.model.ref, `${REPO}@${commit}`);
    assert.match(attributed.result.model.onnx, /onnx\/model\.onnx$/);
  });

  it('a gated repo without a token says how to give one', async () => {
    const outcome = await vscode.commands.executeCommand<HubModelOutcome>('lrpLens.selectModel', { hubId: GATED_REPO, dtype: 'fp32' });
    assert.ok(outcome && 'error' in outcome, JSON.stringify(outcome));
    assert.equal(outcome.error.reason, 'access-denied');
    assert.match(outcome.error.message, /gated.*Set Hugging Face Token/);
  });
});
