/**
 * Overlay rendering shared by the report (delineation examples) and the DICOM Secondary Capture preview
 * series: a FLAIR slice windowed to 8-bit grey, shown in the radiological convention (domain/reporting/
 * display.ts), resampled to square output pixels (bilinear for the FLAIR, nearest for the masks), with the
 * lesion mask outlined in colour just outside each lesion (so the hyperintensity itself stays visible) and
 * new/enlarging lesions outlined in a second colour on top; optional burned-in text lines (5×7 bitmap font on
 * a dark band). PNG encoding with pngjs.
 *
 * Codes: REPORT.BAD_SLICE ('value'), REPORT.GRID_MISMATCH ('invalid').
 */
import { PNG } from 'pngjs';
import { DomainError } from '../../domain/errors.ts';
import { sameGrid, type Mask, type Volume } from '../../domain/model/volume.ts';
import { displayMapping, type DisplayMapping } from '../../domain/reporting/display.ts';
import { autoWindow, type IntensityWindow } from '../../domain/reporting/slices.ts';
import { forEachTextPixel, GLYPH_HEIGHT, textWidth } from '../raster/bitmap-font.ts';
import { ANNOTATION_RGB, CHANGE_RGB, LESION_RGB, type Rgb } from './palette.ts';

export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** RGB, 3 bytes per pixel, row-major. */
  readonly data: Uint8Array;
}

/** Voxel bounds [i0, i1) × [j0, j1) of the region to show (in-plane). */
export interface VoxelCrop {
  readonly i0: number;
  readonly i1: number;
  readonly j0: number;
  readonly j1: number;
}

export interface OverlayOptions {
  /** FLAIR display window (default: autoWindow of the whole FLAIR — pass one for a consistent series). */
  readonly window?: IntensityWindow;
  readonly changeMask?: Mask;
  /** Output pixels per voxel along the finer in-plane axis (default: enough for ≥ 256 px, at most 4). */
  readonly scale?: number;
  /** Show only this in-plane region. */
  readonly crop?: VoxelCrop;
  /** Text lines burned in at the top left (drawn in the annotation colour on a dark band). */
  readonly banner?: readonly string[];
  /** Font scale of the banner (default: 2 when the longest line fits at that size, else 1). */
  readonly bannerScale?: number;
  readonly outlines?: boolean;
}

export interface RenderedSlice {
  readonly image: RgbImage;
  /** Physical size of one output pixel (mm, square). */
  readonly mmPerPixel: number;
  readonly mapping: DisplayMapping;
  /** Output pixels drawn as lesion outline / change outline (for tests and figures). */
  readonly lesionOutlinePixels: number;
  readonly changeOutlinePixels: number;
}

export function createImage(width: number, height: number, rgb: Rgb = [0, 0, 0]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    data[3 * p] = rgb[0];
    data[3 * p + 1] = rgb[1];
    data[3 * p + 2] = rgb[2];
  }
  return { width, height, data };
}

export function fillRect(
  img: RgbImage,
  x0: number,
  y0: number,
  w: number,
  h: number,
  rgb: Rgb,
  alpha = 1,
): void {
  const xa = Math.max(0, Math.floor(x0));
  const ya = Math.max(0, Math.floor(y0));
  const xb = Math.min(img.width, Math.floor(x0 + w));
  const yb = Math.min(img.height, Math.floor(y0 + h));
  for (let y = ya; y < yb; y++)
    for (let x = xa; x < xb; x++) {
      const o = 3 * (y * img.width + x);
      for (let c = 0; c < 3; c++)
        img.data[o + c] = Math.round(img.data[o + c] * (1 - alpha) + rgb[c] * alpha);
    }
}

/** Draws text with the 5×7 bitmap font; (x, y) is the top-left corner. */
export function drawText(img: RgbImage, text: string, x: number, y: number, scale: number, rgb: Rgb): void {
  forEachTextPixel(text, (col, row) => {
    fillRect(img, x + col * scale, y + row * scale, scale, scale, rgb);
  });
}

