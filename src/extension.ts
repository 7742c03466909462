/** LRP Lens: build the container, register each command, and stop the engine on deactivate. */
import type * as vscode from 'vscode';
import { Container } from './container';
import { registerComputeRelevance } from './commands/computeRelevance';
import { registerAttributeWithLrp } from './commands/attributeWithLrp';
import { registerExportRelevance } from './commands/exportRelevance';
import { registerCircuits } from './commands/manageCircuits';
import { registerClearHeatmap, registerRestartEngine, registerSelectModel, registerShowLog } from './commands/engineCommands';
import { registerPruneModel } from './commands/pruneModel';
import { registerCorrectBehaviour } from './commands/correctBehaviour';
import { registerApplyMask, registerClearMask, registerOpenReport, restoreAppliedMask } from './commands/applyMask';

let container: Container | undefined;

/** Set by the bundle's first line (esbuild.mjs): activation time counts loading this module's code too. */
declare const LRP_LENS_LOAD_START: number | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const called = performance.now();
  const started = typeof LRP_LENS_LOAD_START === 'number' ? LRP_LENS_LOAD_START : called;
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
  );
  void restoreAppliedMask(container);
  const [total, loading] = [performance.now() - started, called - started].map((ms) => ms.toFixed(1));
  container.log.info(
    `LRP Lens ${context.extension.packageJSON.version} activated in ${total} ms (code loading ${loading} ms) from ${context.extensionPath}`,
  );
}

export function deactivate(): Promise<void> | undefined {
  const c = container;
  container = undefined;
  return c ? Promise.resolve(c.client.dispose()).then(() => undefined) : undefined;
}
