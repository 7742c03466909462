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

  private last?: { settings: Settings; state: StatusState };
  private mask?: { name: string; sparsity: number };

  update(settings: Settings, state: StatusState = {}): void {
    this.last = { settings, state };
    const model = basename(settings.model) || settings.model;
    const time = state.lastRunMs !== undefined ? ` · ${state.lastRunMs.toFixed(0)} ms` : '';
    const mask = this.mask ? ` · $(filter) ${this.mask.name} (${(this.mask.sparsity * 100).toFixed(0)}%)` : '';
    this.item.text = `${state.busy ? '$(sync~spin)' : '$(pulse)'} LRP ${model}${mask} · ${state.device ?? settings.device}${time}`;
    this.item.tooltip =
      `LRP Lens — model ${settings.model}, rule ${settings.rule}` +
      (this.mask ? `; mask ${this.mask.name} applied (attributions run on the pruned model; LRP Lens: Clear Mask removes it)` : '') +
      '. Click to select a model.';
    this.item.show();
  }

  /** Shows (or, with undefined, stops showing) the applied mask. */
  setMask(mask: { name: string; sparsity: number } | undefined): void {
    this.mask = mask;
    if (this.last) this.update(this.last.settings, this.last.state);
  }

  /** The status bar's text now (tests read it). */
  get text(): string {
    return this.item.text;
  }
}

interface StatusState {
  device?: string;
  lastRunMs?: number;
  busy?: boolean;
}
