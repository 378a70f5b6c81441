/**
 * How to show a slice of a volume on screen in the radiological convention, whatever the voxel order: axial
 * slices with the patient's right on the screen's left and anterior at the top, coronal with right on the left
 * and superior at the top, sagittal with anterior on the left and superior at the top. Pure geometry: the
 * mapping from display pixels (x right, y down) to voxel (i, j) of slice k, the display's physical pixel
 * size, and the DICOM Patient Orientation letters of the display's row and column directions.
 */
import { column, spacingOf, type Mat4, type Vec3 } from '../model/geometry.ts';

export type Plane = 'axial' | 'coronal' | 'sagittal';

export interface DisplayMapping {
  readonly plane: Plane;
  /** True when display x runs along voxel j (and y along i). */
  readonly transpose: boolean;
  /** Display x runs against the voxel axis it maps to. */
  readonly flipX: boolean;
  readonly flipY: boolean;
  /** Display size in voxels of the slice. */
  readonly width: number;
  readonly height: number;
  /** Physical size (mm) of one voxel step along display x / y. */
  readonly spacingX: number;
  readonly spacingY: number;
  /** DICOM Patient Orientation (0020,0020): direction of display rows (x) and columns (y), e.g. ['L', 'P']. */
  readonly patientOrientation: readonly [string, string];
}

const LETTERS: readonly (readonly [string, string])[] = [
  ['L', 'R'],
  ['P', 'A'],
  ['S', 'I'],
];

function dominant(v: Vec3): { axis: 0 | 1 | 2; sign: 1 | -1 } {
  const a =
    Math.abs(v[0]) >= Math.abs(v[1]) && Math.abs(v[0]) >= Math.abs(v[2])
      ? 0
      : Math.abs(v[1]) >= Math.abs(v[2])
        ? 1
        : 2;
  return { axis: a, sign: v[a] >= 0 ? 1 : -1 };
}

/** Letters of a direction (up to three, most significant first), as DICOM writes Patient Orientation. */
export function orientationLetters(v: Vec3): string {
  const order = [0, 1, 2].sort((a, b) => Math.abs(v[b]) - Math.abs(v[a]));
  let s = '';
  for (const a of order) {
    if (Math.abs(v[a]) < 0.1) continue;
    s += v[a] >= 0 ? LETTERS[a][0] : LETTERS[a][1];
  }
  return s === '' ? 'L' : s;
}

/** The display mapping for the slices (constant k) of a volume with this affine and dims. */
export function displayMapping(affine: Mat4, dims: Vec3): DisplayMapping {
  const ci = column(affine, 0);
  const cj = column(affine, 1);
  const ck = column(affine, 2);
  const nAxis = dominant(ck).axis;
  const plane: Plane = nAxis === 2 ? 'axial' : nAxis === 1 ? 'coronal' : 'sagittal';
  // wanted screen directions in LPS: right-of-screen and down-of-screen
  const right: Vec3 = plane === 'sagittal' ? [0, 1, 0] : [1, 0, 0];
  const down: Vec3 = plane === 'axial' ? [0, 1, 0] : [0, 0, -1];
  const along = (v: Vec3, w: Vec3): number => v[0] * w[0] + v[1] * w[1] + v[2] * w[2];
  const ni = Math.hypot(ci[0], ci[1], ci[2]);
  const nj = Math.hypot(cj[0], cj[1], cj[2]);
  const iRight = Math.abs(along(ci, right)) / ni;
  const jRight = Math.abs(along(cj, right)) / nj;
  const transpose = jRight > iRight;
  const xVec = transpose ? cj : ci;
  const yVec = transpose ? ci : cj;
  const flipX = along(xVec, right) < 0;
  const flipY = along(yVec, down) < 0;
  const sp = spacingOf(affine);
  const dirX: Vec3 = flipX ? [-xVec[0], -xVec[1], -xVec[2]] : xVec;
  const dirY: Vec3 = flipY ? [-yVec[0], -yVec[1], -yVec[2]] : yVec;
  return {
    plane,
    transpose,
    flipX,
    flipY,
    width: transpose ? dims[1] : dims[0],
    height: transpose ? dims[0] : dims[1],
    spacingX: transpose ? sp[1] : sp[0],
    spacingY: transpose ? sp[0] : sp[1],
    patientOrientation: [orientationLetters(dirX), orientationLetters(dirY)],
  };
}

/** Voxel (i, j) shown at display pixel (x, y) (integers, 0-based). */
export function displayToVoxel(m: DisplayMapping, x: number, y: number): readonly [number, number] {
  const u = m.flipX ? m.width - 1 - x : x;
  const v = m.flipY ? m.height - 1 - y : y;
  return m.transpose ? [v, u] : [u, v];
}

/** Display pixel (x, y) of voxel (i, j). */
export function voxelToDisplay(m: DisplayMapping, i: number, j: number): readonly [number, number] {
  const u = m.transpose ? j : i;
  const v = m.transpose ? i : j;
  return [m.flipX ? m.width - 1 - u : u, m.flipY ? m.height - 1 - v : v];
}
