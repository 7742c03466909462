/** Status bar item: model, device, last run time; click → Select Model. */
import * as vscode from 'vscode';
import { basename } from 'node:path';
import { Disposable } from '../dispose';
import type { Settings } from '../settings';

export class StatusBar extends Disposable {
  private readonly item = this.register(vscode.window.createStatusBarItem('lrpLens.status', vscode.StatusBarAlignment.Right, 100));

  constructor() {
    super();
    this.item.name = 'LRP Lens';
    this.item.command = 'lrpLens.selectModel';
  }

  update(settings: Settings, state: { device?: string; lastRunMs?: number; busy?: boolean } = {}): void {
    const model = basename(settings.model) || settings.model;
    const time = state.lastRunMs !== undefined ? ` · ${state.lastRunMs.toFixed(0)} ms` : '';
    this.item.text = `${state.busy ? '$(sync~spin)' : '$(pulse)'} LRP ${model} · ${state.device ?? settings.device}${time}`;
    this.item.tooltip = `LRP Lens — model ${settings.model}, rule ${settings.rule}. Click to select a model.`;
    this.item.show();
  }
}
