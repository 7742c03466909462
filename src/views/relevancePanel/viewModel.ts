/**
 * AttributionResult → what the relevance panel draws. Pure (no DOM, no vscode): the webview, the HTML export and
 * the PNG export all render from this, and none of them computes relevance.
 */
import type { AttributionResult } from '../../engine/attribution/result';
import { colorScale, divergingColor, legendStops, maxAbs, maxAbsMatrix, relevanceColor, rgbCss, textColorOn } from '../colors';
import type { LegendStop } from '../colors';
import { visibleToken } from '../escape';

export interface TokenView {
  index: number;
  /** Raw text (whitespace made visible); escape before putting it into markup. */
  text: string;
  value: number;
  /** 1 = largest |relevance|. */
  rank: number;
  color: string;
  textColor: string;
  title: string;
}

export interface HeatmapCell {
  row: number;
  col: number;
  value: number;
  color: string;
}

/**
 * Cell titles are composed from row and column titles (in svg.ts) rather than stored per cell: a 1,000-token
 * prompt on a 30-layer model has 30,000 cells, and escaping one title per cell dominated the render time.
 */
export interface Heatmap {
  rowLabels: string[];
  colLabels: string[];
  rowTitles: string[];
  colTitles: string[];
  /** Row-major, rows × cols. */
  cells: HeatmapCell[];
  /** The scale's ends are ±max. */
  max: number;
}

export interface NeuronBar {
  neuron: number;
  value: number;
  color: string;
  title: string;
}

export interface NeuronBars {
  layer: number;
  /** Neurons in the layer; bars holds only the top k. */
  count: number;
  bars: NeuronBar[];
  max: number;
}

export interface PredictionView {
  id: number;
  text: string;
  prob: number;
  isTarget: boolean;
  isFoil: boolean;
}

export interface RelevanceViewModel {
  title: string;
  subtitle: string;
  target: { id: number; text: string; prob: number; position: number; foil?: { id: number; text: string } };
  seed: number;
  tokens: TokenView[];
  tokenMax: number;
  legend: LegendStop[];
  layerTokens: Heatmap;
  heads: Heatmap;
  layerCount: number;
  neurons: NeuronBars;
  predictions: PredictionView[];
  warnings: string[];
}

export interface ViewOptions {
  title?: string;
  /** Layer whose neurons are shown; clamped into range. */
  layer?: number;
  /** How many neurons to show, by |relevance| (default 20). */
  topNeurons?: number;
}

/** Four decimals; toFixed already prints NaN and ±Infinity as such. */
export function formatValue(v: number): string {
  return v.toFixed(4);
}

export function buildViewModel(result: AttributionResult, options: ViewOptions = {}): RelevanceViewModel {
  const { relevance } = result;
  const tokenMax = maxAbs(relevance.tokens);
  const layerCount = Math.max(relevance.layers.length, relevance.heads.length, relevance.neurons.length);
  const layer = clampLayer(options.layer ?? layerCount - 1, relevance.neurons.length);
  const vm = {
    title: options.title ?? `Relevance for ${JSON.stringify(result.target.text)}`,
    subtitle: `${result.model.ref} · ${result.rule} · position ${result.target.position}`,
    target: targetView(result),
    seed: relevance.seed,
    tokens: tokenViews(result, tokenMax),
    tokenMax,
    legend: legendStops(tokenMax),
    layerCount,
    predictions: predictionViews(result),
    warnings: result.warnings,
  } as RelevanceViewModel;
  // The figures of one tab each are built when first read: the panel draws only the visible tab, and a
  // 1,000-token result has 30,000 layer × token cells.
  lazy(vm, 'layerTokens', () => layerTokenHeatmap(result));
  lazy(vm, 'heads', () => headHeatmap(relevance.heads));
  lazy(vm, 'neurons', () => neuronBars(relevance.neurons, layer, options.topNeurons ?? 20));
  return vm;
}

