/**
 * Lesion matching between a prior and a current exam, both as lesion label maps on the CURRENT grid (the prior
 * resampled there after registration, ids kept). The rule (domain/longitudinal/README.md):
 *
 * 1. Tolerance: each prior lesion P_a is dilated by `toleranceVoxels` voxels with the 3×3×3 cube on the current
 *    grid (one voxel by default: partial volume and residual misregistration of about one voxel — on thick
 *    slices that is one slice up or down).
 * 2. Edge: P_a and current lesion C_b are matched when the dilated P_a covers at least `minOverlapFraction`
 *    (default 0.10) of the smaller of the two lesions: |D(P_a) ∩ C_b| ≥ f · min(|P_a|, |C_b|), and at least one
 *    voxel.
 * 3. Groups: connected components of the bipartite match graph. Per group (nP prior, nC current lesions):
 *    nP = 0, nC = 1 → new; nP = 1, nC = 0 → disappeared;
 *    nP = 1, nC = 1 → volume change r = V_C / V_P − 1: r ≥ +0.30 → enlarged, r ≤ −0.30 → shrunk, else stable;
 *      with the partial-volume guard (default) |V_C − V_P| must also reach π r_eq² · t / 2 (r_eq = radius of the
 *      sphere of volume max(V_C, V_P), t = slice thickness of the coarser exam), else stable;
 *    nP ≥ 2, nC = 1 → merged; nP = 1, nC ≥ 2 → split; nP ≥ 2 and nC ≥ 2 → merged when nC ≤ nP, else split.
 *    Current volumes are voxel counts on the current grid × its voxel volume; prior volumes are the native ones
 *    when given (`priorVolumesMl`), else counts of the resampled prior labels.
 * 4. Change mask on the current grid: 1 = voxels of new lesions, 2 = voxels of enlarged lesions (the whole
 *    current lesion, or with `enlargedVoxels: 'growth'` only its voxels outside the dilated prior lesion).
 */
import type { ChangeClass, LesionChange } from '../model/analysis.ts';
import { spacingOf, type Vec3 } from '../model/geometry.ts';
import { createVolume, sameGrid, type Mask, type Volume } from '../model/volume.ts';
import { DomainError } from '../errors.ts';
import { voxelVolumeMm3 } from '../lesions/lesion-table.ts';
import { neighbourOffsets } from '../imaging/morphology.ts';

export interface MatchOptions {
  /** Dilation of the prior lesions, in voxels of the current grid (default 1). */
  readonly toleranceVoxels?: number;
  /** Minimum overlap as a fraction of the smaller lesion (default 0.10). */
  readonly minOverlapFraction?: number;
  /** Relative volume change that makes a one-to-one match enlarged / shrunk (default 0.30). */
  readonly volumeChangeFraction?: number;
  /** Which voxels of an enlarged lesion the change mask marks (default 'lesion'). */
  readonly enlargedVoxels?: 'lesion' | 'growth';
  /**
   * Prior lesion volumes (mL, index = id) measured on the prior's own grid. When given they replace the volumes
   * of the resampled prior labels, so that the ±30 % test compares native volumes rather than volumes after a
   * resampling between slice thicknesses (compareExams passes them).
   */
  readonly priorVolumesMl?: ArrayLike<number>;
  /**
   * Partial-volume guard (default on): a one-to-one match is enlarged / shrunk only when |ΔV| also reaches
   * π r² · t / 2, the volume one half-slice of the lesion's cross-section can gain or lose by where the slices
   * fall (r: radius of the sphere with the larger of the two volumes; t: `sliceThicknessMm`).
   */
  readonly partialVolumeGuard?: boolean;
  /** Slice thickness of the coarser exam (mm); default the current grid's largest voxel spacing. */
  readonly sliceThicknessMm?: number;
}

export interface MatchResult {
  readonly changes: readonly LesionChange[];
  /** 1 = new, 2 = enlarged, on the current grid. */
  readonly changeMask: Mask;
  /** Per-lesion volumes (mL) on the current grid, index = id. */
  readonly priorVolumesMl: Float64Array;
  readonly currentVolumesMl: Float64Array;
}

export const CHANGE_MASK_LABELS = { new: 1, enlarged: 2 } as const;

