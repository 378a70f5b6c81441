/**
 * Per-patient anatomy for lesion location, on the FLAIR grid. Two builders:
 * - `anatomyFromParcellation18`: from the brainchop 18-label FreeSurfer-style parcellation
 *   (models/brain-anatomy18, label names in its colormap: 0 Unknown, 1 Cerebral-White-Matter,
 *   2 Cerebral-Cortex, 3 Lateral-Ventricle, 4 Inferior-Lateral-Ventricle, 5 Cerebellum-White-Matter,
 *   6 Cerebellum-Cortex, 7 Thalamus, 8 Caudate, 9 Putamen, 10 Pallidum, 11 3rd-Ventricle, 12 4th-Ventricle,
 *   13 Brain-Stem, 14 Hippocampus, 15 Amygdala, 16 Accumbens-area, 17 VentralDC).
 * - `anatomyFromFlair`: the fallback when no T1 / parcellation exists, from FLAIR intensities and geometry
 *   alone (see domain/lesions/README.md for the rule and its limits).
 * Which one was used is recorded in `Anatomy.source`.
 */
import { applyAffine, invert, multiply, spacingOf } from '../model/geometry.ts';
import { createVolume, sameGrid, type Mask, type Volume } from '../model/volume.ts';
import { DomainError } from '../errors.ts';
import { maskedPercentiles, otsuThreshold } from '../preprocess/filters.ts';
import { labelComponents } from './connected-components.ts';
import {
  chamferDistance,
  dilateVoxels,
  fillHoles,
  largestComponent,
  openMask,
} from '../imaging/morphology.ts';

/** Region bits in `Anatomy.regions` (a voxel may carry several, e.g. cerebellar WM is WM + infratentorial). */
export const REGION = {
  VENTRICLE: 1,
  CORTEX: 2,
  WHITE_MATTER: 4,
  INFRATENTORIAL: 8,
  BRAIN: 16,
} as const;
export type RegionBit = (typeof REGION)[keyof typeof REGION];

export type AnatomySource = 'parcellation18' | 'flair-heuristic';

export interface Anatomy {
  /** Region bit flags (REGION) per voxel, on the FLAIR grid. */
  readonly regions: Mask;
  readonly source: AnatomySource;
  /** How it was built (thresholds, volumes), for the analysis record; never patient data. */
  readonly notes: readonly string[];
}

/** Which brainchop-18 labels make up each region. */
export const PARCELLATION18_REGIONS: Readonly<Record<keyof typeof REGION, readonly number[]>> = {
  VENTRICLE: [3, 4, 11],
  CORTEX: [2],
  WHITE_MATTER: [1, 5],
  INFRATENTORIAL: [5, 6, 12, 13],
  BRAIN: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
};

/** A mask (0/1) of one region. */
export function regionMask(anatomy: Anatomy, bit: RegionBit): Mask {
  const src = anatomy.regions.data;
  const out = new Uint8Array(src.length);
  for (let p = 0; p < src.length; p++) out[p] = (src[p] & bit) !== 0 ? 1 : 0;
  return createVolume(anatomy.regions.dims, anatomy.regions.affine, out);
}

/**
 * Nearest-neighbour lookup of a label map at the voxel centres of `target` (through both affines);
 * outside the label map → 0.
 */
export function sampleLabelsOnto(labels: Mask, target: Volume): Mask {
  if (sameGrid(labels, target)) return labels;
  const m = multiply(invert(labels.affine), target.affine); // target voxel → label voxel
  const [nx, ny, nz] = target.dims;
  const [lx, ly, lz] = labels.dims;
  const out = new Uint8Array(nx * ny * nz);
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++) {
      const row = applyAffine(m, [0, j, k]);
      for (let i = 0; i < nx; i++, p++) {
        const a = Math.round(row[0] + m[0] * i);
        const b = Math.round(row[1] + m[4] * i);
        const c = Math.round(row[2] + m[8] * i);
        if (a < 0 || b < 0 || c < 0 || a >= lx || b >= ly || c >= lz) continue;
        out[p] = labels.data[a + lx * (b + ly * c)];
      }
    }
  return createVolume(target.dims, target.affine, out);
}

