/**
 * Geometry and colours of a heatmap, shared by the SVG figures (exports, small maps) and the webview's canvas
 * (large maps), so both draw the same picture. Pure: no DOM.
 */
import { divergingColor } from '../colors';
import type { Heatmap } from './viewModel';
import { formatValue } from './viewModel';

/** Widest figure, in CSS pixels, whatever the column count. */
export const MAX_WIDTH = 1200;
export const ROW_LABEL_WIDTH = 40;
/**
 * Heatmaps with more cells than this are drawn on a canvas in the panel: thousands of SVG rectangles parsed from
 * markup cost ~1 s at 1,000 tokens × 30 layers; a canvas costs a few milliseconds. Small maps stay SVG (every cell
 * a DOM node with a title).
 */
export const CANVAS_MIN_CELLS = 600;

export interface HeatmapLayout {
  rows: number;
  cols: number;
  /** CSS pixels; fractional when there are many columns (≥ 1). */
  cellWidth: number;
  cellHeight: number;
  /** Where the first cell starts: the row labels sit left of `left`, the column labels above `top`. */
  left: number;
  top: number;
  /** Column labels only where they fit; hovering a cell names its column anyway. */
  showColLabels: boolean;
  width: number;
  height: number;
}

export interface CellRef {
  row: number;
  col: number;
}

export function heatmapLayout(rows: number, cols: number): HeatmapLayout {
  const cellWidth = Math.max(1, Math.min(28, (MAX_WIDTH - ROW_LABEL_WIDTH) / Math.max(cols, 1)));
  const cellHeight = rows > 24 ? 12 : 18;
  const showColLabels = cellWidth >= 12;
  const top = showColLabels ? 64 : 4;
  // Column labels are rotated up and to the right: leave room for the last ones (≈ 10 characters at −60°).
  const labelOverhang = showColLabels ? 36 : 0;
  return {
    rows,
    cols,
    cellWidth,
    cellHeight,
    left: ROW_LABEL_WIDTH,
    top,
    showColLabels,
    width: ROW_LABEL_WIDTH + cols * cellWidth + labelOverhang,
    height: top + rows * cellHeight,
  };
}

/** The layout of a heatmap's cells. */
export function layoutOf(map: Heatmap): HeatmapLayout {
  return heatmapLayout(map.rowLabels.length, map.colLabels.length);
}

/** Whether the panel draws this heatmap on a canvas rather than as SVG. */
export function drawsOnCanvas(map: Heatmap): boolean {
  return map.rowLabels.length * map.colLabels.length > CANVAS_MIN_CELLS;
}

/** The cell under a point (CSS pixels from the figure's top-left corner), or undefined off the grid. */
export function cellAt(layout: HeatmapLayout, x: number, y: number): CellRef | undefined {
  if (!Number.isFinite(x) || !Number.isFinite(y)) return undefined;
  // The epsilon keeps a cell's own top-left corner (cellRect) inside it despite rounding of fractional widths.
  const col = Math.floor((x - layout.left) / layout.cellWidth + 1e-9);
  const row = Math.floor((y - layout.top) / layout.cellHeight + 1e-9);
  if (x < layout.left || y < layout.top || col < 0 || row < 0 || col >= layout.cols || row >= layout.rows) return undefined;
  return { row, col };
}

/** A cell's rectangle in CSS pixels (the inverse of cellAt). */
export function cellRect(layout: HeatmapLayout, cell: CellRef): { x: number; y: number; width: number; height: number } {
  return {
    x: layout.left + cell.col * layout.cellWidth,
    y: layout.top + cell.row * layout.cellHeight,
    width: layout.cellWidth,
    height: layout.cellHeight,
  };
}

/** Unescaped text that names a cell and its value (the SVG escapes it into a <title>; the canvas shows it on hover). */
export function cellTitle(map: Heatmap, cell: CellRef): string {
  const value = map.cells[cell.row * map.colLabels.length + cell.col];
  const v =
    value && value.row === cell.row && value.col === cell.col
      ? value.value
      : map.cells.find((c) => c.row === cell.row && c.col === cell.col)?.value;
  return `${map.rowTitles[cell.row]}, ${map.colTitles[cell.col]}: ${v === undefined ? 'no value' : formatValue(v)}`;
}

/**
 * One RGBA pixel per cell (cols × rows, row-major) on the same diverging scale as the cells' CSS colours, for
 * putImageData: the canvas scales it up with smoothing off. Missing cells (ragged rows) stay transparent.
 */
export function heatmapRgba(map: Heatmap): Uint8ClampedArray<ArrayBuffer> {
  const cols = map.colLabels.length;
  const rows = map.rowLabels.length;
  const pixels = new Uint8ClampedArray(cols * rows * 4);
  const max = map.max;
  for (const cell of map.cells) {
    if (cell.row >= rows || cell.col >= cols) continue;
    const [r, g, b] = divergingColor(max > 0 ? cell.value / max : 0);
    const i = (cell.row * cols + cell.col) * 4;
    pixels[i] = r;
    pixels[i + 1] = g;
    pixels[i + 2] = b;
    pixels[i + 3] = 255;
  }
  return pixels;
}

/** Moves a cell by (dRow, dCol), clamped to the grid: arrow-key navigation on the canvas. */
export function moveCell(layout: HeatmapLayout, cell: CellRef | undefined, dRow: number, dCol: number): CellRef | undefined {
  if (layout.rows === 0 || layout.cols === 0) return undefined;
  const from = cell ?? { row: 0, col: 0 };
  if (!cell) return from;
  return {
    row: Math.max(0, Math.min(layout.rows - 1, from.row + dRow)),
    col: Math.max(0, Math.min(layout.cols - 1, from.col + dCol)),
  };
}

export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length > max ? chars.slice(0, max - 1).join('') + '…' : text;
}
