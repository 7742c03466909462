/**
 * A mask's bits as a safetensors file: one tensor per masked initializer, named as the ONNX initializer: dtype U8,
 * shape [ceil(n / 8)], n = the initializer's element count. Element j (row-major, the initializer's own order)
 * is bit j % 8 of byte ⌊j / 8⌋, least significant bit first (numpy's `packbits(bitorder='little')`); 1 = kept,
 * 0 = pruned; the unused high bits of the last byte are 0. The initializers' dims are in the header's
 * `__metadata__.dims` (a JSON string: name → dims), with `format` = "lrp-lens-mask" and `bit_order` = "little".
 */
import { LrpLensError } from '../errors';
import type { Mask, WeightMask } from '../weights/types';
import { decodeSafetensors, encodeSafetensors } from './safetensors';
import type { SafetensorsEntry } from './safetensors';

export const MASK_FORMAT = 'lrp-lens-mask';
export const MASK_VERSION = 1;

/** keep[j] → bit j % 8 of byte ⌊j / 8⌋ (LSB first). */
export function packBits(keep: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(keep.length / 8));
  for (let j = 0; j < keep.length; j++) if (keep[j] !== 0) out[j >>> 3] |= 1 << (j & 7);
  return out;
}

export function unpackBits(packed: Uint8Array, n: number): Uint8Array {
  const keep = new Uint8Array(n);
  for (let j = 0; j < n; j++) keep[j] = (packed[j >>> 3] >>> (j & 7)) & 1;
  return keep;
}

// ---- safetensors ---------------------------------------------------------------------------------------------

/** The safetensors bytes of a mask: one U8 tensor of packed bits per initializer; dims in the metadata. */
export function encodeMaskSafetensors(mask: Mask): Uint8Array {
  const names = [...mask.keys()].sort();
  const metadata = {
    format: MASK_FORMAT,
    version: String(MASK_VERSION),
    bit_order: 'little',
    dims: JSON.stringify(Object.fromEntries(names.map((n) => [n, mask.get(n)!.dims]))),
  };
  return encodeSafetensors(
    names.map((n) => ({ name: n, dtype: 'U8' as const, shape: [Math.ceil(mask.get(n)!.keep.length / 8)], data: packMaskEntry(n, mask) })),
    metadata,
  );
}

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function packMaskEntry(name: string, mask: Mask): Uint8Array {
  const m = mask.get(name)!;
  if (m.keep.length !== elementCount(m.dims)) {
    throw new LrpLensError(
      'bad-argument',
      `The mask for ${name} holds ${m.keep.length} flags but its dims [${m.dims.join(', ')}] have ${elementCount(m.dims)} elements. Recompute the mask.`,
    );
  }
  return packBits(m.keep);
}

export function notAMaskFile(source: string, why: string): LrpLensError {
  return new LrpLensError('bad-argument', `${source} is not a valid LRP Lens mask file: ${why}. Recompute the mask or restore the file.`);
}

/** Parses and checks a mask safetensors file: U8 tensors, lengths matching the recorded dims, offsets in range. */
export function decodeMaskSafetensors(bytes: Uint8Array, source = 'mask'): Mask {
  const file = decodeSafetensors(bytes, (why) => notAMaskFile(source, why));
  const dims = recordedDims(file.metadata, source);
  const mask: Mask = new Map();
  for (const [name, entry] of file.tensors) mask.set(name, decodeEntry(name, entry, dims[name], source));
  for (const name of Object.keys(dims))
    if (!mask.has(name)) throw notAMaskFile(source, `the metadata lists ${name} but no tensor holds its bits`);
  return mask;
}

function recordedDims(meta: Record<string, string>, source: string): Record<string, number[]> {
  if (meta.format !== MASK_FORMAT)
    throw notAMaskFile(source, `its metadata does not say format "${MASK_FORMAT}" (a safetensors file, but not a mask)`);
  if (meta.bit_order !== 'little') throw notAMaskFile(source, `bit order "${meta.bit_order}" is not "little"`);
  try {
    return JSON.parse(meta.dims) as Record<string, number[]>;
  } catch {
    throw notAMaskFile(source, 'its metadata holds no readable dims');
  }
}

function decodeEntry(name: string, entry: SafetensorsEntry, dims: number[] | undefined, source: string): WeightMask {
  if (entry.dtype !== 'U8') throw notAMaskFile(source, `tensor ${name} has dtype ${entry.dtype}, not U8`);
  if (entry.shape.length !== 1) throw notAMaskFile(source, `tensor ${name} has shape ${JSON.stringify(entry.shape)}, not [bytes]`);
  if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0))
    throw notAMaskFile(source, `the metadata gives no dims for ${name}`);
  const n = elementCount(dims);
  if (Math.ceil(n / 8) !== entry.shape[0])
    throw notAMaskFile(source, `tensor ${name} holds ${entry.shape[0]} bytes but dims [${dims.join(', ')}] need ${Math.ceil(n / 8)}`);
  return { dims: [...dims], keep: unpackBits(entry.data, n) };
}
