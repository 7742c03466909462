/**
 * Hub choices that apply to every model a run resolves (the CLI's --dtype, the extension's lrpLens.dtype, the
 * progress display, the Cancel button), set once by the caller instead of threaded through every command.
 */
import type { ProgressListener } from '../progress';
import type { Dtype } from './variants';

export interface HubDefaults {
  dtype?: Dtype;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

let current: HubDefaults = {};

export function setHubDefaults(defaults: HubDefaults): void {
  current = { ...defaults };
}

export function hubDefaults(): HubDefaults {
  return current;
}