function maxLabel(a: Int32Array): number {
  let m = 0;
  for (const v of a) if (v > m) m = v;
  return m;
}

/**
 * Voxels reached by dilating every prior lesion by `r` voxels (cube), as (prior id, voxel) pairs: for each voxel,
 * the set of prior ids whose dilation covers it. Returned as a callback over voxels with their covering ids.
 */
function forEachDilatedCover(
  dims: Vec3,
  prior: Int32Array,
  r: number,
  visit: (voxel: number, priorId: number) => void,
): void {
  const [nx, ny, nz] = dims;
  const offs: Vec3[] = r <= 0 ? [[0, 0, 0]] : [[0, 0, 0], ...cubeOffsets(r)];
  // a voxel may be covered by the same prior id from several lesion voxels: dedupe per (voxel, id) with a stamp
  const stamp = new Int32Array(nx * ny * nz).fill(-1);
  const ids = maxLabel(prior);
  // process one prior id at a time so the stamp can dedupe by id
  const byId: number[][] = Array.from({ length: ids + 1 }, () => []);
  for (let p = 0; p < prior.length; p++) if (prior[p] !== 0) byId[prior[p]].push(p);
  for (let id = 1; id <= ids; id++) {
    for (const q of byId[id]) {
      const i = q % nx;
      const j = Math.floor(q / nx) % ny;
      const k = Math.floor(q / (nx * ny));
      for (const [di, dj, dk] of offs) {
        const a = i + di,
          b = j + dj,
          c = k + dk;
        if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz) continue;
        const v = a + nx * (b + ny * c);
        if (stamp[v] === id) continue;
        stamp[v] = id;
        visit(v, id);
      }
    }
  }
}

function cubeOffsets(r: number): Vec3[] {
  if (r === 1) return neighbourOffsets(26);
  const out: Vec3[] = [];
  for (let dk = -r; dk <= r; dk++)
    for (let dj = -r; dj <= r; dj++)
      for (let di = -r; di <= r; di++) if (di !== 0 || dj !== 0 || dk !== 0) out.push([di, dj, dk]);
  return out;
}

