/**
 * Ground-truth-derived longitudinal scenarios for validating the matching when the masks are right: in a
 * common space, the reference change mask's lesions are NEW (present only at the current exam), and synthetic
 * spherical lesions are added that are STABLE (same sphere at both exams) or ENLARGED (radius r at the prior exam,
 * a larger radius at the current one). Spheres sit deep in the brain, away from the reference lesions and from
 * each other; placement is deterministic (seeded).
 */
import { applyAffine, spacingOf, type Vec3 } from '../model/geometry.ts';
import { createVolume, sameGrid, type Mask } from '../model/volume.ts';
import { DomainError } from '../errors.ts';
import { chamferDistance } from '../imaging/morphology.ts';

export interface SyntheticScenarioOptions {
  readonly stable?: number;
  readonly enlarged?: number;
  /** Sphere radius at the prior exam (mm, default 4: at least three 3 mm slices). */
  readonly radiusMm?: number;
  /** Radius of enlarged lesions at the current exam (mm, default 6: +238 % volume). */
  readonly enlargedRadiusMm?: number;
  /** Minimum depth inside the brain mask (mm, default 20). */
  readonly minDepthMm?: number;
  readonly seed?: number;
  /** Extra condition on a sphere centre (LPS mm of the common space), e.g. inside both exams' fields of view. */
  readonly accept?: (centre: Vec3, radiusMm: number) => boolean;
}

export interface SyntheticScenario {
  /** Prior exam lesions (common space): stable + small enlarged spheres. */
  readonly prior: Mask;
  /** Current exam lesions: reference change lesions + stable + large enlarged spheres. */
  readonly current: Mask;
  /** What a perfect method reports: 1 = new (the reference lesions), 2 = enlarged (the large spheres). */
  readonly expectedChange: Mask;
  readonly stableCentres: readonly Vec3[];
  readonly enlargedCentres: readonly Vec3[];
}

export function syntheticChangeScenario(
  reference: Mask,
  brain: Mask,
  options: SyntheticScenarioOptions = {},
): SyntheticScenario {
  if (!sameGrid(reference, brain))
    throw new DomainError('LONGITUDINAL.GRID_MISMATCH', 'reference and brain mask differ in grid', {
      issueType: 'invalid',
    });
  const nStable = options.stable ?? 6;
  const nEnlarged = options.enlarged ?? 4;
  const r0 = options.radiusMm ?? 4;
  const r1 = options.enlargedRadiusMm ?? 6;
  const minDepth = options.minDepthMm ?? 20;
  const dims = reference.dims;
  const [nx, ny, nz] = dims;
  const sp = spacingOf(reference.affine);
  const outside = Uint8Array.from(brain.data, (v) => (v === 0 ? 1 : 0));
  const depth = chamferDistance(dims, outside, sp);
  const ref = Uint8Array.from(reference.data, (v) => (v !== 0 ? 1 : 0));
  const fromRef = chamferDistance(dims, ref, sp);

  // candidate centres on a coarse lattice (about every 6 mm), deep and ≥ 12 mm from reference lesions
  const step = [0, 1, 2].map((a) => Math.max(1, Math.round(6 / sp[a])));
  const candidates: Vec3[] = [];
  for (let k = 0; k < nz; k += step[2])
    for (let j = 0; j < ny; j += step[1])
      for (let i = 0; i < nx; i += step[0]) {
        const p = i + nx * (j + ny * k);
        if (depth[p] >= minDepth && fromRef[p] >= 12 + r1) candidates.push([i, j, k]);
      }
  let s = (options.seed ?? 1) >>> 0;
  const rand = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  for (let n = candidates.length - 1; n > 0; n--) {
    const m = Math.floor(rand() * (n + 1));
    [candidates[n], candidates[m]] = [candidates[m], candidates[n]];
  }
  const chosen: Vec3[] = [];
  const mm = (v: Vec3): Vec3 => applyAffine(reference.affine, v);
  for (const c of candidates) {
    if (chosen.length === nStable + nEnlarged) break;
    const x = mm(c);
    if (options.accept !== undefined && !options.accept(x, r1)) continue;
    if (chosen.every((o) => Math.hypot(...sub(mm(o), x)) >= 2 * r1 + 10)) chosen.push(c);
  }
  if (chosen.length < nStable + nEnlarged)
    throw new DomainError(
      'LONGITUDINAL.NO_ROOM',
      'not enough room in the brain mask for the synthetic lesions',
      {
        issueType: 'processing',
      },
    );

  const prior = new Uint8Array(ref.length);
  const current = Uint8Array.from(ref);
  const expected = Uint8Array.from(ref);
  const paint = (target: Uint8Array, c: Vec3, r: number, value: number): void => {
    const rv = [0, 1, 2].map((a) => Math.ceil(r / sp[a]));
    const cx = mm(c);
    for (let k = Math.max(0, c[2] - rv[2]); k <= Math.min(nz - 1, c[2] + rv[2]); k++)
      for (let j = Math.max(0, c[1] - rv[1]); j <= Math.min(ny - 1, c[1] + rv[1]); j++)
        for (let i = Math.max(0, c[0] - rv[0]); i <= Math.min(nx - 1, c[0] + rv[0]); i++)
          if (Math.hypot(...sub(mm([i, j, k]), cx)) <= r) target[i + nx * (j + ny * k)] = value;
  };
  const stableCentres = chosen.slice(0, nStable);
  const enlargedCentres = chosen.slice(nStable);
  for (const c of stableCentres) {
    paint(prior, c, r0, 1);
    paint(current, c, r0, 1);
  }
  for (const c of enlargedCentres) {
    paint(prior, c, r0, 1);
    paint(current, c, r1, 1);
    paint(expected, c, r1, 2);
  }
  const vol = (d: Uint8Array): Mask => createVolume(dims, reference.affine, d);
  return {
    prior: vol(prior),
    current: vol(current),
    expectedChange: vol(expected),
    stableCentres: stableCentres.map(mm),
    enlargedCentres: enlargedCentres.map(mm),
  };
}

function sub(a: Vec3, b: Vec3): [number, number, number] {
  return [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
}
