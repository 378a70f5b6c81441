/**
 * Geometry in patient coordinates. Conventions used everywhere in this service:
 * - Patient space is DICOM LPS (x → patient Left, y → Posterior, z → Superior), millimetres.
 * - A voxel index (i, j, k) has i varying fastest in memory (as in DICOM rows/columns and NIfTI).
 * - An affine is a row-major 4×4 matrix mapping (i, j, k, 1) to (x, y, z, 1) in LPS.
 * NIfTI stores RAS; adapters convert at the boundary (flip the first two rows).
 */

export type Vec3 = readonly [number, number, number];
/** Row-major 4×4; element (r, c) at index 4·r + c. */
export type Mat4 = readonly number[];

export const IDENTITY: Mat4 = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];

export function mat4(rows: readonly (readonly number[])[]): Mat4 {
  const out: number[] = [];
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) out.push(rows[r]?.[c] ?? (r === c ? 1 : 0));
  return out;
}

export function multiply(a: Mat4, b: Mat4): Mat4 {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[4 * r + k] * b[4 * k + c];
      out[4 * r + c] = s;
    }
  return out;
}

export function applyAffine(m: Mat4, p: Vec3): Vec3 {
  return [
    m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + m[3],
    m[4] * p[0] + m[5] * p[1] + m[6] * p[2] + m[7],
    m[8] * p[0] + m[9] * p[1] + m[10] * p[2] + m[11],
  ];
}

/** Applies only the linear part (a direction or displacement). */
export function applyLinear(m: Mat4, v: Vec3): Vec3 {
  return [
    m[0] * v[0] + m[1] * v[1] + m[2] * v[2],
    m[4] * v[0] + m[5] * v[1] + m[6] * v[2],
    m[8] * v[0] + m[9] * v[1] + m[10] * v[2],
  ];
}

/** Inverse of an affine 4×4 (last row 0 0 0 1). Throws on a singular matrix. */
export function invert(m: Mat4): Mat4 {
  const a = m[0],
    b = m[1],
    c = m[2],
    d = m[4],
    e = m[5],
    f = m[6],
    g = m[8],
    h = m[9],
    i = m[10];
  const A = e * i - f * h,
    B = -(d * i - f * g),
    C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) throw new RangeError('singular affine');
  const inv = [
    A / det,
    -(b * i - c * h) / det,
    (b * f - c * e) / det,
    B / det,
    (a * i - c * g) / det,
    -(a * f - c * d) / det,
    C / det,
    -(a * h - b * g) / det,
    (a * e - b * d) / det,
  ];
  const t: Vec3 = [m[3], m[7], m[11]];
  const ti = [
    -(inv[0] * t[0] + inv[1] * t[1] + inv[2] * t[2]),
    -(inv[3] * t[0] + inv[4] * t[1] + inv[5] * t[2]),
    -(inv[6] * t[0] + inv[7] * t[1] + inv[8] * t[2]),
  ];
  return [
    inv[0],
    inv[1],
    inv[2],
    ti[0],
    inv[3],
    inv[4],
    inv[5],
    ti[1],
    inv[6],
    inv[7],
    inv[8],
    ti[2],
    0,
    0,
    0,
    1,
  ];
}

export function column(m: Mat4, c: 0 | 1 | 2 | 3): Vec3 {
  return [m[c], m[4 + c], m[8 + c]];
}

export function norm(v: Vec3): number {
  return Math.hypot(v[0], v[1], v[2]);
}

export function dot(a: Vec3, b: Vec3): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

export function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

export function sub(a: Vec3, b: Vec3): Vec3 {
  return [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
}

export function add(a: Vec3, b: Vec3): Vec3 {
  return [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
}

export function scale(a: Vec3, s: number): Vec3 {
  return [a[0] * s, a[1] * s, a[2] * s];
}

export function normalize(v: Vec3): Vec3 {
  const n = norm(v);
  if (n === 0) throw new RangeError('zero vector');
  return [v[0] / n, v[1] / n, v[2] / n];
}

/** Voxel spacing (mm) along i, j, k: the lengths of the affine's first three columns. */
export function spacingOf(m: Mat4): Vec3 {
  return [norm(column(m, 0)), norm(column(m, 1)), norm(column(m, 2))];
}

/**
 * Orientation code in DICOM letters: for each voxel axis, the patient direction it points to most
 * (e.g. 'LPS' = i → Left, j → Posterior, k → Superior; 'RAS' = i → Right, j → Anterior, k → Superior).
 */
export function orientationCode(m: Mat4): string {
  const letters: [string, string][] = [
    ['L', 'R'],
    ['P', 'A'],
    ['S', 'I'],
  ];
  let code = '';
  for (const c of [0, 1, 2] as const) {
    const v = column(m, c);
    const ax = [0, 1, 2].reduce((best, x) => (Math.abs(v[x]) > Math.abs(v[best]) ? x : best), 0);
    const pair = letters[ax];
    code += v[ax] >= 0 ? pair[0] : pair[1];
  }
  return code;
}

/** Maximum absolute element-wise difference between two affines (mm for the translation column). */
export function affineMaxDiff(a: Mat4, b: Mat4): number {
  let d = 0;
  for (let x = 0; x < 12; x++) d = Math.max(d, Math.abs(a[x] - b[x]));
  return d;
}

/** RAS ↔ LPS (the same matrix both ways): negates x and y. */
export const RAS_TO_LPS: Mat4 = [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
