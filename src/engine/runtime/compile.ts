/**
 * The compile pipeline (canonicalise → probe shapes → emit relevance graph) and its on-disk cache, keyed by
 * the model file's content hash, the compiler version and the options.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { Graph } from '../onnx/graph';
import { encodeModel, readModel } from '../onnx/io';
import { canonicalize } from '../relevance/canonicalize';
import { compileRelevance } from '../relevance/compiler';
import type { CompileOptions, CompiledInfo } from '../relevance/compiler';
import { probeShapes } from './probe';

/** Bumped whenever the emitted graph changes, so stale cache entries are never reused. */
export const COMPILER_VERSION = 1;

export interface CompiledModel {
  bytes: Uint8Array;
  info: CompiledInfo;
  compileMs: number;
  fromCache: boolean;
}

/** Canonicalise, probe and compile an in-memory graph (no cache). */
export async function compileGraph(graph: Graph, options: CompileOptions = {}): Promise<{ graph: Graph; info: CompiledInfo }> {
  const canonical = canonicalize(graph);
  const shapes = await probeShapes(canonical.graph);
  return compileRelevance(canonical.graph, shapes, canonical.weightOrigins, options);
}

export function cacheDir(): string {
  return process.env.LRP_LENS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'lrp-lens');
}

/** Size + mtime + hash of the first and last MiB: cheap for multi-GB files, and changes when they do. */
export function fileFingerprint(path: string): string {
  const st = statSync(path);
  const h = createHash('sha256').update(`${st.size}|${st.mtimeMs}`);
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(Math.min(1 << 20, st.size));
    readSync(fd, chunk, 0, chunk.length, 0);
    h.update(chunk);
    readSync(fd, chunk, 0, chunk.length, Math.max(0, st.size - chunk.length));
    h.update(chunk);
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function optionsKey(options: CompileOptions): string {
  const w = options.weightRelevance;
  return JSON.stringify({ v: COMPILER_VERSION, mode: options.mode ?? 'attnlrp', w: Array.isArray(w) ? [...w].sort() : !!w });
}

/** Compile a model file, reusing the cached relevance graph when the file and options are unchanged. */
export async function compileModelFile(path: string, options: CompileOptions = {}, useCache = true): Promise<CompiledModel> {
  const key = createHash('sha256').update(fileFingerprint(path)).update(optionsKey(options)).digest('hex').slice(0, 32);
  const dir = join(cacheDir(), 'compiled');
  const onnxPath = join(dir, `${key}.onnx`);
  const infoPath = join(dir, `${key}.json`);
  if (useCache && existsSync(onnxPath) && existsSync(infoPath)) {
    return { bytes: readFileSync(onnxPath), info: JSON.parse(readFileSync(infoPath, 'utf8')) as CompiledInfo, compileMs: 0, fromCache: true };
  }
  const t0 = performance.now();
  const { graph, info } = await compileGraph(readModel(path), options);
  const bytes = encodeModel(graph);
  const compileMs = performance.now() - t0;
  if (useCache) {
    mkdirSync(dir, { recursive: true });
    writeAtomic(onnxPath, bytes);
    writeAtomic(infoPath, Buffer.from(JSON.stringify(info)));
  }
  return { bytes, info, compileMs, fromCache: false };
}

function writeAtomic(path: string, data: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
