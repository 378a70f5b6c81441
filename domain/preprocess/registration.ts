/**
 * Intensity-based linear registration (rigid or affine) of two volumes in patient space.
 *
 * CONVENTION (ITK's): the result's `matrix` maps points of the FIXED image (LPS mm) to points of the MOVING image
 * (LPS mm). To bring the moving image onto the fixed grid, sample it at matrix · p for every fixed voxel centre p:
 * `resampleLinear(moving, gridOf(fixed), { transform: result.matrix })`. ITK transform files
 * (adapters/itk/itk-transform.ts) use the same direction, so a dataset's "<moving>_to_<fixed>.txt" compares
 * directly with `matrix`. To map a *fixed-space* lesion centroid into the moving (e.g. prior) exam, apply
 * `matrix`; to map moving-space points onto the fixed exam, apply invert(matrix).
 *
 * Method:
 * - Multi-resolution: each level resamples both images to isotropic `spacing` mm (Gaussian anti-aliasing from
 *   their own grids, so 0.5 mm in-plane and 4 mm thick slices meet on equal footing) — coarse to fine.
 * - Metric over up to `samples` fixed voxels of the level grid (inside `fixedMask` when given, else the fixed
 *   image's foreground), moving intensities by trilinear interpolation: Mattes mutual information (cubic
 *   B-spline Parzen window on the moving intensity, box window on the fixed, `bins` bins) for multi-modal pairs,
 *   or normalised cross-correlation for same-contrast pairs. Analytic gradients (chain rule through the trilinear
 *   interpolation's spatial derivative).
 * - Optimiser: quasi-Newton (BFGS) ascent with a backtracking line search in scaled parameters (1 unit ≈ 1 mm
 *   displacement at the brain's radius), each step capped at the level's spacing.
 * - Transform: x ↦ A (x − c) + c + t about the fixed sample centroid c. Rigid: A = Rz(γ)·Ry(β)·Rx(α). Affine: all
 *   of A, initialised from the rigid result and refined on the two finest levels.
 * - Initialisation: 'geometry' (headers only: identity), 'com' (centres of intensity mass), 'moments' (com + the
 *   principal-axes rotation closest to identity), or 'auto' (default: whichever of the three scores best at the
 *   coarsest level).
 * - Quality: the final metric value, and the NCC of fixed vs. registered moving over the fixed samples.
 *
 * Codes: REGISTRATION.EMPTY_MASK (no fixed sample), REGISTRATION.NO_OVERLAP (the images do not overlap),
 * REGISTRATION.INVALID_OPTION.
 */
import { DomainError } from '../errors.ts';
import { applyAffine, invert, multiply, spacingOf, type Mat4, type Vec3 } from '../model/geometry.ts';
import type { Mask, Volume } from '../model/volume.ts';
import { maskedPercentiles, otsuThreshold, sampledPercentiles } from './filters.ts';
import { resampleLinear, resampleMask, respacedGrid } from './resample.ts';

export type TransformKind = 'rigid' | 'affine';
export type RegistrationMetric = 'mi' | 'ncc';
export type Initialization = 'geometry' | 'com' | 'moments' | 'auto';

export interface RegistrationOptions {
  /** Default 'rigid'. */
  readonly transform?: TransformKind;
  /** Default 'mi' (Mattes mutual information). */
  readonly metric?: RegistrationMetric;
  /** Fixed-image region that drives the metric (any grid; resampled). Default: the fixed foreground. */
  readonly fixedMask?: Mask;
  /** Isotropic spacing (mm) of each pyramid level, coarse → fine. Default [6, 3, 1.5]. */
  readonly levels?: readonly number[];
  /** Default 'auto'. Ignored when `initial` is given. */
  readonly initialization?: Initialization;
  /** Starting transform (fixed → moving LPS), e.g. a previous result. */
  readonly initial?: Mat4;
  /** Fixed samples per level (default 40 000). */
  readonly samples?: number;
  /** Histogram bins for MI (default 32). */
  readonly bins?: number;
  /** Iterations per level and stage (default 200). */
  readonly maxIterations?: number;
  /** Sampling seed (default 1): results are deterministic for a given seed. */
  readonly seed?: number;
}

export interface RegistrationLevelReport {
  readonly spacing: number;
  readonly stage: TransformKind;
  readonly iterations: number;
  readonly value: number;
  readonly samples: number;
}

export interface RegistrationResult {
  /** Fixed LPS → moving LPS (ITK convention, see the file comment). */
  readonly matrix: Mat4;
  readonly metric: RegistrationMetric;
  /** Final metric value at the finest level (MI in nats, or NCC). Higher is better. */
  readonly value: number;
  /** Optimiser iterations over all levels and stages. */
  readonly iterations: number;
  /** NCC between the fixed samples and the registered moving image at the finest level (−1..1). */
  readonly ncc: number;
  readonly transform: TransformKind;
  /** Which initialisation was used ('initial' when one was given). */
  readonly initialization: string;
  /** Centre of the parametrisation (fixed sample centroid, LPS). */
  readonly centre: Vec3;
  readonly levels: readonly RegistrationLevelReport[];
}

