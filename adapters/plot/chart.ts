/**
 * Small raster charts rendered to PNG (pngjs): axes with "nice" ticks, tick labels, title and axis labels in
 * the project's 5×7 bitmap font, scatter and line series, horizontal reference lines (solid or dashed, e.g.
 * mean ± 1.96 SD) and a legend. Used for Bland–Altman plots and trend plots in reports.
 */
import { PNG } from 'pngjs';
import { forEachTextPixel, GLYPH_HEIGHT, textWidth } from '../raster/bitmap-font.ts';

export type Rgb = readonly [number, number, number];

export interface Point {
  readonly x: number;
  readonly y: number;
}

export interface Series {
  readonly kind: 'scatter' | 'line';
  readonly points: readonly Point[];
  readonly color: Rgb;
  readonly label?: string;
  /** Marker radius (scatter) or line width (line), pixels. */
  readonly size?: number;
}

export interface ReferenceLine {
  readonly y: number;
  readonly color: Rgb;
  readonly label?: string;
  readonly dashed?: boolean;
}

export interface ChartSpec {
  readonly width?: number;
  readonly height?: number;
  readonly title?: string;
  readonly xLabel?: string;
  readonly yLabel?: string;
  readonly series: readonly Series[];
  readonly referenceLines?: readonly ReferenceLine[];
  readonly xRange?: readonly [number, number];
  readonly yRange?: readonly [number, number];
}

/** Colours that stay distinct for up to eight sites. */
export const PALETTE: readonly Rgb[] = [
  [31, 119, 180],
  [214, 39, 40],
  [44, 160, 44],
  [148, 103, 189],
  [255, 127, 14],
  [23, 190, 207],
  [140, 86, 75],
  [227, 119, 194],
];

/** Tick positions at 1, 2 or 5 × 10^k covering [lo, hi] with about `count` intervals. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let m = Math.ceil(lo / step - 1e-9); m * step <= hi + step * 1e-9; m++)
    out.push(m === 0 ? 0 : Number.parseFloat((m * step).toPrecision(12)));
  return out;
}

function tickLabel(v: number, step: number): string {
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(digits);
}

class Canvas {
  readonly png: PNG;
  readonly w: number;
  readonly h: number;
  constructor(w: number, h: number) {
    this.w = w;
    this.h = h;
    this.png = new PNG({ width: w, height: h });
    this.png.data.fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const o = 4 * (y * this.w + x);
    this.png.data[o] = c[0];
    this.png.data[o + 1] = c[1];
    this.png.data[o + 2] = c[2];
    this.png.data[o + 3] = 255;
  }
  rect(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    for (let y = Math.round(y0); y <= Math.round(y1); y++)
      for (let x = Math.round(x0); x <= Math.round(x1); x++) this.set(x, y, c);
  }
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, width = 1, dash = 0): void {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
    const r = (width - 1) / 2;
    for (let s = 0; s <= n; s++) {
      if (dash > 0 && Math.floor(s / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * s) / n;
      const y = y0 + ((y1 - y0) * s) / n;
      if (width <= 1) this.set(x, y, c);
      else this.rect(x - r, y - r, x + r, y + r, c);
    }
  }
  disc(cx: number, cy: number, radius: number, c: Rgb): void {
    for (let y = -radius; y <= radius; y++)
      for (let x = -radius; x <= radius; x++)
        if (x * x + y * y <= radius * radius + radius) this.set(cx + x, cy + y, c);
  }
  /** Text with its top-left corner at (x, y); `vertical` rotates it 90° counter-clockwise (reads bottom-up). */
  text(s: string, x: number, y: number, c: Rgb, scale = 2, vertical = false): void {
    forEachTextPixel(s, (col, row) => {
      for (let sy = 0; sy < scale; sy++)
        for (let sx = 0; sx < scale; sx++) {
          const u = col * scale + sx;
          const v = row * scale + sy;
          if (vertical) this.set(x + v, y - u, c);
          else this.set(x + u, y + v, c);
        }
    });
  }
}

const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [225, 225, 225];