/** Anatomy from the brainchop 18-label parcellation (resampled to the FLAIR grid by nearest neighbour). */
export function anatomyFromParcellation18(parcellation: Mask, flair: Volume): Anatomy {
  const labels = sampleLabelsOnto(parcellation, flair);
  const lut = new Uint8Array(256);
  for (const [name, ids] of Object.entries(PARCELLATION18_REGIONS) as [
    keyof typeof REGION,
    readonly number[],
  ][])
    for (const id of ids) lut[id] |= REGION[name];
  const src = labels.data;
  const out = new Uint8Array(src.length);
  let brain = 0;
  let bad = 0;
  for (let p = 0; p < src.length; p++) {
    const l = src[p];
    if (l > 17) bad++;
    out[p] = lut[l];
    if (l !== 0) brain++;
  }
  if (bad > 0)
    throw new DomainError('ANATOMY.BAD_LABELS', `parcellation has ${bad} voxels with labels outside 0–17`, {
      issueType: 'invalid',
      details: { voxels: bad },
    });
  if (brain === 0)
    throw new DomainError('ANATOMY.EMPTY', 'parcellation has no brain labels on the FLAIR grid', {
      issueType: 'processing',
    });
  const sp = spacingOf(flair.affine);
  const voxMl = (sp[0] * sp[1] * sp[2]) / 1000;
  return {
    regions: createVolume(flair.dims, flair.affine, out),
    source: 'parcellation18',
    notes: [`brainchop 18-label parcellation, ${(brain * voxMl).toFixed(1)} mL labelled brain`],
  };
}

export interface FlairAnatomyOptions {
  /** Brain mask on the FLAIR grid; when absent the FLAIR is taken as skull-stripped (Otsu on its voxels). */
  readonly brainMask?: Mask;
  /** CSF: FLAIR below this fraction of the median brain intensity (default 0.65). */
  readonly csfFraction?: number;
  /** Ventricle seeds: CSF deeper than this from the brain surface, mm (default 15). */
  readonly ventricleDepthMm?: number;
  /** Cortical ribbon: tissue within this distance of the brain surface or of sulcal CSF, mm (default 3). */
  readonly cortexThicknessMm?: number;
  /** Opening radius (mm) that removes thin CSF sheets before picking ventricles (default 1). */
  readonly csfOpeningMm?: number;
  /** Ventricle walls: the core grows into voxels darker than this fraction of the median (default 0.8)… */
  readonly ventricleWallFraction?: number;
  /** …by this many 6-connected steps (default 3). */
  readonly ventricleGrowVoxels?: number;
}

/**
 * Fallback anatomy from the FLAIR alone (no T1, no parcellation). Rule, in order:
 * 1. brain = the given mask, else the non-zero voxels when ≥ 20 % of the volume is exactly 0 (skull-stripped
 *    input), else an Otsu threshold; then the largest 6-connected component with its holes filled;
 * 2. CSF = brain voxels darker than `csfFraction` (0.65) × median brain FLAIR (CSF is nulled on FLAIR);
 * 3. ventricles = CSF opened by `csfOpeningMm` (1 mm: drops thin sulcal sheets), deeper than
 *    `ventricleDepthMm`/2 (7.5 mm) from the brain surface and above the lowest 30 % of the brain (basal
 *    cisterns), in 6-connected components holding ≥ 0.3 mL deeper than `ventricleDepthMm` (15 mm), grown back
 *    `ventricleGrowVoxels` (3) 6-connected steps into voxels darker than `ventricleWallFraction` (0.8) × median;
 * 4. cortex = non-CSF brain within `cortexThicknessMm` of the outside or of non-ventricular (sulcal) CSF;
 * 5. white matter = the remaining non-CSF brain;
 * 6. infratentorial (approximate, assumes an axial head position within ≈20° of the scanner axes):
 *    brain in the lowest 18 % of the brain's superior–inferior extent, or in the lowest 35 % and either
 *    posterior to the brain centroid by > 10 % of the antero-posterior extent (cerebellum) or within 12 mm
 *    of the mid-sagittal line behind the centroid (brain stem).
 */
