/**
 * The compile pipeline (canonicalise → probe shapes → emit relevance graph) and its on-disk cache, keyed by
 * the model file's content hash, the compiler version and the options.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { Graph } from '../onnx/graph';
import { readModel, writeModelReferencingSource } from '../onnx/io';
import { canonicalize } from '../relevance/canonicalize';
import { compileRelevance } from '../relevance/compiler';
import type { CompileOptions, CompiledInfo } from '../relevance/compiler';
import { probeShapes } from './probe';
import { cacheDir } from './cacheDir';
import { writeFileAtomic } from '../writeAtomic';

/** Bumped whenever the emitted graph changes, so stale cache entries are never reused. */
export const COMPILER_VERSION = 5;

export interface CompiledModel {
  /** The relevance graph on disk (its weights are links to the model's own files). */
  path: string;
  info: CompiledInfo;
  compileMs: number;
  fromCache: boolean;
}

/** Canonicalise, probe and compile an in-memory graph (no cache). */
export async function compileGraph(graph: Graph, options: CompileOptions = {}): Promise<{ graph: Graph; info: CompiledInfo }> {
  const canonical = canonicalize(graph);
  const shapes = await probeShapes(canonical.graph);
  const compiled = compileRelevance(canonical.graph, shapes, canonical.weightOrigins, options);
  if (canonical.rewrites['com.microsoft.GroupQueryAttention']) compiled.info.padding = 'right';
  return compiled;
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

/**
 * The model file and its external data files (model.onnx_data, model.onnx.data, …: siblings whose name starts
 * with the model's), so replacing the weights invalidates the cache too.
 */
export function modelFingerprint(path: string): string {
  const dir = dirname(path);
  const name = basename(path);
  const data = readdirSync(dir)
    .filter((f) => f !== name && f.startsWith(name))
    .sort();
  return createHash('sha256')
    .update([path, ...data.map((f) => join(dir, f))].map(fileFingerprint).join('|'))
    .digest('hex');
}

function optionsKey(options: CompileOptions): string {
  const w = options.weightRelevance;
  return JSON.stringify({
    v: COMPILER_VERSION,
    mode: options.mode ?? 'attnlrp',
    w: Array.isArray(w) ? [...w].sort() : !!w,
    agg: options.weightAggregation ?? 'signed',
  });
}

/**
 * Compile a model file into `<cache>/compiled/<key>/relevance.onnx`, reusing it when the file and options are
 * unchanged. With `useCache` false the graph goes to a fresh temporary folder.
 */
export async function compileModelFile(path: string, options: CompileOptions = {}, useCache = true): Promise<CompiledModel> {
  const key = createHash('sha256').update(modelFingerprint(path)).update(optionsKey(options)).digest('hex').slice(0, 32);
  const dir = useCache ? join(cacheDir(), 'compiled', key) : mkdtempSync(join(tmpdir(), 'lrp-compiled-'));
  const onnxPath = join(dir, 'relevance.onnx');
  const infoPath = join(dir, 'info.json');
  if (useCache && existsSync(onnxPath) && existsSync(infoPath)) {
    return { path: onnxPath, info: JSON.parse(readFileSync(infoPath, 'utf8')) as CompiledInfo, compileMs: 0, fromCache: true };
  }
  const t0 = performance.now();
  const { graph, info } = await compileGraph(readModel(path), options);
  writeModelReferencingSource(graph, dir, 'relevance.onnx');
  const compileMs = performance.now() - t0;
  writeFileAtomic(infoPath, Buffer.from(JSON.stringify(info)));
  return { path: onnxPath, info, compileMs, fromCache: false };
}