/** Renders the chart and returns the PNG bytes. */
export function renderChart(spec: ChartSpec): Buffer {
  const W = spec.width ?? 900;
  const H = spec.height ?? 620;
  const cv = new Canvas(W, H);
  const all = spec.series.flatMap((s) => s.points);
  const refY = (spec.referenceLines ?? []).map((r) => r.y);
  const xs = all.map((p) => p.x);
  const ys = [...all.map((p) => p.y), ...refY];
  const pad = (lo: number, hi: number): [number, number] => {
    const d = hi - lo || Math.abs(hi) || 1;
    return [lo - 0.06 * d, hi + 0.06 * d];
  };
  const [x0, x1] = spec.xRange ?? (xs.length > 0 ? pad(Math.min(...xs), Math.max(...xs)) : [0, 1]);
  const [y0, y1] = spec.yRange ?? (ys.length > 0 ? pad(Math.min(...ys), Math.max(...ys)) : [0, 1]);
  const xt = niceTicks(x0, x1);
  const yt = niceTicks(y0, y1);
  const ylabelW = Math.max(...yt.map((t) => textWidth(tickLabel(t, yt[1] - yt[0] || 1), 2)));
  const left = 40 + ylabelW + (spec.yLabel === undefined ? 0 : 24);
  const right = W - 24;
  const top = spec.title === undefined ? 24 : 56;
  const bottom = H - (spec.xLabel === undefined ? 48 : 72);
  const xa = Math.min(x0, xt[0]);
  const xb = Math.max(x1, xt[xt.length - 1]);
  const ya = Math.min(y0, yt[0]);
  const yb = Math.max(y1, yt[yt.length - 1]);
  const px = (x: number): number => left + ((x - xa) / (xb - xa || 1)) * (right - left);
  const py = (y: number): number => bottom - ((y - ya) / (yb - ya || 1)) * (bottom - top);

  // grid, ticks and tick labels
  const xstep = xt.length > 1 ? xt[1] - xt[0] : 1;
  const ystep = yt.length > 1 ? yt[1] - yt[0] : 1;
  for (const t of xt) {
    cv.line(px(t), top, px(t), bottom, GREY);
    cv.line(px(t), bottom, px(t), bottom + 6, BLACK);
    const s = tickLabel(t, xstep);
    cv.text(s, px(t) - textWidth(s, 2) / 2, bottom + 10, BLACK);
  }
  for (const t of yt) {
    cv.line(left, py(t), right, py(t), GREY);
    cv.line(left - 6, py(t), left, py(t), BLACK);
    const s = tickLabel(t, ystep);
    cv.text(s, left - 10 - textWidth(s, 2), py(t) - GLYPH_HEIGHT, BLACK);
  }
  cv.line(left, top, left, bottom, BLACK, 2);
  cv.line(left, bottom, right, bottom, BLACK, 2);

  for (const r of spec.referenceLines ?? []) {
    cv.line(left, py(r.y), right, py(r.y), r.color, 2, r.dashed === true ? 8 : 0);
    if (r.label !== undefined)
      cv.text(r.label, right - textWidth(r.label, 2) - 4, py(r.y) - 2 * GLYPH_HEIGHT - 4, r.color);
  }
  for (const s of spec.series) {
    if (s.kind === 'line') {
      const pts = [...s.points].sort((a, b) => a.x - b.x);
      for (let n = 1; n < pts.length; n++)
        cv.line(px(pts[n - 1].x), py(pts[n - 1].y), px(pts[n].x), py(pts[n].y), s.color, s.size ?? 2);
      for (const p of pts) cv.disc(px(p.x), py(p.y), 3, s.color);
    } else for (const p of s.points) cv.disc(px(p.x), py(p.y), s.size ?? 5, s.color);
  }

  if (spec.title !== undefined) cv.text(spec.title, (W - textWidth(spec.title, 3)) / 2, 16, BLACK, 3);
  if (spec.xLabel !== undefined)
    cv.text(spec.xLabel, (left + right - textWidth(spec.xLabel, 2)) / 2, H - 30, BLACK);
  if (spec.yLabel !== undefined)
    cv.text(spec.yLabel, 12, (top + bottom + textWidth(spec.yLabel, 2)) / 2, BLACK, 2, true);

  // legend, top-left inside the plot
  const labelled = spec.series.filter((s) => s.label !== undefined);
  let ly = top + 10;
  for (const s of labelled) {
    cv.disc(left + 18, ly + GLYPH_HEIGHT, 5, s.color);
    cv.text(s.label ?? '', left + 30, ly, BLACK);
    ly += 2 * GLYPH_HEIGHT + 8;
  }
  return PNG.sync.write(cv.png);
}
