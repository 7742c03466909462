/** LRP Lens: build the container, register each command, and stop the engine on deactivate. */
import type * as vscode from 'vscode';
import { Container } from './container';
import { registerComputeRelevance } from './commands/computeRelevance';
import { registerAttributeWithLrp } from './commands/attributeWithLrp';
import { registerExportRelevance } from './commands/exportRelevance';
import { registerSelectModel } from './commands/selectModel';
import { registerClearHeatmap } from './commands/clearHeatmap';
import { registerRestartEngine } from './commands/restartEngine';
import { registerShowLog } from './commands/showLog';
import { registerDiscoverCircuit } from './commands/discoverCircuit';
import { registerNewTaskFile } from './commands/newTaskFile';
import { registerRefreshCircuits } from './commands/refreshCircuits';
import { registerOpenCircuit } from './commands/openCircuit';
import { registerApplyCircuitMask } from './commands/applyCircuitMask';
import { registerDeleteCircuit } from './commands/deleteCircuit';
import { registerRevealCircuit } from './commands/revealCircuit';
import { registerPruneModel } from './commands/pruneModel';
import { registerSetHubToken, TOKEN_SECRET } from './commands/selectHubModel';
import { registerCorrectBehaviour } from './commands/correctBehaviour';
import { registerApplyMask } from './commands/applyMask';
import { registerClearMask } from './commands/clearMask';
import { registerOpenReport } from './commands/openReport';

let container: Container | undefined;

/** Set by the bundle's first and last lines (esbuild.mjs): activation time counts loading this module's code too. */
declare const LRP_LENS_LOAD_START: number | undefined;
declare const LRP_LENS_LOAD_END: number | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const called = performance.now();
  const started = typeof LRP_LENS_LOAD_START === 'number' ? LRP_LENS_LOAD_START : called;
  const loaded = typeof LRP_LENS_LOAD_END === 'number' ? LRP_LENS_LOAD_END : called;
  const c = (container = new Container(context));
  context.subscriptions.push(
    c,
    registerComputeRelevance(c),
    registerAttributeWithLrp(c),
    registerSelectModel(c),
    registerClearHeatmap(c),
    registerRestartEngine(c),
    registerShowLog(c),
    registerExportRelevance(c),
    registerDiscoverCircuit(c),
    registerNewTaskFile(c),
    registerRefreshCircuits(c),
    registerOpenCircuit(c),
    registerApplyCircuitMask(c),
    registerDeleteCircuit(c),
    registerRevealCircuit(),
    registerPruneModel(c),
    registerCorrectBehaviour(c),
    registerApplyMask(c),
    registerClearMask(c),
    registerOpenReport(c),
    registerSetHubToken(c),
  );
  void Promise.resolve(context.secrets.get(TOKEN_SECRET)).then((token) => (c.hubToken = token));
  void c.restoreAppliedMask();
  // As VS Code counts an extension's activation: loading its code plus the activate() call; the time VS Code
  // spends between loading the module and calling activate() is its own, logged apart.
  const body = performance.now() - called;
  const [total, loading, waiting] = [loaded - started + body, loaded - started, called - loaded].map((ms) => ms.toFixed(1));
  c.log.info(
    `LRP Lens ${context.extension.packageJSON.version} activated in ${total} ms (code loading ${loading} ms, activate ${body.toFixed(1)} ms; ` +
      `VS Code's own time before activate ${waiting} ms) from ${context.extensionPath}`,
  );
}

/** Disposes everything once and resolves when the engine process has exited. */
export function deactivate(): Promise<void> | undefined {
  const c = container;
  container = undefined;
  return c?.shutdown();
}