/** Rotation matrix (row-major 3×3) Rz(γ)·Ry(β)·Rx(α) and its three partial derivatives. */
function rotation(a: number, b: number, g: number): { R: number[]; dR: number[][] } {
  const [ca, sa, cb, sb, cg, sg] = [
    Math.cos(a),
    Math.sin(a),
    Math.cos(b),
    Math.sin(b),
    Math.cos(g),
    Math.sin(g),
  ];
  const Rx = [1, 0, 0, 0, ca, -sa, 0, sa, ca];
  const Ry = [cb, 0, sb, 0, 1, 0, -sb, 0, cb];
  const Rz = [cg, -sg, 0, sg, cg, 0, 0, 0, 1];
  const dRx = [0, 0, 0, 0, -sa, -ca, 0, ca, -sa];
  const dRy = [-sb, 0, cb, 0, 0, 0, -cb, 0, -sb];
  const dRz = [-sg, -cg, 0, cg, -sg, 0, 0, 0, 0];
  return {
    R: mul3(Rz, mul3(Ry, Rx)),
    dR: [mul3(Rz, mul3(Ry, dRx)), mul3(Rz, mul3(dRy, Rx)), mul3(dRz, mul3(Ry, Rx))],
  };
}

function mul3(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) out[3 * r + c] += a[3 * r + k] * b[3 * k + c];
  return out;
}

/** Euler angles (α, β, γ) of a rotation R = Rz(γ)·Ry(β)·Rx(α). */
function eulerOf(R: readonly number[]): [number, number, number] {
  const b = Math.asin(Math.max(-1, Math.min(1, -R[6])));
  const a = Math.atan2(R[7], R[8]);
  const g = Math.atan2(R[3], R[0]);
  return [a, b, g];
}

function centredMatrix(A: readonly number[], t: Vec3, c: Vec3): Mat4 {
  const off = [0, 1, 2].map(
    (r) => t[r] + c[r] - (A[3 * r] * c[0] + A[3 * r + 1] * c[1] + A[3 * r + 2] * c[2]),
  );
  return [A[0], A[1], A[2], off[0], A[3], A[4], A[5], off[1], A[6], A[7], A[8], off[2], 0, 0, 0, 1];
}

/** Splits a 4×4 into A and t about centre c (x ↦ A (x − c) + c + t). */
function aboutCentre(m: Mat4, c: Vec3): { A: number[]; t: Vec3 } {
  const A = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
  const t: Vec3 = [0, 1, 2].map(
    (r) => m[4 * r + 3] - c[r] + (A[3 * r] * c[0] + A[3 * r + 1] * c[1] + A[3 * r + 2] * c[2]),
  ) as unknown as Vec3;
  return { A, t };
}

/** Closest rotation to a 3×3 (polar decomposition by Newton iteration). */
function orthonormalize(A: readonly number[]): number[] {
  let X = [...A];
  for (let it = 0; it < 30; it++) {
    const inv = invert([X[0], X[1], X[2], 0, X[3], X[4], X[5], 0, X[6], X[7], X[8], 0, 0, 0, 0, 1]);
    // X ← (X + X^−T) / 2
    const next = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((e) => {
      const r = Math.floor(e / 3);
      const c = e % 3;
      return 0.5 * (X[e] + inv[4 * c + r]);
    });
    const diff = next.reduce((s, v, e) => s + Math.abs(v - X[e]), 0);
    X = next;
    if (diff < 1e-12) break;
  }
  return X;
}

// ---------------------------------------------------------------------------------------------------------------
// Level data

interface LevelImage {
  readonly dims: Vec3;
  readonly data: Float32Array;
  /** LPS → continuous voxel index. */
  readonly inv: Mat4;
}

interface Samples {
  readonly n: number;
  /** LPS coordinates minus the centre, 3 per sample. */
  readonly x: Float64Array;
  readonly f: Float64Array;
}

