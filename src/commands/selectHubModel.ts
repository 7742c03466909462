/**
 * Select Model… for a hub id: the repo's variants with their sizes before anything is downloaded, then the
 * download of the chosen one in a notification with Cancel (a cancelled download keeps its partial file and
 * resumes next time), then lrpLens.model and lrpLens.dtype. Also: Set Hugging Face Token… (SecretStorage).
 */
import * as vscode from 'vscode';
import type { Container } from '../container';
import type { Dtype } from '../engine/hub/variants';
import { variantItems } from './hubVariantItems';

export const TOKEN_SECRET = 'lrpLens.hubToken';

export interface HubModelChoice {
  model: string;
  dtype: Dtype;
  /** `org/name@<commit>`, as reports record it. */
  ref: string;
  /** The list shown (label, size), for callers and tests. */
  items: string[];
}

export type HubModelOutcome = HubModelChoice | { error: { reason: string; message: string } } | undefined;

/** `preset.dtype` answers the variant pick (scripts and tests); without it the list is shown. */
export async function selectHubModel(c: Container, id: string, preset: { dtype?: Dtype } = {}): Promise<HubModelOutcome> {
  try {
    const list = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `LRP Lens: listing ${id}` }, () =>
      c.client.request('modelVariants', { model: id }),
    );
    const items = variantItems(list);
    if (items.length === 0) throw new Error(`${id} has no ONNX variants.`);
    const pick = preset.dtype
      ? items.find((i) => i.dtype === preset.dtype)
      : await vscode.window.showQuickPick(items, {
          title: `${list.repo}: choose a variant (nothing is downloaded yet)`,
          matchOnDetail: true,
        });
    if (!pick) return undefined;
    const fetched = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `LRP Lens: ${id} (${pick.dtype})`, cancellable: true },
      (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        let shown = 0;
        return c.client.request(
          'fetchModel',
          { model: id, dtype: pick.dtype },
          {
            signal: abort.signal,
            onProgress: (p) => {
              const increment = p.fraction === undefined ? undefined : Math.max(0, p.fraction * 100 - shown);
              if (p.fraction !== undefined) shown = p.fraction * 100;
              progress.report({ message: p.message, increment });
            },
          },
        );
      },
    );
    const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    const config = vscode.workspace.getConfiguration('lrpLens');
    await config.update('model', id, target);
    await config.update('dtype', pick.dtype, target);
    c.log.info(`model set to ${id} (${pick.dtype}): ${fetched.ref}`);
    return { model: id, dtype: pick.dtype, ref: fetched.ref, items: items.map((i) => `${i.label} ${i.description}`) };
  } catch (err) {
    const e = err as { reason?: string; message: string };
    c.log.error(`select model ${id}: ${e.message}`);
    void vscode.window.showErrorMessage(`LRP Lens: ${e.message}`);
    return { error: { reason: e.reason ?? 'internal', message: e.message } };
  }
}

export function registerSetHubToken(c: Container): vscode.Disposable {
  return vscode.commands.registerCommand('lrpLens.setHubToken', async (value?: string) => {
    const token =
      value ??
      (await vscode.window.showInputBox({
        title: 'Hugging Face access token (for gated models such as Llama)',
        prompt: 'Kept in VS Code SecretStorage and given to the engine as HF_TOKEN. Empty: forget the token.',
        password: true,
        ignoreFocusOut: true,
      }));
    if (token === undefined) return;
    if (token) await c.context.secrets.store(TOKEN_SECRET, token.trim());
    else await c.context.secrets.delete(TOKEN_SECRET);
    c.hubToken = token.trim() || undefined;
    await c.client.restart();
    c.log.info(token ? 'Hugging Face token stored' : 'Hugging Face token removed');
  });
}
