/**
 * Reports → what the pruning and correction panels show. Pure: the panels take the JSON reports
 * (`lrp-lens/prune@1`, `lrp-lens/correct@1`, optionally a `lrp-lens/compare@1` for the method curves), so a
 * panel opens the same from a finished run or from a report file.
 */
import { basename } from 'node:path';
import type { PruneReport } from '../../engine/pruning/pruneRun';
import type { CorrectReport, ExampleSet } from '../../engine/correction/correctionRun';
import { diffSides, sameFraction, wordDiff } from '../wordDiff';
import type { DiffPart } from '../wordDiff';
import type { Bar, LineChart } from './svg';

/** `lrp-lens compare --json` (the curve table). */
export interface CompareReport {
  schema: 'lrp-lens/compare@1';
  model: string;
  dense: { perplexity: number };
  methods: { method: string; points: { sparsity: number; achieved: number; perplexity: number }[] }[];
}

export type AnyReport = PruneReport | CorrectReport | CompareReport;

export interface GenerationPair {
  prompt: string;
  before: DiffPart[];
  after: DiffPart[];
  /** Fraction of the after words that are unchanged. */
  same: number;
}

export interface PruningViewModel {
  kind: 'pruning';
  title: string;
  subtitle: string;
  densePerplexity: number | null;
  prunedPerplexity: number | null;
  sparsity: number;
  achieved: number;
  layers: Bar[];
  curves: LineChart;
  generations: GenerationPair[];
  mask: string;
}

export interface ComponentGroup {
  layer: string;
  items: { weight: string; kind: string; index: number; score: number }[];
}

export interface CorrectionViewModel {
  kind: 'correction';
  title: string;
  subtitle: string;
  dense: { behaviour: number; perplexity: number };
  chosen: { count: number; behaviour: number; perplexity: number; withinBudget: boolean };
  behaviourCurve: LineChart;
  perplexityCurve: LineChart;
  undesired: GenerationPair[];
  general: GenerationPair[];
  components: ComponentGroup[];
  mask: string;
}

export type ReportViewModel = PruningViewModel | CorrectionViewModel;

/** Which report a parsed JSON value is, or undefined. */
export function reportKind(value: unknown): 'prune' | 'correct' | 'compare' | undefined {
  const schema = (value as { schema?: unknown } | null)?.schema;
  if (schema === 'lrp-lens/prune@1') return 'prune';
  if (schema === 'lrp-lens/correct@1') return 'correct';
  if (schema === 'lrp-lens/compare@1') return 'compare';
  return undefined;
}

export function generationPairs(
  prompts: readonly string[],
  before: readonly string[] | null,
  after: readonly string[] | null,
): GenerationPair[] {
  if (!before || !after) return [];
  return prompts.map((prompt, i) => {
    const parts = wordDiff(before[i] ?? '', after[i] ?? '');
    return { prompt, ...diffSides(parts), same: sameFraction(parts) };
  });
}

/** The sparsity → perplexity curves: every method of a compare report, else this run's points (dense at 0). */
export function pruningCurves(report: PruneReport, compare?: CompareReport): LineChart {
  const dense = compare?.dense.perplexity ?? report.dense.perplexity ?? undefined;
  const series = compare
    ? compare.methods.map((m) => ({ label: m.method, points: m.points.map((p) => ({ x: p.sparsity, y: p.perplexity })) }))
    : [
        {
          label: report.method,
          points: report.points.filter((p) => p.perplexity !== null).map((p) => ({ x: p.sparsity, y: p.perplexity! })),
        },
      ];
  return {
    title: 'Perplexity vs sparsity',
    xLabel: 'sparsity',
    yLabel: 'perplexity',
    logY: true,
    series,
    reference: dense !== undefined ? { y: dense, label: 'dense' } : undefined,
  };
}

/** The pruning panel for one point of a prune report (default: the first). */
export function pruningViewModel(report: PruneReport, options: { point?: number; compare?: CompareReport } = {}): PruningViewModel {
  const p = report.points[Math.min(options.point ?? 0, report.points.length - 1)];
  const method = report.aggregation ? `${report.method}:${report.aggregation}` : report.method;
  return {
    kind: 'pruning',
    title: `Pruning: ${method} at ${(p.sparsity * 100).toFixed(0)}%`,
    subtitle: `${basename(report.model.ref)} · ${report.allocation}${report.structured ? ' structured' : ''} · ${report.weights} weights${report.reference ? ` · reference ${basename(report.reference.path)} (${report.reference.samples} samples)` : ''}`,
    densePerplexity: report.dense.perplexity,
    prunedPerplexity: p.perplexity,
    sparsity: p.sparsity,
    achieved: p.achieved,
    layers: Object.entries(p.perLayer).map(([label, value]) => ({ label, value })),
    curves: pruningCurves(report, options.compare),
    generations: generationPairs(report.prompts ?? [], report.dense.generations, p.generations),
    mask: p.mask,
  };
}

function correctionCurve(report: CorrectReport, key: 'behaviour' | 'perplexity'): LineChart {
  const points = [{ x: 0, y: report.dense[key] }, ...report.points.map((p) => ({ x: p.count, y: p[key] }))];
  const label =
    key === 'behaviour'
      ? `${report.metric.kind}${report.metric.higherIsBetter ? ' (higher is better)' : ' (lower is better)'}`
      : 'perplexity';
  return {
    title: key === 'behaviour' ? `Behaviour: ${report.metric.kind}` : 'Perplexity (general ability)',
    xLabel: `${report.granularity} pruned`,
    yLabel: label,
    series: [{ label: report.method, points }],
  };
}

/** Pruned components grouped by layer (in the report's order: lowest score first within a layer). */
export function componentGroups(report: CorrectReport): ComponentGroup[] {
  const groups = new Map<string, ComponentGroup>();
  for (const c of report.pruned) {
    const layer = c.layer === null ? 'outside the blocks' : `layer ${c.layer}`;
    let g = groups.get(layer);
    if (!g) groups.set(layer, (g = { layer, items: [] }));
    g.items.push({ weight: c.weight, kind: c.kind, index: c.unit ?? c.element ?? -1, score: c.score });
  }
  return [...groups.values()].sort((a, b) => a.layer.localeCompare(b.layer, undefined, { numeric: true }));
}

function pairsOf(set: ExampleSet | undefined): GenerationPair[] {
  return set ? generationPairs(set.prompts, set.before, set.after) : [];
}

export function correctionViewModel(report: CorrectReport): CorrectionViewModel {
  const chosen = report.points.find((p) => p.count === report.chosen.count) ?? report.points[0];
  return {
    kind: 'correction',
    title: `Correction: ${report.chosen.count} ${report.granularity} pruned (${report.method})`,
    subtitle: `${basename(report.model.ref)} · undesired ${basename(report.undesired.path)} (${report.undesired.prompts}) · general ${basename(report.general.path)} · metric ${report.metric.spec}`,
    dense: { behaviour: report.dense.behaviour, perplexity: report.dense.perplexity },
    chosen: {
      count: report.chosen.count,
      behaviour: chosen.behaviour,
      perplexity: chosen.perplexity,
      withinBudget: report.chosen.withinBudget,
    },
    behaviourCurve: correctionCurve(report, 'behaviour'),
    perplexityCurve: correctionCurve(report, 'perplexity'),
    undesired: pairsOf(report.examples?.undesired),
    general: pairsOf(report.examples?.general),
    components: componentGroups(report),
    mask: report.chosen.mask,
  };
}