function lcg(seed: number): () => number {
  let s = (seed >>> 0) % 2147483648 || 1;
  return () => {
    s = (1103515245 * s + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/** The fixed image's foreground: above half of Otsu's threshold between its robust low and high values. */
function foregroundThreshold(v: Volume): number {
  const step = Math.max(1, Math.floor(v.data.length / 300_000));
  const [lo, hi] = sampledPercentiles(v.data, [1, 99.5], step);
  return 0.5 * otsuThreshold(v.data, lo, hi, 128, step);
}

function levelImage(v: Volume, spacing: number): { image: LevelImage; volume: Volume<Float32Array> } {
  const sp = spacingOf(v.affine);
  // never finer than the image itself along its finest axis: nothing to gain, more voxels
  const s = Math.max(spacing, Math.min(sp[0], sp[1], sp[2]));
  const volume = resampleLinear(v, respacedGrid(v, s));
  return { image: { dims: volume.dims, data: volume.data, inv: invert(volume.affine) }, volume };
}

function drawSamples(
  fixed: Volume<Float32Array>,
  region: Uint8Array,
  count: number,
  seed: number,
  centre: Vec3 | null,
): { samples: Samples; centre: Vec3 } {
  const idx: number[] = [];
  for (let x = 0; x < region.length; x++) if (region[x] !== 0) idx.push(x);
  if (idx.length === 0)
    throw new DomainError('REGISTRATION.EMPTY_MASK', 'no fixed-image voxel lies in the registration mask', {
      issueType: 'invalid',
    });
  // partial Fisher–Yates: a deterministic random subset
  const rnd = lcg(seed);
  const n = Math.min(count, idx.length);
  for (let s = 0; s < n; s++) {
    const r = s + Math.floor(rnd() * (idx.length - s));
    const t = idx[s];
    idx[s] = idx[r];
    idx[r] = t;
  }
  const [nx, ny] = fixed.dims;
  const pts = new Float64Array(3 * n);
  const f = new Float64Array(n);
  const a = fixed.affine;
  let cx = 0;
  let cy = 0;
  let cz = 0;
  for (let s = 0; s < n; s++) {
    const v = idx[s];
    const i = v % nx;
    const j = Math.floor(v / nx) % ny;
    const k = Math.floor(v / (nx * ny));
    const p = applyAffine(a, [i, j, k]);
    pts[3 * s] = p[0];
    pts[3 * s + 1] = p[1];
    pts[3 * s + 2] = p[2];
    cx += p[0];
    cy += p[1];
    cz += p[2];
    f[s] = fixed.data[v];
  }
  const c: Vec3 = centre ?? [cx / n, cy / n, cz / n];
  for (let s = 0; s < n; s++) {
    pts[3 * s] -= c[0];
    pts[3 * s + 1] -= c[1];
    pts[3 * s + 2] -= c[2];
  }
  return { samples: { n, x: pts, f }, centre: c };
}

// ---------------------------------------------------------------------------------------------------------------
// Metrics with gradients w.r.t. A (3×3, about the centre) and t

interface Evaluation {
  readonly value: number;
  readonly ncc: number;
  readonly inside: number;
  /** dMetric/dA (row-major 3×3) and dMetric/dt. */
  readonly gA: Float64Array;
  readonly gt: Float64Array;
}

interface MetricContext {
  readonly metric: RegistrationMetric;
  readonly moving: LevelImage;
  readonly samples: Samples;
  readonly centre: Vec3;
  readonly bins: number;
  readonly fixedRange: readonly [number, number];
  readonly movingRange: readonly [number, number];
  // scratch
  readonly m: Float64Array;
  readonly g: Float64Array;
  readonly ok: Uint8Array;
}

function cubicBSpline(x: number): number {
  const a = Math.abs(x);
  if (a < 1) return (4 - 6 * a * a + 3 * a * a * a) / 6;
  if (a < 2) {
    const b = 2 - a;
    return (b * b * b) / 6;
  }
  return 0;
}

function cubicBSplineDerivative(x: number): number {
  const a = Math.abs(x);
  const s = x < 0 ? -1 : 1;
  if (a < 1) return s * (-2 * a + 1.5 * a * a);
  if (a < 2) {
    const b = 2 - a;
    return s * (-0.5 * b * b);
  }
  return 0;
}

/** Samples the moving image at T(x) for every sample (value and LPS gradient); returns how many fell inside. */
function sampleMoving(ctx: MetricContext, A: readonly number[], t: Vec3): number {
  const { moving, samples, centre } = ctx;
  const M = multiply(moving.inv, centredMatrix(A, t, centre));
  // with x relative to the centre: index = M · (x + c)
  const off = applyAffine(M, centre);
  const L = moving.inv; // gradient: ∂v/∂y = Linvᵀ ∇_index v
  const [nx, ny, nz] = moving.dims;
  const sxy = nx * ny;
  const d = moving.data;
  const { m, g, ok } = ctx;
  const xs = samples.x;
  let inside = 0;
  for (let s = 0; s < samples.n; s++) {
    const px = xs[3 * s];
    const py = xs[3 * s + 1];
    const pz = xs[3 * s + 2];
    const cx = M[0] * px + M[1] * py + M[2] * pz + off[0];
    const cy = M[4] * px + M[5] * py + M[6] * pz + off[1];
    const cz = M[8] * px + M[9] * py + M[10] * pz + off[2];
    if (cx < 0 || cy < 0 || cz < 0 || cx > nx - 1 || cy > ny - 1 || cz > nz - 1) {
      ok[s] = 0;
      continue;
    }
    const x0 = Math.min(Math.floor(cx), nx - 2 < 0 ? 0 : nx - 2);
    const y0 = Math.min(Math.floor(cy), ny - 2 < 0 ? 0 : ny - 2);
    const z0 = Math.min(Math.floor(cz), nz - 2 < 0 ? 0 : nz - 2);
    const fx = cx - x0;
    const fy = cy - y0;
    const fz = cz - z0;
    const dx = nx > 1 ? 1 : 0;
    const dy = ny > 1 ? nx : 0;
    const dz = nz > 1 ? sxy : 0;
    const p = x0 + nx * y0 + sxy * z0;
    const v000 = d[p];
    const v100 = d[p + dx];
    const v010 = d[p + dy];
    const v110 = d[p + dy + dx];
    const v001 = d[p + dz];
    const v101 = d[p + dz + dx];
    const v011 = d[p + dz + dy];
    const v111 = d[p + dz + dy + dx];
    const c00 = v000 + fx * (v100 - v000);
    const c10 = v010 + fx * (v110 - v010);
    const c01 = v001 + fx * (v101 - v001);
    const c11 = v011 + fx * (v111 - v011);
    const c0 = c00 + fy * (c10 - c00);
    const c1 = c01 + fy * (c11 - c01);
    m[s] = c0 + fz * (c1 - c0);
    // partial derivatives w.r.t. the continuous index
    const gx =
      (1 - fz) * ((1 - fy) * (v100 - v000) + fy * (v110 - v010)) +
      fz * ((1 - fy) * (v101 - v001) + fy * (v111 - v011));
    const gy = (1 - fz) * (c10 - c00) + fz * (c11 - c01);
    const gz = c1 - c0;
    g[3 * s] = L[0] * gx + L[4] * gy + L[8] * gz;
    g[3 * s + 1] = L[1] * gx + L[5] * gy + L[9] * gz;
    g[3 * s + 2] = L[2] * gx + L[6] * gy + L[10] * gz;
    ok[s] = 1;
    inside++;
  }
  return inside;
}

/** NCC over the samples currently inside. */
function nccOf(ctx: MetricContext): { ncc: number; mf: number; mm: number; sff: number; smm: number } {
  const { samples, m, ok } = ctx;
  let n = 0;
  let sf = 0;
  let sm = 0;
  for (let s = 0; s < samples.n; s++)
    if (ok[s]) {
      n++;
      sf += samples.f[s];
      sm += m[s];
    }
  const mf = sf / n;
  const mm = sm / n;
  let sff = 0;
  let smm = 0;
  let sfm = 0;
  for (let s = 0; s < samples.n; s++)
    if (ok[s]) {
      const a = samples.f[s] - mf;
      const b = m[s] - mm;
      sff += a * a;
      smm += b * b;
      sfm += a * b;
    }
  const den = Math.sqrt(sff * smm);
  return { ncc: den > 0 ? sfm / den : 0, mf, mm, sff, smm };
}

function evaluate(ctx: MetricContext, A: readonly number[], t: Vec3): Evaluation {
  const inside = sampleMoving(ctx, A, t);
  const gA = new Float64Array(9);
  const gt = new Float64Array(3);
  if (inside < Math.max(50, 0.05 * ctx.samples.n)) return { value: -Infinity, ncc: 0, inside, gA, gt };
  const { samples, m, g, ok } = ctx;
  const stats = nccOf(ctx);
  // per-sample derivative of the metric w.r.t. the moving intensity
  const w = new Float64Array(samples.n);
  let value: number;
  if (ctx.metric === 'ncc') {
    value = stats.ncc;
    const den = Math.sqrt(stats.sff * stats.smm);
    if (den > 0)
      for (let s = 0; s < samples.n; s++)
        if (ok[s]) w[s] = (samples.f[s] - stats.mf) / den - (stats.ncc * (m[s] - stats.mm)) / stats.smm;
  } else {
    const B = ctx.bins;
    const [flo, fhi] = ctx.fixedRange;
    const [mlo, mhi] = ctx.movingRange;
    const fScale = B / (fhi - flo);
    const mScale = (B - 5) / (mhi - mlo);
    const joint = new Float64Array(B * B);
    const fb = new Int32Array(samples.n);
    const mb = new Float64Array(samples.n);
    for (let s = 0; s < samples.n; s++) {
      if (!ok[s]) continue;
      const fv = samples.f[s];
      fb[s] = Math.max(0, Math.min(B - 1, Math.floor((fv - flo) * fScale)));
      const mv = m[s] < mlo ? mlo : m[s] > mhi ? mhi : m[s];
      const kappa = 2 + (mv - mlo) * mScale;
      mb[s] = kappa;
      const k0 = Math.floor(kappa);
      const row = fb[s] * B;
      for (let kb = k0 - 1; kb <= k0 + 2; kb++) joint[row + kb] += cubicBSpline(kb - kappa);
    }
    const pf = new Float64Array(B);
    const pm = new Float64Array(B);
    for (let a = 0; a < B; a++)
      for (let b = 0; b < B; b++) {
        const p = joint[a * B + b] / inside;
        joint[a * B + b] = p;
        pf[a] += p;
        pm[b] += p;
      }
    value = 0;
    const logRatio = new Float64Array(B * B); // log p(ι,κ) − log p_m(κ)
    for (let a = 0; a < B; a++)
      for (let b = 0; b < B; b++) {
        const p = joint[a * B + b];
        if (p > 1e-16) {
          value += p * Math.log(p / (pf[a] * pm[b]));
          logRatio[a * B + b] = Math.log(p / pm[b]);
        }
      }
    for (let s = 0; s < samples.n; s++) {
      if (!ok[s]) continue;
      if (m[s] <= mlo || m[s] >= mhi) continue; // clamped: no derivative
      const kappa = mb[s];
      const k0 = Math.floor(kappa);
      const row = fb[s] * B;
      let acc = 0;
      for (let kb = k0 - 1; kb <= k0 + 2; kb++)
        acc += cubicBSplineDerivative(kb - kappa) * logRatio[row + kb];
      // dMI/dκ = −(1/N) Σ β′(κb − κ) L ; dκ/dm = mScale
      w[s] = (-acc / inside) * mScale;
    }
  }
  const xs = samples.x;
  for (let s = 0; s < samples.n; s++) {
    if (!ok[s] || w[s] === 0) continue;
    const ws = w[s];
    const g0 = ws * g[3 * s];
    const g1 = ws * g[3 * s + 1];
    const g2 = ws * g[3 * s + 2];
    const x0 = xs[3 * s];
    const x1 = xs[3 * s + 1];
    const x2 = xs[3 * s + 2];
    gA[0] += g0 * x0;
    gA[1] += g0 * x1;
    gA[2] += g0 * x2;
    gA[3] += g1 * x0;
    gA[4] += g1 * x1;
    gA[5] += g1 * x2;
    gA[6] += g2 * x0;
    gA[7] += g2 * x1;
    gA[8] += g2 * x2;
    gt[0] += g0;
    gt[1] += g1;
    gt[2] += g2;
  }
  return { value, ncc: stats.ncc, inside, gA, gt };
}

// ---------------------------------------------------------------------------------------------------------------
// Parametrisations in scaled units (1 unit ≈ 1 mm at radius ρ)

interface Parametrisation {
  readonly size: number;
  toTransform(u: readonly number[]): { A: number[]; t: Vec3 };
  gradient(u: readonly number[], e: Evaluation): number[];
}

function rigidParams(rho: number): Parametrisation {
  return {
    size: 6,
    toTransform(u) {
      return { A: rotation(u[0] / rho, u[1] / rho, u[2] / rho).R, t: [u[3], u[4], u[5]] };
    },
    gradient(u, e) {
      const { dR } = rotation(u[0] / rho, u[1] / rho, u[2] / rho);
      const out = [0, 0, 0, e.gt[0], e.gt[1], e.gt[2]];
      for (let q = 0; q < 3; q++) {
        let s = 0;
        for (let x = 0; x < 9; x++) s += e.gA[x] * dR[q][x];
        out[q] = s / rho;
      }
      return out;
    },
  };
}

function affineParams(rho: number): Parametrisation {
  return {
    size: 12,
    toTransform(u) {
      return { A: u.slice(0, 9).map((x) => x / rho), t: [u[9], u[10], u[11]] };
    },
    gradient(_u, e) {
      return [...Array.from(e.gA, (x) => x / rho), e.gt[0], e.gt[1], e.gt[2]];
    },
  };
}

/**
 * Maximises the metric over scaled parameters: quasi-Newton (BFGS on the inverse Hessian) with a backtracking
 * line search, every step capped at `maxStep` units (≈ mm) to stay inside the capture range. Stops when a step
 * shorter than `minStep` no longer improves the metric, or after `maxIterations`.
 */
function optimise(
  ctx: MetricContext,
  par: Parametrisation,
  start: readonly number[],
  maxStep: number,
  minStep: number,
  maxIterations: number,
): { u: number[]; value: number; iterations: number } {
  const n = par.size;
  const score = (u: readonly number[]): { f: number; g: number[] } => {
    const { A, t } = par.toTransform(u);
    const e = evaluate(ctx, A, t);
    if (!Number.isFinite(e.value)) return { f: -Infinity, g: new Array<number>(n).fill(0) };
    return { f: e.value, g: par.gradient(u, e) };
  };
  let u = [...start];
  let cur = score(u);
  if (!Number.isFinite(cur.f))
    throw new DomainError('REGISTRATION.NO_OVERLAP', 'the moving image does not overlap the fixed samples', {
      issueType: 'processing',
      details: { samples: ctx.samples.n },
    });
  const identity = (h: number): number[][] =>
    Array.from({ length: n }, (_, r) => Array.from({ length: n }, (_, c) => (r === c ? h : 0)));
  const norm = (v: readonly number[]): number => Math.hypot(...v);
  // H approximates the inverse of the (negated) Hessian; the first step has length maxStep / 2
  let H = identity(maxStep / 2 / Math.max(norm(cur.g), 1e-30));
  let it = 0;
  for (; it < maxIterations; it++) {
    // ascent direction p = H g
    let p = H.map((row) => row.reduce((s, h, c) => s + h * cur.g[c], 0));
    let slope = p.reduce((s, x, q) => s + x * cur.g[q], 0);
    if (!(slope > 0)) {
      H = identity(maxStep / 2 / Math.max(norm(cur.g), 1e-30));
      p = cur.g.map((x) => x * H[0][0]);
      slope = p.reduce((s, x, q) => s + x * cur.g[q], 0);
      if (!(slope > 0)) break;
    }
    const len = norm(p);
    if (len > maxStep) {
      p = p.map((x) => (x * maxStep) / len);
      slope *= maxStep / len;
    }
    let alpha = 1;
    let next: { f: number; g: number[] } | null = null;
    let un: number[] = u;
    while (alpha * Math.min(len, maxStep) >= minStep) {
      un = u.map((x, q) => x + alpha * p[q]);
      const trial = score(un);
      if (trial.f >= cur.f + 1e-4 * alpha * slope) {
        next = trial;
        break;
      }
      alpha *= 0.5;
    }
    if (next === null) break;
    const sVec = un.map((x, q) => x - u[q]);
    // for maximisation: y = −(g_new − g_old)
    const yVec = next.g.map((x, q) => -(x - cur.g[q]));
    const sy = sVec.reduce((s, x, q) => s + x * yVec[q], 0);
    const moved = norm(sVec);
    u = un;
    cur = next;
    if (sy > 1e-12) {
      const Hy = H.map((row) => row.reduce((s, h, c) => s + h * yVec[c], 0));
      const yHy = yVec.reduce((s, x, q) => s + x * Hy[q], 0);
      const rho = 1 / sy;
      const k = (1 + yHy * rho) * rho;
      H = H.map((row, r) =>
        row.map((h, c) => h + k * sVec[r] * sVec[c] - rho * (Hy[r] * sVec[c] + sVec[r] * Hy[c])),
      );
    }
    if (moved < minStep) break;
  }
  return { u, value: cur.f, iterations: it };
}

// ---------------------------------------------------------------------------------------------------------------
// Initialisation

/** Intensity-weighted centroid and second moments of the voxels above `threshold`. */
function moments(v: Volume<Float32Array>, threshold: number): { com: Vec3; cov: number[] } | null {
  const [nx, ny, nz] = v.dims;
  let w = 0;
  const s = [0, 0, 0];
  const ss = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  let p = 0;
  const a = v.affine;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        const val = v.data[p];
        if (!(val > threshold)) continue;
        const x = a[0] * i + a[1] * j + a[2] * k + a[3];
        const y = a[4] * i + a[5] * j + a[6] * k + a[7];
        const z = a[8] * i + a[9] * j + a[10] * k + a[11];
        w += val;
        s[0] += val * x;
        s[1] += val * y;
        s[2] += val * z;
        const q = [x, y, z];
        for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) ss[3 * r + c] += val * q[r] * q[c];
      }
  if (!(w > 0)) return null;
  const com: Vec3 = [s[0] / w, s[1] / w, s[2] / w];
  const cov = ss.map((x, e) => x / w - com[Math.floor(e / 3)] * com[e % 3]);
  return { com, cov };
}

/** Eigenvectors (columns, row-major 3×3) of a symmetric 3×3 by Jacobi rotations, sorted by eigenvalue. */
function eigenvectors(S: readonly number[]): number[] {
  const a = [...S];
  let V = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[1] * a[1] + a[2] * a[2] + a[5] * a[5];
    if (off < 1e-18) break;
    for (const [p, q] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      const apq = a[3 * p + q];
      if (Math.abs(apq) < 1e-30) continue;
      const theta = (a[3 * q + q] - a[3 * p + p]) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const s = t * c;
      const J = [1, 0, 0, 0, 1, 0, 0, 0, 1];
      J[3 * p + p] = c;
      J[3 * q + q] = c;
      J[3 * p + q] = s;
      J[3 * q + p] = -s;
      const Jt = [J[0], J[3], J[6], J[1], J[4], J[7], J[2], J[5], J[8]];
      const next = mul3(Jt, mul3(a, J));
      for (let x = 0; x < 9; x++) a[x] = next[x];
      V = mul3(V, J);
    }
  }
  const order = [0, 1, 2].sort((x, y) => a[4 * x] - a[4 * y]);
  const out = new Array<number>(9);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[3 * r + c] = V[3 * r + order[c]];
  return out;
}

