/**
 * `npm run bench` (large part): `lrp-lens attribute` on the ~1.1B-parameter Llama-shaped model (external data) next
 * to a plain onnxruntime forward of the original model at the same length. Each subject runs in its own child
 * process under the memory watchdog (whole-process wall time and peak RSS); the memory guard's estimate and the
 * execution chooser's estimate stand beside the measured peak.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdownTable } from '../src/cli/common';
import type { ModelConfig } from '../src/engine/runtime/model';
import { estimateRun } from '../src/engine/memory/memoryGuard';
import { underWatchdog, type ChildResult, type Watched } from './blockwise';

export interface LargeAttributionRow {
  seqLen: number;
  /** Which execution `lrp-lens attribute` chose (its stderr "execution:" line), and why. */
  execution?: string;
  executionReason?: string;
  attributeWallMs?: number;
  attributePeakRssMB?: number;
  forwardWallMs?: number;
  forwardRunMs?: number;
  forwardPeakRssMB?: number;
  /** The memory guard's estimate (estimateRun) for this length. */
  guardEstimateMB: number | null;
  /** The execution chooser's estimate for the execution that ran, from its "execution:" line. */
  chooserEstimateMB?: number;
  /** Why a subject has no figures (killed by the watchdog, failed). */
  attributeFailure?: string;
  forwardFailure?: string;
}

/** Token ids as the block-wise benchmark's forward child makes them, so both subjects see the same input. */
function benchIds(seq: number): number[] {
  return Array.from({ length: seq }, (_, i) => 1 + ((i * 7919) % 31000));
}

const failure = (w: Watched) =>
  'killedAtMB' in w ? `killed at ${(w.killedAtMB / 1024).toFixed(0)} GB` : 'error' in w ? w.error : undefined;

export async function benchLargeAttribution(o: {
  dir: string;
  cli: string;
  seqLen: number[];
  limitMb: number;
}): Promise<LargeAttributionRow[]> {
  const config = JSON.parse(readFileSync(join(o.dir, 'config.json'), 'utf8')) as ModelConfig;
  const rows: LargeAttributionRow[] = [];
  for (const seq of o.seqLen) {
    const estimate = estimateRun(config, { tokens: seq, batch: 1 }, { onnxPath: join(o.dir, 'onnx', 'model.onnx') });
    const row: LargeAttributionRow = { seqLen: seq, guardEstimateMB: estimate ? estimate.bytes / 2 ** 20 : null };
    const fwd = await underWatchdog(
      ['blockwise-run', '--onnx', join(o.dir, 'onnx', 'model.onnx'), '--subject', 'forward', '--seq', String(seq)],
      o.limitMb,
    );
    if ('stdout' in fwd) {
      const r = JSON.parse(fwd.stdout) as ChildResult;
      Object.assign(row, { forwardWallMs: fwd.wallMs, forwardRunMs: r.runMs, forwardPeakRssMB: r.peakRssMB });
    } else row.forwardFailure = failure(fwd);
    const attr = await underWatchdog(
      [
        'attribute',
        '--model',
        o.dir,
        '--ids',
        benchIds(seq).join(','),
        '--memory-limit',
        `${o.limitMb}MB`,
        '--no-cache',
        '--offline',
        '--no-color',
      ],
      o.limitMb,
      o.cli,
    );
    if ('stdout' in attr) {
      const line = /execution: (\w+) \((.*)\)/.exec(attr.stderr);
      const gb = line && /(?:estimate|needs) ([\d.]+) GB/g;
      const estimates = line ? [...line[2].matchAll(gb!)].map((m) => Number(m[1]) * 1024) : [];
      Object.assign(row, {
        execution: line?.[1],
        executionReason: line?.[2],
        attributeWallMs: attr.wallMs,
        attributePeakRssMB: attr.sampledPeakMB,
        chooserEstimateMB: line?.[1] === 'blockwise' ? estimates.at(-1) : estimates[0],
      });
    } else row.attributeFailure = failure(attr);
    console.error(`large attribution @ ${seq}: ${JSON.stringify(row)}`);
    rows.push(row);
  }
  return rows;
}

export function largeAttributionTable(rows: LargeAttributionRow[]): string {
  const s = (ms?: number) => (ms === undefined ? '—' : (ms / 1000).toFixed(1));
  const gb = (mb?: number | null) => (mb === undefined || mb === null ? '—' : (mb / 1024).toFixed(2));
  const ratio = (x?: number | null, y?: number | null) => (x && y ? (x / y).toFixed(2) : '—');
  const body = rows.map((r) => [
    String(r.seqLen),
    r.execution ?? r.attributeFailure ?? '—',
    s(r.forwardWallMs),
    s(r.attributeWallMs),
    ratio(r.attributeWallMs, r.forwardWallMs),
    r.forwardFailure ?? gb(r.forwardPeakRssMB),
    gb(r.attributePeakRssMB),
    ratio(r.attributePeakRssMB, r.forwardPeakRssMB),
    gb(r.guardEstimateMB),
    ratio(r.guardEstimateMB, r.attributePeakRssMB),
    gb(r.chooserEstimateMB),
    ratio(r.chooserEstimateMB, r.attributePeakRssMB),
  ]);
  return markdownTable(
    [
      'tokens',
      'execution',
      'forward s',
      'attribute s',
      'time ×',
      'forward GB',
      'attribute GB',
      'RSS ×',
      'guard est GB',
      'guard ÷ meas',
      'chooser est GB',
      'chooser ÷ meas',
    ],
    body,
  );
}
