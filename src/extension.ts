/** LRP Lens: build the container, register each command, and stop the engine on deactivate. */
import type * as vscode from 'vscode';
import { Container } from './container';
import { registerComputeRelevance } from './commands/computeRelevance';
import { registerAttributeWithLrp } from './commands/attributeWithLrp';
import { registerExportRelevance } from './commands/exportRelevance';
import { registerCircuits } from './commands/manageCircuits';
import { registerClearHeatmap, registerRestartEngine, registerSelectModel, registerShowLog } from './commands/engineCommands';
import { registerPruneModel } from './commands/pruneModel';
import { registerSetHubToken, TOKEN_SECRET } from './commands/selectHubModel';
import { registerCorrectBehaviour } from './commands/correctBehaviour';
import { registerApplyMask, registerClearMask, registerOpenReport, restoreAppliedMask } from './commands/applyMask';

let container: Container | undefined;

export function activate(context: vscode.ExtensionContext): void {
  container = new Container(context);
  context.subscriptions.push(
    container,
    registerComputeRelevance(container),
    registerAttributeWithLrp(container),
    registerSelectModel(container),
    registerClearHeatmap(container),
    registerRestartEngine(container),
    registerShowLog(container),
    registerExportRelevance(container),
    registerCircuits(container),
    registerPruneModel(container),
    registerCorrectBehaviour(container),
    registerApplyMask(container),
    registerClearMask(container),
    registerOpenReport(container),
    registerSetHubToken(container),
  );
  const c = container;
  void Promise.resolve(context.secrets.get(TOKEN_SECRET)).then((token) => (c.hubToken = token));
  void restoreAppliedMask(container);
}

export function deactivate(): Promise<void> | undefined {
  const c = container;
  container = undefined;
  return c ? Promise.resolve(c.client.dispose()).then(() => undefined) : undefined;
}