/** Rotation (fixed → moving) aligning principal axes, the sign choice closest to identity. */
function principalRotation(covFixed: readonly number[], covMoving: readonly number[]): number[] {
  const Ef = eigenvectors(covFixed);
  const Em = eigenvectors(covMoving);
  let best = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  let bestTrace = -Infinity;
  for (const sx of [1, -1])
    for (const sy of [1, -1])
      for (const sz of [1, -1]) {
        const D = [sx, 0, 0, 0, sy, 0, 0, 0, sz];
        const EfT = [Ef[0], Ef[3], Ef[6], Ef[1], Ef[4], Ef[7], Ef[2], Ef[5], Ef[8]];
        const R = mul3(Em, mul3(D, EfT));
        const det =
          R[0] * (R[4] * R[8] - R[5] * R[7]) -
          R[1] * (R[3] * R[8] - R[5] * R[6]) +
          R[2] * (R[3] * R[7] - R[4] * R[6]);
        if (det < 0) continue;
        const tr = R[0] + R[4] + R[8];
        if (tr > bestTrace) {
          bestTrace = tr;
          best = R;
        }
      }
  return best;
}

// ---------------------------------------------------------------------------------------------------------------

function checkOptions(o: RegistrationOptions): void {
  const bad = (message: string): DomainError =>
    new DomainError('REGISTRATION.INVALID_OPTION', message, { issueType: 'invalid' });
  // options may come from JSON (CLI, API): check the enumerations at run time too
  const transform: string = o.transform ?? 'rigid';
  const metric: string = o.metric ?? 'mi';
  if (!['rigid', 'affine'].includes(transform)) throw bad(`unknown transform ${transform}`);
  if (!['mi', 'ncc'].includes(metric)) throw bad(`unknown metric ${metric}`);
  if (o.levels !== undefined && (o.levels.length === 0 || o.levels.some((s) => !(s > 0 && s < 100))))
    throw bad('levels must be spacings in mm (0 < s < 100), at least one');
  if (o.bins !== undefined && !(Number.isInteger(o.bins) && o.bins >= 8 && o.bins <= 256))
    throw bad('bins must be an integer in 8..256');
  if (o.samples !== undefined && !(Number.isInteger(o.samples) && o.samples >= 500))
    throw bad('samples must be an integer ≥ 500');
}