/** Burns text lines in at the top left on a translucent dark band. */
export function drawBanner(
  img: RgbImage,
  lines: readonly string[],
  scale: number,
  rgb: Rgb = ANNOTATION_RGB,
): void {
  if (lines.length === 0) return;
  const pad = 2 * scale;
  const lineH = (GLYPH_HEIGHT + 3) * scale;
  const w = Math.max(...lines.map((l) => textWidth(l, scale))) + 2 * pad;
  fillRect(img, 0, 0, Math.min(img.width, w), lines.length * lineH + pad, [0, 0, 0], 0.65);
  lines.forEach((l, n) => {
    drawText(img, l, pad, pad + n * lineH, scale, rgb);
  });
}

function badSlice(k: number, nz: number): DomainError {
  return new DomainError('REPORT.BAD_SLICE', `slice ${k} is outside 0..${nz - 1}`, { issueType: 'value' });
}

/** Renders FLAIR slice k with the lesion (and change) outlines. */
export function renderOverlaySlice(
  flair: Volume,
  mask: Mask,
  k: number,
  options: OverlayOptions = {},
): RenderedSlice {
  const [nx, ny, nz] = flair.dims;
  if (!Number.isInteger(k) || k < 0 || k >= nz) throw badSlice(k, nz);
  if (!sameGrid(flair, mask))
    throw new DomainError('REPORT.GRID_MISMATCH', 'the lesion mask is not on the FLAIR grid', {
      issueType: 'invalid',
    });
  const change = options.changeMask;
  if (change !== undefined && !sameGrid(flair, change))
    throw new DomainError('REPORT.GRID_MISMATCH', 'the change mask is not on the FLAIR grid', {
      issueType: 'invalid',
    });
  const m = displayMapping(flair.affine, flair.dims);
  const win = options.window ?? autoWindow(flair);
  const crop = options.crop ?? { i0: 0, i1: nx, j0: 0, j1: ny };
  // crop in display coordinates (voxel steps along display x / y)
  const cu0 = m.transpose ? crop.j0 : crop.i0;
  const cu1 = m.transpose ? crop.j1 : crop.i1;
  const cv0 = m.transpose ? crop.i0 : crop.j0;
  const cv1 = m.transpose ? crop.i1 : crop.j1;
  const x0 = m.flipX ? m.width - cu1 : cu0;
  const x1 = m.flipX ? m.width - cu0 : cu1;
  const y0 = m.flipY ? m.height - cv1 : cv0;
  const y1 = m.flipY ? m.height - cv0 : cv1;
  const fine = Math.min(m.spacingX, m.spacingY);
  const longSide = Math.max(((x1 - x0) * m.spacingX) / fine, ((y1 - y0) * m.spacingY) / fine);
  const scale = options.scale ?? Math.max(1, Math.min(4, Math.ceil(256 / longSide)));
  const mm = fine / scale;
  const outW = Math.max(1, Math.round(((x1 - x0) * m.spacingX) / mm));
  const outH = Math.max(1, Math.round(((y1 - y0) * m.spacingY) / mm));
  const plane = nx * ny;
  const base = k * plane;
  // display (continuous, voxel units) → voxel (i, j) continuous
  const toVoxel = (x: number, y: number): [number, number] => {
    const u = m.flipX ? m.width - 1 - x : x;
    const v = m.flipY ? m.height - 1 - y : y;
    return m.transpose ? [v, u] : [u, v];
  };
  const grey = new Uint8Array(outW * outH);
  const inLesion = new Uint8Array(outW * outH);
  const inChange = new Uint8Array(outW * outH);
  const range = win.high - win.low;
  for (let oy = 0; oy < outH; oy++) {
    const dy = y0 + ((oy + 0.5) * mm) / m.spacingY - 0.5;
    for (let ox = 0; ox < outW; ox++) {
      const dx = x0 + ((ox + 0.5) * mm) / m.spacingX - 0.5;
      const [fi, fj] = toVoxel(dx, dy);
      // bilinear FLAIR
      const ia = Math.max(0, Math.min(nx - 1, Math.floor(fi)));
      const ja = Math.max(0, Math.min(ny - 1, Math.floor(fj)));
      const ib = Math.min(nx - 1, ia + 1);
      const jb = Math.min(ny - 1, ja + 1);
      const ti = Math.max(0, Math.min(1, fi - ia));
      const tj = Math.max(0, Math.min(1, fj - ja));
      const v00 = flair.data[base + ja * nx + ia];
      const v10 = flair.data[base + ja * nx + ib];
      const v01 = flair.data[base + jb * nx + ia];
      const v11 = flair.data[base + jb * nx + ib];
      const val = (v00 * (1 - ti) + v10 * ti) * (1 - tj) + (v01 * (1 - ti) + v11 * ti) * tj;
      const g = range > 0 ? ((val - win.low) / range) * 255 : 0;
      const o = oy * outW + ox;
      grey[o] = g <= 0 ? 0 : g >= 255 ? 255 : Math.round(g);
      const ni = Math.max(0, Math.min(nx - 1, Math.round(fi)));
      const nj = Math.max(0, Math.min(ny - 1, Math.round(fj)));
      const q = base + nj * nx + ni;
      if (mask.data[q] !== 0) inLesion[o] = 1;
      if (change !== undefined && change.data[q] !== 0) inChange[o] = 1;
    }
  }
  const img = createImage(outW, outH);
  for (let p = 0; p < outW * outH; p++) {
    img.data[3 * p] = grey[p];
    img.data[3 * p + 1] = grey[p];
    img.data[3 * p + 2] = grey[p];
  }
  let lesionOutline = 0;
  let changeOutline = 0;
  if (options.outlines !== false) {
    lesionOutline = drawOutside(img, inLesion, LESION_RGB);
    if (change !== undefined) changeOutline = drawOutside(img, inChange, CHANGE_RGB);
  }
  if (options.banner !== undefined && options.banner.length > 0)
    drawBanner(
      img,
      options.banner,
      options.bannerScale ?? (Math.max(...options.banner.map((l) => textWidth(l, 2))) + 8 <= outW ? 2 : 1),
    );
  return {
    image: img,
    mmPerPixel: mm,
    mapping: m,
    lesionOutlinePixels: lesionOutline,
    changeOutlinePixels: changeOutline,
  };
}

