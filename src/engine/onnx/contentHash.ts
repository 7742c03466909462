/**
 * A model's content hash: sha256 over the bytes of its .onnx file and then of each external data file it refers
 * to (in name order, each preceded by its name and length), written `sha256:<hex>`. It names the exact bytes a
 * mask or statistics file was computed on. `modelFingerprint` (runtime/compile.ts) is not used for that: it hashes
 * size, mtime and the first and last MiB only, which is right for a cache key but would accept different weights.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LrpLensError } from '../errors';
import { externalFiles } from './externalData';
import type { Graph } from './graph';

/** `sha256:<hex>` of some bytes. */
export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** sha256 over a graph's .onnx file and its external data files (see the file comment); the graph must come from disk. */
export function modelContentHash(graph: Graph): string {
  const src = graph.source;
  if (!src)
    throw new LrpLensError(
      'bad-argument',
      'The model has no file to hash (it was built in memory). Read it from disk with readModel first.',
    );
  const h = createHash('sha256').update(src.bytes);
  for (const location of [...externalFiles(graph.initializers.values())].sort()) {
    const path = join(src.dir, location);
    if (!existsSync(path))
      throw new LrpLensError('model-not-found', `External data file ${path} is missing. Download it beside the .onnx file.`);
    h.update(`\0${location}\0${statSync(path).size}\0`);
    hashFile(h, path);
  }
  return `sha256:${h.digest('hex')}`;
}

function hashFile(h: ReturnType<typeof createHash>, path: string): void {
  const fd = openSync(path, 'r');
  const chunk = Buffer.alloc(1 << 22);
  try {
    for (let n = readSync(fd, chunk, 0, chunk.length, null); n > 0; n = readSync(fd, chunk, 0, chunk.length, null))
      h.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}
