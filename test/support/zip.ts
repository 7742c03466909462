/** Reads zip files (a VSIX) through their central directory: entry names, sizes, and extraction. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  size: number;
  compressedSize: number;
  method: number;
  localHeader: number;
}

export function zipEntries(buf: Buffer): ZipEntry[] {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('not a zip file: no end-of-central-directory record');
  const entries: ZipEntry[] = [];
  for (let at = buf.readUInt32LE(eocd + 16), n = buf.readUInt16LE(eocd + 10); n > 0; n--) {
    const nameLength = buf.readUInt16LE(at + 28);
    entries.push({
      name: buf.toString('utf8', at + 46, at + 46 + nameLength),
      method: buf.readUInt16LE(at + 10),
      compressedSize: buf.readUInt32LE(at + 20),
      size: buf.readUInt32LE(at + 24),
      localHeader: buf.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + buf.readUInt16LE(at + 30) + buf.readUInt16LE(at + 32);
  }
  return entries;
}

/** Writes every entry under `dir` (stored or deflated entries, the two a VSIX uses). */
export function extractZip(file: string, dir: string): void {
  const buf = readFileSync(file);
  for (const e of zipEntries(buf)) {
    const h = e.localHeader;
    const start = h + 30 + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
    const raw = buf.subarray(start, start + e.compressedSize);
    const out = join(dir, e.name);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, e.method === 8 ? inflateRawSync(raw) : raw);
  }
}