/** Colours the pixels outside a region that touch it (8-neighbourhood): a closed contour around each blob. */
function drawOutside(img: RgbImage, region: Uint8Array, rgb: Rgb): number {
  const { width: w, height: h } = img;
  let n = 0;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const o = y * w + x;
      if (region[o] !== 0) continue;
      let touch = false;
      for (let dy = -1; dy <= 1 && !touch; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx >= 0 && yy >= 0 && xx < w && yy < h && region[yy * w + xx] !== 0) {
            touch = true;
            break;
          }
        }
      if (touch) {
        img.data[3 * o] = rgb[0];
        img.data[3 * o + 1] = rgb[1];
        img.data[3 * o + 2] = rgb[2];
        n++;
      }
    }
  return n;
}

/** PNG bytes of an RGB image (8-bit; written as greyscale when every pixel is grey; maximum compression). */
export function encodePng(img: RgbImage): Uint8Array {
  const n = img.width * img.height;
  let grey = true;
  for (let p = 0; p < n && grey; p++)
    grey = img.data[3 * p] === img.data[3 * p + 1] && img.data[3 * p] === img.data[3 * p + 2];
  const png = new PNG({ width: img.width, height: img.height });
  const rgba = Buffer.alloc(n * 4);
  for (let p = 0; p < n; p++) {
    rgba[4 * p] = img.data[3 * p];
    rgba[4 * p + 1] = img.data[3 * p + 1];
    rgba[4 * p + 2] = img.data[3 * p + 2];
    rgba[4 * p + 3] = 255;
  }
  png.data = rgba;
  return new Uint8Array(PNG.sync.write(png, { colorType: grey ? 0 : 2, deflateLevel: 9 }));
}

/** Decodes a PNG to RGB (tests, figures). */
export function decodePng(bytes: Uint8Array): RgbImage {
  const png = PNG.sync.read(Buffer.from(bytes));
  const rgb = new Uint8Array(png.width * png.height * 3);
  for (let p = 0; p < png.width * png.height; p++) {
    rgb[3 * p] = png.data[4 * p];
    rgb[3 * p + 1] = png.data[4 * p + 1];
    rgb[3 * p + 2] = png.data[4 * p + 2];
  }
  return { width: png.width, height: png.height, data: rgb };
}
