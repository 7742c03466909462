/** A mask's two files. Its own module so the extension host can name them without loading the ONNX reader. */
import { resolve } from 'node:path';

export interface MaskPaths {
  safetensors: string;
  manifest: string;
}

/** `dir/name`, `dir/name.safetensors` or `dir/name.json` → both files of the pair. */
export function maskPaths(path: string): MaskPaths {
  const base = resolve(path).replace(/\.(safetensors|json)$/, '');
  return { safetensors: `${base}.safetensors`, manifest: `${base}.json` };
}
