/**
 * A large heatmap on a <canvas>: one pixel per cell (putImageData), scaled up with smoothing off, labels in the
 * theme's foreground, and hover / arrow keys → the cell under the pointer, named in a readout line and the canvas
 * title. Same layout and colours as the SVG figure (heatmapLayout.ts). No style attributes: sizes are set through
 * the CSSOM, which the panel's CSP allows.
 */
import { cellAt, cellRect, cellTitle, heatmapRgba, layoutOf, moveCell, truncate } from '../../src/views/relevancePanel/heatmapLayout';
import type { CellRef } from '../../src/views/relevancePanel/heatmapLayout';
import type { Heatmap } from '../../src/views/relevancePanel/viewModel';

export function heatmapCanvas(map: Heatmap, label: string): HTMLElement {
  const layout = layoutOf(map);
  const wrap = document.createElement('div');
  wrap.className = 'figure heatmap-canvas';
  const canvas = document.createElement('canvas');
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${label}: ${layout.rows} × ${layout.cols} heatmap; hover or use the arrow keys to read a cell`);
  const readout = document.createElement('p');
  readout.className = 'note cell-readout';
  readout.setAttribute('aria-live', 'polite');
  readout.textContent = 'Hover a cell to read its value.';
  wrap.append(canvas, readout);

  const ratio = Math.max(1, window.devicePixelRatio || 1);
  canvas.width = Math.ceil(layout.width * ratio);
  canvas.height = Math.ceil(layout.height * ratio);
  canvas.style.width = `${layout.width}px`;
  canvas.style.height = `${layout.height}px`;
  const ctx = canvas.getContext('2d');
  if (!ctx) {
    readout.textContent = 'This view cannot draw a canvas.';
    return wrap;
  }

  // The cells, one pixel each; drawImage scales them to the grid.
  const cells = document.createElement('canvas');
  cells.width = Math.max(1, layout.cols);
  cells.height = Math.max(1, layout.rows);
  if (layout.cols > 0 && layout.rows > 0)
    cells.getContext('2d')?.putImageData(new ImageData(heatmapRgba(map), layout.cols, layout.rows), 0, 0);

  let hovered: CellRef | undefined;

  const draw = () => {
    // Theme colours at draw time (the panel redraws on a theme change): body carries --vscode-* and the font.
    const body = getComputedStyle(document.body);
    const foreground = body.color;
    const focus = body.getPropertyValue('--vscode-focusBorder').trim() || foreground;
    const font = `11px ${body.fontFamily || 'system-ui, sans-serif'}`;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, layout.width, layout.height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cells, layout.left, layout.top, layout.cols * layout.cellWidth, layout.rows * layout.cellHeight);
    ctx.fillStyle = foreground;
    ctx.font = font;
    ctx.textAlign = 'end';
    ctx.textBaseline = 'alphabetic';
    map.rowLabels.forEach((text, r) => ctx.fillText(text, layout.left - 4, layout.top + r * layout.cellHeight + layout.cellHeight * 0.75));
    if (layout.showColLabels) {
      ctx.textAlign = 'start';
      map.colLabels.forEach((text, c) => {
        ctx.save();
        ctx.translate(layout.left + c * layout.cellWidth + layout.cellWidth * 0.65, layout.top - 4);
        ctx.rotate((-60 * Math.PI) / 180);
        ctx.fillText(truncate(text, 10), 0, 0);
        ctx.restore();
      });
    }
    if (hovered) {
      const r = cellRect(layout, hovered);
      ctx.strokeStyle = focus;
      ctx.lineWidth = 1;
      ctx.strokeRect(r.x - 0.5, r.y - 0.5, r.width + 1, r.height + 1);
    }
  };

  const show = (cell: CellRef | undefined) => {
    if (cell?.row === hovered?.row && cell?.col === hovered?.col) return;
    hovered = cell;
    const text = cell ? cellTitle(map, cell) : '';
    canvas.title = text;
    readout.textContent = text || 'Hover a cell to read its value.';
    draw();
  };

  canvas.addEventListener('mousemove', (e) => {
    const box = canvas.getBoundingClientRect();
    const sx = box.width > 0 ? layout.width / box.width : 1;
    const sy = box.height > 0 ? layout.height / box.height : 1;
    show(cellAt(layout, (e.clientX - box.left) * sx, (e.clientY - box.top) * sy));
  });
  canvas.addEventListener('mouseleave', () => show(undefined));
  canvas.addEventListener('keydown', (e) => {
    const step: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const d = step[e.key];
    if (!d) return;
    e.preventDefault();
    show(moveCell(layout, hovered, d[0], d[1]));
  });
  draw();
  return wrap;
}