/**
 * Registers `moving` onto `fixed`. See the file comment for the matrix convention (fixed → moving, ITK) and the
 * method.
 */
export function registerImages(
  fixed: Volume,
  moving: Volume,
  options: RegistrationOptions = {},
): RegistrationResult {
  checkOptions(options);
  const kind = options.transform ?? 'rigid';
  const metric = options.metric ?? 'mi';
  const levels = options.levels ?? [6, 3, 1.5];
  const nSamples = options.samples ?? 40_000;
  const bins = options.bins ?? 32;
  const maxIt = options.maxIterations ?? 200;
  const seed = options.seed ?? 1;
  const rho = 80; // mm: rotations and matrix entries scaled so one unit moves a point at 8 cm by ~1 mm

  const fixedThr = foregroundThreshold(fixed);
  const movingThr = foregroundThreshold(moving);

  let centre: Vec3 | null = null;
  let A: number[] = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  let t: Vec3 = [0, 0, 0];
  let initialization = options.initial === undefined ? (options.initialization ?? 'auto') : 'initial';
  const reports: RegistrationLevelReport[] = [];
  let iterations = 0;
  let lastValue = -Infinity;
  let lastNcc = 0;

  const stages: { spacing: number; stage: TransformKind }[] = levels.map((s) => ({
    spacing: s,
    stage: 'rigid',
  }));
  if (kind === 'affine')
    for (const s of levels.slice(Math.max(0, levels.length - 2)))
      stages.push({ spacing: s, stage: 'affine' });

  const cache = new Map<number, { f: Volume<Float32Array>; m: LevelImage; mv: Volume<Float32Array> }>();
  const levelData = (s: number): { f: Volume<Float32Array>; m: LevelImage; mv: Volume<Float32Array> } => {
    let e = cache.get(s);
    if (e === undefined) {
      const f = levelImage(fixed, s).volume;
      const mv = levelImage(moving, s);
      e = { f, m: mv.image, mv: mv.volume };
      cache.set(s, e);
    }
    return e;
  };

  for (let si = 0; si < stages.length; si++) {
    const { spacing, stage } = stages[si];
    const { f, m, mv } = levelData(spacing);
    let region: Uint8Array;
    if (options.fixedMask !== undefined) region = resampleMask(options.fixedMask, f).data;
    else {
      region = new Uint8Array(f.data.length);
      for (let x = 0; x < region.length; x++) region[x] = f.data[x] > fixedThr ? 1 : 0;
    }
    const drawn = drawSamples(f, region, nSamples, seed + si, centre);
    if (centre === null) {
      centre = drawn.centre;
      // express the starting transform about this centre
      if (options.initial !== undefined) ({ A, t } = aboutCentre(options.initial, centre));
    }
    const samples = drawn.samples;
    const fr = maskedPercentiles(samples.f, [0.5, 99.5]);
    const movingFg = new Uint8Array(mv.data.length);
    for (let x = 0; x < movingFg.length; x++) movingFg[x] = mv.data[x] > movingThr ? 1 : 0;
    const mrLo = sampledPercentiles(mv.data, [0.5], Math.max(1, Math.floor(mv.data.length / 200_000)))[0];
    const mrHi = sampledPercentiles(
      mv.data,
      [99.5],
      Math.max(1, Math.floor(mv.data.length / 200_000)),
      (_v, x) => movingFg[x] !== 0,
    )[0];
    const ctx: MetricContext = {
      metric,
      moving: m,
      samples,
      centre,
      bins,
      fixedRange: [fr[0], fr[1] > fr[0] ? fr[1] : fr[0] + 1],
      movingRange: [mrLo, mrHi > mrLo ? mrHi : mrLo + 1],
      m: new Float64Array(samples.n),
      g: new Float64Array(3 * samples.n),
      ok: new Uint8Array(samples.n),
    };

    if (si === 0 && options.initial === undefined) {
      const fm = moments(f, fixedThr);
      const mm = moments(mv, movingThr);
      const candidates: { name: Initialization; A: number[]; t: Vec3 }[] = [
        { name: 'geometry', A: [1, 0, 0, 0, 1, 0, 0, 0, 1], t: [0, 0, 0] },
      ];
      if (fm !== null && mm !== null) {
        // T(x) = A (x − c) + c + t: send the fixed centre of mass onto the moving one
        const comT = (R: number[]): Vec3 => {
          const d = [fm.com[0] - centre![0], fm.com[1] - centre![1], fm.com[2] - centre![2]];
          return [0, 1, 2].map(
            (r) => mm.com[r] - centre![r] - (R[3 * r] * d[0] + R[3 * r + 1] * d[1] + R[3 * r + 2] * d[2]),
          ) as unknown as Vec3;
        };
        const I = [1, 0, 0, 0, 1, 0, 0, 0, 1];
        candidates.push({ name: 'com', A: I, t: comT(I) });
        const R = principalRotation(fm.cov, mm.cov);
        candidates.push({ name: 'moments', A: R, t: comT(R) });
      }
      const wanted = options.initialization ?? 'auto';
      const pool = wanted === 'auto' ? candidates : candidates.filter((c) => c.name === wanted);
      if (pool.length === 0)
        throw new DomainError(
          'REGISTRATION.NO_OVERLAP',
          `cannot initialise by ${wanted}: an image has no foreground`,
          {
            issueType: 'processing',
          },
        );
      let bestC = pool[0];
      let bestV = -Infinity;
      for (const c of pool) {
        const v = evaluate(ctx, c.A, c.t).value;
        if (v > bestV) {
          bestV = v;
          bestC = c;
        }
      }
      A = bestC.A;
      t = bestC.t;
      initialization = bestC.name;
    }

    const par = stage === 'rigid' ? rigidParams(rho) : affineParams(rho);
    let u: number[];
    if (stage === 'rigid') {
      const R = orthonormalize(A);
      const [a, b, g] = eulerOf(R);
      u = [a * rho, b * rho, g * rho, t[0], t[1], t[2]];
    } else u = [...A.map((x) => x * rho), t[0], t[1], t[2]];
    const res = optimise(ctx, par, u, stage === 'rigid' ? spacing : spacing / 2, 0.002 * spacing, maxIt);
    ({ A, t } = par.toTransform(res.u));
    iterations += res.iterations;
    const final = evaluate(ctx, A, t);
    lastValue = final.value;
    lastNcc = final.ncc;
    reports.push({ spacing, stage, iterations: res.iterations, value: final.value, samples: samples.n });
  }
  const c = centre ?? [0, 0, 0];
  return {
    matrix: centredMatrix(A, t, c),
    metric,
    value: lastValue,
    iterations,
    ncc: lastNcc,
    transform: kind,
    initialization,
    centre: c,
    levels: reports,
  };
}

/** The 8 corners (LPS) of a box given by voxel min/max (inclusive-exclusive) on a grid. */
export function boxCorners(affine: Mat4, min: Vec3, max: Vec3): Vec3[] {
  const out: Vec3[] = [];
  for (const i of [min[0], max[0] - 1])
    for (const j of [min[1], max[1] - 1])
      for (const k of [min[2], max[2] - 1]) out.push(applyAffine(affine, [i, j, k]));
  return out;
}

/** Mean distance (mm) between where two transforms send the given points (e.g. brain-box corners). */
export function meanDisplacement(a: Mat4, b: Mat4, points: readonly Vec3[]): number {
  let s = 0;
  for (const p of points) {
    const q = applyAffine(a, p);
    const r = applyAffine(b, p);
    s += Math.hypot(q[0] - r[0], q[1] - r[1], q[2] - r[2]);
  }
  return s / points.length;
}
