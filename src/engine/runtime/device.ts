/**
 * Execution-provider choice. onnxruntime-node bundles the CPU provider; the CUDA 12 provider libraries are
 * installed by `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12` (or placed by the user) next to
 * the binding. `cuda` falls back to the CPU with a warning when they are missing or do not load, unless the
 * caller insists (`strictDevice`), which makes it an error naming the fix.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LrpLensError } from '../errors';

export type Device = 'cpu' | 'cuda';

const CUDA_LIBRARIES = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];

export const CUDA_INSTALL_HINT =
  'Install the CUDA 12 provider with `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12` ' +
  '(needs CUDA 12 and cuDNN 9 on the machine), or use --device cpu.';

/** The folder holding onnxruntime-node's native binding, where provider libraries must sit. */
export function bindingDir(): string {
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

export interface CudaStatus {
  installed: boolean;
  dir: string;
  missing: string[];
}

export function cudaStatus(): CudaStatus {
  const dir = bindingDir();
  const names = process.platform === 'win32' ? CUDA_LIBRARIES.map((l) => l.replace(/^lib/, '').replace(/\.so$/, '.dll')) : CUDA_LIBRARIES;
  const missing = names.filter((l) => !existsSync(join(dir, l)));
  return { installed: missing.length === 0, dir, missing };
}

export interface DeviceChoice {
  device: Device;
  warning?: string;
}

/** Decides the provider before a session is made: CUDA only where its libraries are installed. */
export function chooseDevice(requested: Device, strict: boolean): DeviceChoice {
  if (requested === 'cpu') return { device: 'cpu' };
  const status = cudaStatus();
  if (status.installed) return { device: 'cuda' };
  const why = `The CUDA execution provider is not installed (missing ${status.missing.join(', ')} in ${status.dir}).`;
  if (strict) throw new LrpLensError('bad-argument', `${why} ${CUDA_INSTALL_HINT}`);
  return { device: 'cpu', warning: `${why} Running on the CPU. ${CUDA_INSTALL_HINT}` };
}
