/**
 * Score statistics as files, so several processes or machines can split a reference set: each writes the sums of
 * its shard (`prune --shard i/n --stats-out F`), `merge` adds them, and `prune --stats F` allocates from the total.
 * A safetensors file with one F32 tensor per weight and the statistics' description in `__metadata__`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../writeAtomic';
import { LrpLensError } from '../errors';
import { decodeSafetensors, encodeSafetensors } from './safetensors';
import { mergeStatistics } from './scores';
import type { LrpAggregation, ScoreMethod, ScoreStatistics } from './scores';

export const STATISTICS_FORMAT = 'lrp-lens-statistics';

export interface StatisticsProvenance {
  /** Content hash of the model (onnx/contentHash.ts). */
  model: string;
  /** sha256 of the reference file. */
  reference: string;
  /** Which shards of the reference set these sums cover, e.g. [0, 2] of 4. */
  shards: number[];
  of: number;
}

export interface StoredStatistics {
  stats: ScoreStatistics;
  provenance: StatisticsProvenance;
}

export function saveStatistics(path: string, stored: StoredStatistics): void {
  const { stats, provenance } = stored;
  const names = [...stats.sums.keys()].sort();
  const entries = names.map((n) => {
    const v = stats.sums.get(n)!;
    return { name: n, dtype: 'F32' as const, shape: [v.length], data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
  });
  const metadata = {
    format: STATISTICS_FORMAT,
    method: stats.method,
    aggregation: stats.aggregation ?? '',
    samples: String(stats.samples),
    tokens: String(stats.tokens),
    provenance: JSON.stringify(provenance),
  };
  writeFileAtomic(path, encodeSafetensors(entries, metadata));
}

export function loadStatistics(path: string): StoredStatistics {
  if (!existsSync(path)) throw new LrpLensError('bad-argument', `Statistics file ${path} not found. Write one with prune --stats-out.`);
  const corrupt = (why: string) =>
    new LrpLensError('bad-argument', `${path} is not an LRP Lens statistics file: ${why}. Write it again with prune --stats-out.`);
  const file = decodeSafetensors(readFileSync(path), corrupt);
  const m = file.metadata;
  if (m.format !== STATISTICS_FORMAT) throw corrupt(`its metadata does not say format "${STATISTICS_FORMAT}"`);
  const sums = new Map<string, Float32Array>();
  for (const [name, e] of file.tensors) {
    if (e.dtype !== 'F32') throw corrupt(`tensor ${name} is ${e.dtype}, not F32`);
    sums.set(name, new Float32Array(new Uint8Array(e.data).buffer)); // a copy: Buffer#slice would be a view of the pool
  }
  const stats: ScoreStatistics = {
    method: m.method as ScoreMethod,
    aggregation: (m.aggregation || undefined) as LrpAggregation | undefined,
    samples: Number(m.samples),
    tokens: Number(m.tokens),
    sums,
  };
  return { stats, provenance: JSON.parse(m.provenance) as StatisticsProvenance };
}

/** Adds shards of one reference set: same model, reference, method and aggregation; no shard twice. */
export function mergeStored(parts: StoredStatistics[]): StoredStatistics {
  if (parts.length === 0) throw new LrpLensError('bad-argument', 'Nothing to merge: give at least one statistics file.');
  const [first] = parts;
  const seen = new Set<number>();
  for (const p of parts) {
    const what =
      p.provenance.model !== first.provenance.model
        ? 'model'
        : p.provenance.reference !== first.provenance.reference
          ? 'reference set'
          : p.provenance.of !== first.provenance.of
            ? 'shard count'
            : undefined;
    if (what)
      throw new LrpLensError(
        'bad-argument',
        `The statistics files were computed on a different ${what}; merge only shards of one run (same model, reference file and --shard i/n).`,
      );
    for (const s of p.provenance.shards) {
      if (seen.has(s))
        throw new LrpLensError('bad-argument', `Shard ${s}/${first.provenance.of} appears twice; each shard may be merged once.`);
      seen.add(s);
    }
  }
  return {
    stats: mergeStatistics(parts.map((p) => p.stats)),
    provenance: { ...first.provenance, shards: [...seen].sort((a, b) => a - b) },
  };
}

/** `i/n` → the i-th of n contiguous shards of the samples (0-based). */
export function shardOf<T>(samples: T[], spec: string): { part: T[]; index: number; of: number } {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  const index = m ? Number(m[1]) : NaN;
  const of = m ? Number(m[2]) : NaN;
  if (!m || of < 1 || index >= of) throw new LrpLensError('bad-argument', `--shard '${spec}' must be i/n with 0 ≤ i < n, e.g. 0/4.`);
  const size = Math.ceil(samples.length / of);
  return { part: samples.slice(index * size, (index + 1) * size), index, of };
}