export function anatomyFromFlair(flair: Volume, options: FlairAnatomyOptions = {}): Anatomy {
  const csfFraction = options.csfFraction ?? 0.65;
  const ventricleDepthMm = options.ventricleDepthMm ?? 15;
  const cortexMm = options.cortexThicknessMm ?? 3;
  const openingMm = options.csfOpeningMm ?? 1;
  const wallFraction = options.ventricleWallFraction ?? 0.8;
  const growVoxels = options.ventricleGrowVoxels ?? 3;
  const dims = flair.dims;
  const n = flair.data.length;
  const sp = spacingOf(flair.affine);
  const voxMl = (sp[0] * sp[1] * sp[2]) / 1000;
  const notes: string[] = [];

  let brain: Uint8Array;
  if (options.brainMask !== undefined) {
    if (!sameGrid(options.brainMask, flair))
      throw new DomainError('ANATOMY.GRID_MISMATCH', 'brain mask is not on the FLAIR grid', {
        issueType: 'invalid',
      });
    brain = Uint8Array.from(options.brainMask.data, (v) => (v !== 0 ? 1 : 0));
    notes.push('brain: given mask');
  } else {
    let zeros = 0;
    for (let p = 0; p < n; p++) if (flair.data[p] === 0) zeros++;
    const fg = new Uint8Array(n);
    if (zeros >= 0.2 * n) {
      // skull-stripped input: the brain is what is not exactly 0
      for (let p = 0; p < n; p++) fg[p] = flair.data[p] !== 0 ? 1 : 0;
      notes.push('brain: non-zero FLAIR voxels (skull-stripped input), largest component, holes filled');
    } else {
      let lo = Infinity;
      let hi = -Infinity;
      for (let p = 0; p < n; p++) {
        const v = flair.data[p];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const t = otsuThreshold(flair.data, lo, hi, 256, n > 4_000_000 ? 3 : 1);
      for (let p = 0; p < n; p++) fg[p] = flair.data[p] > t ? 1 : 0;
      notes.push(`brain: Otsu threshold ${t.toPrecision(4)} on the FLAIR, largest component, holes filled`);
    }
    brain = fillHoles(largestComponent(createVolume(dims, flair.affine, fg), 6)).data;
  }
  let brainCount = 0;
  for (let p = 0; p < n; p++) brainCount += brain[p];
  if (brainCount * voxMl < 50)
    throw new DomainError(
      'ANATOMY.NO_BRAIN',
      'too little brain found on the FLAIR for the anatomy fallback',
      {
        issueType: 'processing',
        details: { brainMl: brainCount * voxMl },
      },
    );

  const [median] = maskedPercentiles(flair.data, [50], brain);
  const csfT = csfFraction * median;
  const csf = new Uint8Array(n);
  for (let p = 0; p < n; p++) csf[p] = brain[p] !== 0 && flair.data[p] < csfT ? 1 : 0;

  const outside = new Uint8Array(n);
  for (let p = 0; p < n; p++) outside[p] = brain[p] === 0 ? 1 : 0;
  const depth = chamferDistance(dims, outside, sp);

  // brain centroid and extents in LPS
  let cx = 0,
    cy = 0,
    cz = 0;
  let zMin = Infinity,
    zMax = -Infinity,
    yMin = Infinity,
    yMax = -Infinity;
  const [nx, ny, nz] = dims;
  const A = flair.affine;
  {
    let p = 0;
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, p++) {
          if (brain[p] === 0) continue;
          const x = applyAffine(A, [i, j, k]);
          cx += x[0];
          cy += x[1];
          cz += x[2];
          if (x[2] < zMin) zMin = x[2];
          if (x[2] > zMax) zMax = x[2];
          if (x[1] < yMin) yMin = x[1];
          if (x[1] > yMax) yMax = x[1];
        }
  }
  cx /= brainCount;
  cy /= brainCount;
  cz /= brainCount;
  const height = zMax - zMin;
  const apExtent = yMax - yMin;

  // ventricles: deep CSF (beyond half the seed depth), in components reaching the seed depth with ≥ 0.3 mL
  // there, grown back by two voxels (6-connected) into CSF so their walls are reached
  // an opening first removes thin CSF sheets (interhemispheric fissure, sulci) that are deep but not ventricles
  const opened = openMask(createVolume(dims, flair.affine, csf), openingMm).data;
  const deepCsf = new Uint8Array(n);
  // …and the basal cisterns: no ventricle voxel in the lowest 30 % of the brain's height
  {
    let p = 0;
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, p++) {
          if (opened[p] === 0 || depth[p] <= ventricleDepthMm / 2) continue;
          const z = A[8] * i + A[9] * j + A[10] * k + A[11];
          if ((z - zMin) / height >= 0.3) deepCsf[p] = 1;
        }
  }
  const deepCc = labelComponents({ dims, data: deepCsf }, 6);
  const core = new Float64Array(deepCc.count + 1);
  for (let p = 0; p < n; p++) {
    const l = deepCc.labels[p];
    if (l !== 0 && depth[p] > ventricleDepthMm) core[l] += voxMl;
  }
  let ventricles: Uint8Array = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const l = deepCc.labels[p];
    ventricles[p] = l !== 0 && core[l] >= 0.3 ? 1 : 0;
  }
  // grow back into dark-ish tissue (partial-volume walls): FLAIR < `wallFraction` × median, `growVoxels` steps
  const wallT = wallFraction * median;
  for (let it = 0; it < growVoxels; it++) {
    const grown = dilateVoxels(dims, ventricles, 6);
    for (let p = 0; p < n; p++) if (!(brain[p] !== 0 && flair.data[p] < wallT)) grown[p] = 0;
    ventricles = grown;
  }
  let ventricleMl = 0;
  for (let p = 0; p < n; p++) ventricleMl += ventricles[p] * voxMl;

  const seeds = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    seeds[p] = outside[p] !== 0 || (csf[p] !== 0 && ventricles[p] === 0) ? 1 : 0;
  }
  const fromSurface = chamferDistance(dims, seeds, sp);

  const out = new Uint8Array(n);
  let cortexN = 0,
    wmN = 0,
    infraN = 0;
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        if (brain[p] === 0) continue;
        let r: number = REGION.BRAIN;
        if (csf[p] !== 0) {
          if (ventricles[p] !== 0) r |= REGION.VENTRICLE;
        } else if (fromSurface[p] <= cortexMm) {
          r |= REGION.CORTEX;
          cortexN++;
        } else {
          r |= REGION.WHITE_MATTER;
          wmN++;
        }
        const [x, y, z] = applyAffine(A, [i, j, k]);
        const zRel = (z - zMin) / height;
        // LPS: +y is posterior
        const infra =
          zRel < 0.18 || (zRel < 0.35 && (y - cy > 0.1 * apExtent || (Math.abs(x - cx) < 12 && y > cy)));
        if (infra) {
          r |= REGION.INFRATENTORIAL;
          infraN++;
        }
        out[p] = r;
      }
  notes.push(
    `FLAIR heuristic: CSF < ${csfFraction} × median (${csfT.toPrecision(4)}), ventricles ${ventricleMl.toFixed(1)} mL, ` +
      `cortex ${(cortexN * voxMl).toFixed(0)} mL, WM ${(wmN * voxMl).toFixed(0)} mL, ` +
      `infratentorial (approximate, geometric) ${(infraN * voxMl).toFixed(0)} mL; brain centroid z ${cz.toFixed(0)} mm`,
  );
  if (ventricleMl < 1)
    notes.push('warning: less than 1 mL of ventricles found; periventricular class unreliable');
  return { regions: createVolume(dims, flair.affine, out), source: 'flair-heuristic', notes };
}
