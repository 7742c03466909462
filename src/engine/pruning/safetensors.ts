/**
 * The safetensors container: 8-byte little-endian header length, a JSON header (tensor name → dtype, shape,
 * data_offsets; optional `__metadata__` of strings) padded with spaces to 8 bytes, then the raw data.
 */
import { LrpLensError } from '../errors';

export type SafetensorsDtype = 'U8' | 'F32';

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsEntry>;
}

export function encodeSafetensors(entries: SafetensorsEntry[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const e of entries) {
    if (e.name === '__metadata__')
      throw new LrpLensError(
        'bad-argument',
        "A tensor cannot be named '__metadata__' (safetensors reserves the name). Rename the initializer.",
      );
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.data.length] };
    offset += e.data.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const e of entries) {
    out.set(e.data, at);
    at += e.data.length;
  }
  return out;
}

interface RawEntry {
  dtype?: string;
  shape?: unknown;
  data_offsets?: unknown;
}

/** Parses the container; `corrupt(why)` builds the caller's error (it knows what the file should have been). */
export function decodeSafetensors(bytes: Uint8Array, corrupt: (why: string) => Error): SafetensorsFile {
  if (bytes.length < 8) throw corrupt(`it is ${bytes.length} bytes long, shorter than a safetensors header`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > bytes.length - 8 || headerLength > 100_000_000) throw corrupt(`its header length ${headerLength} exceeds the file`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8'));
  } catch (err) {
    throw corrupt(`its header is not JSON (${(err as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw corrupt('its header is not a JSON object');
  const data = bytes.subarray(8 + headerLength);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(header as Record<string, RawEntry>)) {
    if (name === '__metadata__') continue;
    tensors.set(name, decodeEntry(name, value, data, corrupt));
  }
  return { metadata: ((header as Record<string, unknown>).__metadata__ as Record<string, string>) ?? {}, tensors };
}

function decodeEntry(name: string, entry: RawEntry, data: Uint8Array, corrupt: (why: string) => Error): SafetensorsEntry {
  if (!entry || (entry.dtype !== 'U8' && entry.dtype !== 'F32')) throw corrupt(`tensor ${name} has dtype ${entry?.dtype}, not U8 or F32`);
  const shape = entry.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw corrupt(`tensor ${name} has shape ${JSON.stringify(shape)}`);
  const [begin, end] = (entry.data_offsets as number[] | undefined) ?? [];
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin || end > data.length) {
    throw corrupt(`tensor ${name} has data offsets ${JSON.stringify(entry.data_offsets)} outside the ${data.length} data bytes`);
  }
  const size = (shape as number[]).reduce((a, b) => a * b, 1) * (entry.dtype === 'F32' ? 4 : 1);
  if (end - begin !== size) throw corrupt(`tensor ${name} has shape [${(shape as number[]).join(', ')}] but ${end - begin} data bytes`);
  return { name, dtype: entry.dtype, shape: shape as number[], data: data.subarray(begin, end) };
}
