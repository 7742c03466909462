/** The extension's settings (lrpLens.*), read fresh each time so edits apply without a reload. */
import * as vscode from 'vscode';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { RelevanceMode } from './engine/relevance/mode';
import type { Device } from './engine/runtime/device';
import { DEFAULT_MODEL } from './engine/runtime/defaultModel';
import { isDtype } from './engine/hub/variants';
import type { Dtype } from './engine/hub/variants';
import { EXECUTION_CHOICES } from './engine/runtime/execution';
import type { ExecutionChoice } from './engine/runtime/execution';

export interface Settings {
  model: string;
  device: Device;
  rule: RelevanceMode;
  maxTokens: number;
  outputFolder: string;
  /** Hub models: the precision variant; undefined ('auto'): the smallest the engine attributes exactly. */
  dtype?: Dtype;
  /** Monolithic graph, block-wise, or auto (by the memory estimate). */
  execution: ExecutionChoice;
  /** Refuse runs estimated above this ('8GB'); undefined: the memory available. */
  memoryLimit?: string;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration('lrpLens');
  return {
    model: resolveModelSetting(c.get<string>('model', '') || DEFAULT_MODEL),
    device: c.get<Device>('device', 'cpu'),
    rule: c.get<RelevanceMode>('rule', 'attnlrp'),
    maxTokens: c.get<number>('maxTokens', 512),
    outputFolder: c.get<string>('outputFolder', 'lrp'),
    dtype: dtypeSetting(c.get<string>('dtype', 'auto')),
    execution: executionSetting(c.get<string>('execution', 'auto')),
    memoryLimit: c.get<string>('memoryLimit', '').trim() || undefined,
  };
}

function executionSetting(v: string): ExecutionChoice {
  return (EXECUTION_CHOICES as string[]).includes(v) ? (v as ExecutionChoice) : 'auto';
}

function dtypeSetting(v: string): Dtype | undefined {
  return isDtype(v) ? v : undefined;
}

/** A relative path that exists in the first workspace folder is that folder; otherwise the value (a hub id). */
function resolveModelSetting(model: string): string {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  if (!root || isAbsolute(model)) return model;
  const inWorkspace = join(root, model);
  return existsSync(inWorkspace) ? inWorkspace : model;
}