/** Matches prior and current lesions (both label maps on the current grid) and classifies every change. */
export function matchLesions(
  prior: Volume<Int32Array>,
  current: Volume<Int32Array>,
  options: MatchOptions = {},
): MatchResult {
  if (!sameGrid(prior, current))
    throw new DomainError('LONGITUDINAL.GRID_MISMATCH', 'prior lesions are not on the current grid', {
      issueType: 'invalid',
    });
  const tol = options.toleranceVoxels ?? 1;
  const f = options.minOverlapFraction ?? 0.1;
  const dv = options.volumeChangeFraction ?? 0.3;
  if (!(Number.isInteger(tol) && tol >= 0 && tol <= 5) || !(f > 0 && f <= 1) || !(dv > 0 && dv < 1))
    throw new DomainError(
      'LONGITUDINAL.INVALID_OPTION',
      'toleranceVoxels 0–5, minOverlapFraction (0, 1], volumeChangeFraction (0, 1)',
      {
        issueType: 'invalid',
      },
    );
  const np = maxLabel(prior.data);
  const nc = maxLabel(current.data);
  const voxMl = voxelVolumeMm3(current.affine) / 1000;
  const pSize = new Int32Array(np + 1);
  const cSize = new Int32Array(nc + 1);
  for (const v of prior.data) if (v !== 0) pSize[v]++;
  for (const v of current.data) if (v !== 0) cSize[v]++;

  // overlap counts |D(P_a) ∩ C_b|, and which voxels the dilated priors cover
  const overlap = new Map<number, number>();
  const covered = new Uint8Array(current.data.length);
  forEachDilatedCover(current.dims, prior.data, tol, (v, a) => {
    covered[v] = 1;
    const b = current.data[v];
    if (b === 0) return;
    const key = a * (nc + 1) + b;
    overlap.set(key, (overlap.get(key) ?? 0) + 1);
  });

  // union-find over nodes: prior a → a, current b → np + b
  const parent = Int32Array.from({ length: np + nc + 1 }, (_, x) => x);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  for (const [key, o] of overlap) {
    const a = Math.floor(key / (nc + 1));
    const b = key % (nc + 1);
    if (pSize[a] === 0 || cSize[b] === 0) continue;
    if (o >= Math.max(1, f * Math.min(pSize[a], cSize[b]))) {
      const ra = find(a),
        rb = find(np + b);
      if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
    }
  }
  const groups = new Map<number, { priors: number[]; currents: number[] }>();
  const group = (root: number): { priors: number[]; currents: number[] } => {
    let g = groups.get(root);
    if (g === undefined) {
      g = { priors: [], currents: [] };
      groups.set(root, g);
    }
    return g;
  };
  for (let a = 1; a <= np; a++) if (pSize[a] > 0) group(find(a)).priors.push(a);
  for (let b = 1; b <= nc; b++) if (cSize[b] > 0) group(find(np + b)).currents.push(b);

  const changes: LesionChange[] = [];
  const classOfCurrent = new Uint8Array(nc + 1);
  const guard = options.partialVolumeGuard ?? true;
  const sp = spacingOf(current.affine);
  const thickness = options.sliceThicknessMm ?? Math.max(sp[0], sp[1], sp[2]);
  const nativePrior = options.priorVolumesMl;
  const priorMl = (a: number): number =>
    nativePrior === undefined ? pSize[a] * voxMl : (nativePrior[a] ?? 0);
  for (const g of groups.values()) {
    const vp = g.priors.reduce((s, a) => s + priorMl(a), 0);
    const vc = g.currents.reduce((s, b) => s + cSize[b], 0) * voxMl;
    let cls: ChangeClass;
    const P = g.priors.length,
      C = g.currents.length;
    if (P === 0) cls = 'new';
    else if (C === 0) cls = 'disappeared';
    else if (P === 1 && C === 1) {
      const r = vc / vp - 1;
      cls = r >= dv - 1e-12 ? 'enlarged' : r <= -dv + 1e-12 ? 'shrunk' : 'stable';
      if (cls !== 'stable' && guard) {
        const rEq = Math.cbrt((3 * Math.max(vc, vp) * 1000) / (4 * Math.PI)); // mm
        const pvMl = (Math.PI * rEq * rEq * thickness) / 2 / 1000;
        if (Math.abs(vc - vp) < pvMl) cls = 'stable';
      }
    } else if (C === 1) cls = 'merged';
    else if (P === 1) cls = 'split';
    else cls = C <= P ? 'merged' : 'split';
    for (const b of g.currents) classOfCurrent[b] = cls === 'new' ? 1 : cls === 'enlarged' ? 2 : 0;
    changes.push({
      class: cls,
      currentIds: [...g.currents].sort((x, y) => x - y),
      priorIds: [...g.priors].sort((x, y) => x - y),
      currentVolumeMl: vc,
      priorVolumeMl: vp,
    });
  }
  const order: Record<ChangeClass, number> = {
    new: 0,
    enlarged: 1,
    merged: 2,
    split: 3,
    shrunk: 4,
    stable: 5,
    disappeared: 6,
  };
  changes.sort(
    (x, y) =>
      order[x.class] - order[y.class] ||
      (x.currentIds[0] ?? Infinity) - (y.currentIds[0] ?? Infinity) ||
      (x.priorIds[0] ?? Infinity) - (y.priorIds[0] ?? Infinity),
  );

  const mask = new Uint8Array(current.data.length);
  const growthOnly = options.enlargedVoxels === 'growth';
  for (let v = 0; v < mask.length; v++) {
    const b = current.data[v];
    if (b === 0) continue;
    const c = classOfCurrent[b];
    if (c === 1) mask[v] = CHANGE_MASK_LABELS.new;
    else if (c === 2 && !(growthOnly && covered[v] !== 0)) mask[v] = CHANGE_MASK_LABELS.enlarged;
  }
  const priorVolumesMl = Float64Array.from(pSize, (n, a) => (n > 0 ? priorMl(a) : 0));
  const currentVolumesMl = Float64Array.from(cSize, (n) => n * voxMl);
  return {
    changes,
    changeMask: createVolume(current.dims, current.affine, mask),
    priorVolumesMl,
    currentVolumesMl,
  };
}
