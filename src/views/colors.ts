/**
 * The diverging relevance scale shared by the CLI, the panel, its exports and the editor decorations.
 * Pure: no DOM, no vscode.
 */
export type Rgb = [number, number, number];

/** ColorBrewer RdBu ends (colour-blind safe): blue for negative, red for positive, near-white for zero. */
export const NEUTRAL: Rgb = [247, 247, 247];
export const POSITIVE: Rgb = [178, 24, 43];
export const NEGATIVE: Rgb = [33, 102, 172];

/** v in [−1, 1] → RGB, linear from NEUTRAL at 0 to the hue of v's sign at ±1; out-of-range and NaN are clamped. */
export function divergingColor(v: number): Rgb {
  const t = Math.max(-1, Math.min(1, Number.isFinite(v) ? v : 0));
  const end = t >= 0 ? POSITIVE : NEGATIVE;
  const a = Math.abs(t);
  return NEUTRAL.map((w, i) => Math.round(w + (end[i] - w) * a)) as Rgb;
}

/** Relevance scaled into [−1, 1] by the largest magnitude (0 everywhere stays 0). */
export function normalise(values: readonly number[]): number[] {
  const max = maxAbs(values);
  return values.map((v) => (max > 0 ? v / max : 0));
}

/** Largest |v|, ignoring non-finite entries; 0 for an empty list. */
export function maxAbs(values: readonly number[]): number {
  let max = 0;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > max) max = Math.abs(v);
  return max;
}

export function maxAbsMatrix(rows: readonly (readonly number[])[]): number {
  let max = 0;
  for (const row of rows) max = Math.max(max, maxAbs(row));
  return max;
}

export function rgbCss([r, g, b]: Rgb): string {
  return `rgb(${r}, ${g}, ${b})`;
}

export function rgbaCss([r, g, b]: Rgb, alpha: number): string {
  return `rgba(${r}, ${g}, ${b}, ${Math.round(alpha * 1000) / 1000})`;
}

/** CSS colour of a relevance value on a scale whose ends are ±max. */
export function relevanceColor(value: number, max: number): string {
  return rgbCss(divergingColor(max > 0 ? value / max : 0));
}

/** relevanceColor for many values on one scale; equal colours share one CSS string (a heatmap has few distinct colours). */
export function colorScale(max: number): (value: number) => string {
  const cache = new Map<number, string>();
  return (value) => {
    const rgb = divergingColor(max > 0 ? value / max : 0);
    const key = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2];
    let css = cache.get(key);
    if (css === undefined) cache.set(key, (css = rgbCss(rgb)));
    return css;
  };
}

/** Black or white, whichever reads better on the background (WCAG relative luminance). */
export function textColorOn([r, g, b]: Rgb): string {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const luminance = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  return luminance > 0.179 ? '#000000' : '#ffffff';
}

export interface LegendStop {
  /** Position on the scale, −1…1. */
  t: number;
  /** The relevance value at that position (t × max). */
  value: number;
  color: string;
}

/** Evenly spaced stops from −max to +max (an odd count keeps 0 as the middle stop). */
export function legendStops(max: number, count = 9): LegendStop[] {
  return Array.from({ length: count }, (_, i) => {
    const t = count === 1 ? 0 : -1 + (2 * i) / (count - 1);
    return { t, value: t * max, color: rgbCss(divergingColor(t)) };
  });
}
