/** "LRP Lens: Select Model…": a model folder or a hub id into lrpLens.model, then what `lrp-lens inspect` says of it. */
import * as vscode from 'vscode';
import type { Container } from '../container';
import { readSettings } from '../settings';
import type { Dtype } from '../engine/hub/variants';
import { selectHubModel } from './selectHubModel';
import type { HubModelOutcome } from './selectHubModel';

export function registerSelectModel(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.selectModel', async (args?: { hubId?: string; dtype?: Dtype }) => {
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showErrorMessage(
        'LRP Lens: this workspace is not trusted, so its model path cannot be set. Trust the workspace first.',
      );
      return;
    }
    if (args?.hubId) return afterHubPick(c, await selectHubModel(c, args.hubId, { dtype: args.dtype }));
    const pick = await vscode.window.showQuickPick(
      [
        { label: '$(folder) Choose a model folder…', id: 'folder' },
        { label: '$(cloud-download) Enter a Hugging Face hub id…', id: 'hub' },
      ],
      { title: `LRP Lens model (now ${readSettings().model})` },
    );
    let model: string | undefined;
    if (pick?.id === 'folder') {
      const uris = await vscode.window.showOpenDialog({
        canSelectFolders: true,
        canSelectFiles: false,
        openLabel: 'Use this model folder',
      });
      model = uris?.[0]?.fsPath;
    } else if (pick?.id === 'hub') {
      model = await vscode.window.showInputBox({
        title: 'Hub id of a model in the transformers.js layout',
        placeHolder: 'onnx-community/SmolLM2-135M-ONNX',
        validateInput: (v) => (/^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(v) ? undefined : 'Expected owner/name (optionally @revision)'),
      });
      return model ? afterHubPick(c, await selectHubModel(c, model)) : undefined;
    }
    if (!model) return;
    const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await vscode.workspace.getConfiguration('lrpLens').update('model', model, target);
    c.status.update(readSettings());
    c.log.info(`model set to ${model}`);
    await showModelFacts(c, readSettings().model);
  });
}

async function afterHubPick(c: Container, outcome: HubModelOutcome): Promise<HubModelOutcome> {
  c.status.update(readSettings());
  if (outcome && !('error' in outcome)) await showModelFacts(c, outcome.model);
  return outcome;
}

/** The facts `lrp-lens inspect` prints, for the model just selected: whether it can be attributed, and why not. */
async function showModelFacts(c: Container, model: string): Promise<void> {
  try {
    const r = await c.withEngineProgress(
      'inspect',
      { model, dtype: readSettings().dtype },
      { title: 'LRP Lens: inspecting model', location: 'window' },
    );
    const facts =
      `${r.family ?? '?'}, ${r.layers ?? '?'} layers, ${r.heads ?? '?'} heads (${r.kvHeads ?? '?'} KV), hidden ${r.hiddenSize ?? '?'}, ` +
      `${(r.parameters / 1e6).toFixed(1)}M parameters, ${Object.keys(r.precision).join('/') || '?'}; ${r.exportStyle}` +
      (Object.keys(r.rewrites).length
        ? `; rewrites ${Object.entries(r.rewrites)
            .map(([k, v]) => `${k} ×${v}`)
            .join(', ')}`
        : '');
    c.log.info(`inspect ${model}: ${facts}`);
    if (r.attribution.supported) void vscode.window.showInformationMessage(`LRP Lens: ${facts}. Attribution supported.`);
    else
      void vscode.window
        .showWarningMessage(`LRP Lens: this model cannot be attributed: ${r.attribution.reason}`, 'Show Log')
        .then((pick) => pick && c.log.show());
  } catch (err) {
    c.fail(err, { what: 'inspecting the model' });
  }
}