/** An enumerable property computed on first read, then stored as a plain value. */
export function lazy<T extends object, K extends keyof T>(target: T, key: K, compute: () => T[K]): void {
  Object.defineProperty(target, key, {
    configurable: true,
    enumerable: true,
    get() {
      const value = compute();
      Object.defineProperty(target, key, { value, configurable: true, enumerable: true, writable: true });
      return value;
    },
  });
}

function clampLayer(layer: number, count: number): number {
  return Math.max(0, Math.min(count - 1, Math.trunc(layer)));
}

function targetView(result: AttributionResult): RelevanceViewModel['target'] {
  const { id, text, prob, position, foil } = result.target;
  return { id, text, prob, position, foil: foil && { id: foil.id, text: foil.text } };
}

/** Ranks 1…n by |value| descending; ties keep token order. */
export function ranksByMagnitude(values: readonly number[]): number[] {
  const order = values.map((_, i) => i).sort((a, b) => Math.abs(values[b]) - Math.abs(values[a]) || a - b);
  const ranks = new Array<number>(values.length);
  order.forEach((tokenIndex, k) => (ranks[tokenIndex] = k + 1));
  return ranks;
}

function tokenViews(result: AttributionResult, max: number): TokenView[] {
  const values = result.relevance.tokens;
  const ranks = ranksByMagnitude(values);
  return result.tokens.map((token, index) => {
    const value = values[index] ?? 0;
    const rgb = divergingColor(max > 0 ? value / max : 0);
    return {
      index,
      text: visibleToken(token.text),
      value,
      rank: ranks[index],
      color: rgbCss(rgb),
      textColor: textColorOn(rgb),
      title: `${JSON.stringify(token.text)} (${index}): relevance ${formatValue(value)}, rank ${ranks[index]} of ${values.length}`,
    };
  });
}

function matrixHeatmap(
  matrix: readonly (readonly number[])[],
  labels: Pick<Heatmap, 'rowLabels' | 'colLabels' | 'rowTitles' | 'colTitles'>,
): Heatmap {
  const max = maxAbsMatrix(matrix);
  const color = colorScale(max);
  const cells: HeatmapCell[] = [];
  matrix.forEach((values, row) => values.forEach((value, col) => cells.push({ row, col, value, color: color(value) })));
  return { ...labels, cells, max };
}

function layerTokenHeatmap(result: AttributionResult): Heatmap {
  const layers = result.relevance.layers;
  return matrixHeatmap(layers, {
    rowLabels: layers.map((_, l) => `L${l}`),
    colLabels: result.tokens.map((t) => visibleToken(t.text)),
    rowTitles: layers.map((_, l) => `layer ${l}`),
    colTitles: result.tokens.map((t, i) => `${JSON.stringify(t.text)} (${i})`),
  });
}

function headHeatmap(heads: readonly (readonly number[])[]): Heatmap {
  const width = Math.max(0, ...heads.map((h) => h.length));
  const headIndices = Array.from({ length: width }, (_, h) => h);
  return matrixHeatmap(heads, {
    rowLabels: heads.map((_, l) => `L${l}`),
    colLabels: headIndices.map((h) => `H${h}`),
    rowTitles: heads.map((_, l) => `layer ${l}`),
    colTitles: headIndices.map((h) => `head ${h}`),
  });
}

export function neuronBars(neurons: readonly (readonly number[])[], layer: number, topK: number): NeuronBars {
  const values = neurons[layer] ?? [];
  const max = maxAbs(values);
  const top = values
    .map((value, neuron) => ({ neuron, value }))
    .sort((a, b) => Math.abs(b.value) - Math.abs(a.value) || a.neuron - b.neuron)
    .slice(0, Math.max(0, topK));
  return {
    layer,
    count: values.length,
    max,
    bars: top.map(({ neuron, value }) => ({
      neuron,
      value,
      color: relevanceColor(value, max),
      title: `layer ${layer}, neuron ${neuron}: ${formatValue(value)}`,
    })),
  };
}

function predictionViews(result: AttributionResult): PredictionView[] {
  return result.predictions.map((p) => ({
    id: p.id,
    text: p.text,
    prob: p.prob,
    isTarget: p.id === result.target.id,
    isFoil: p.id === result.target.foil?.id,
  }));
}
