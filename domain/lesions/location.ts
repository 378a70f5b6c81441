/**
 * Lesion location rule (after LST-AI; see domain/lesions/README.md). For one lesion:
 * 1. dilate the lesion by one voxel with the 3×3×3 (26-neighbour) cube;
 * 2. the dilated lesion touches a ventricle voxel (lateral, inferior-lateral or 3rd) → periventricular;
 * 3. else it touches cerebral cortex → juxtacortical;
 * 4. else at least half of the lesion's own voxels lie in the infratentorial region (brain stem,
 *    cerebellum, 4th ventricle) → infratentorial;
 * 5. else → subcortical (deep / subcortical white matter).
 * The precedence is the order above.
 */
import type { LesionLocation } from '../model/analysis.ts';
import type { Vec3 } from '../model/geometry.ts';
import { REGION } from './anatomy.ts';
import { neighbourOffsets } from '../imaging/morphology.ts';

export interface LocationEvidence {
  readonly location: LesionLocation;
  readonly touchesVentricle: boolean;
  readonly touchesCortex: boolean;
  /** Fraction of the lesion's voxels in the infratentorial region. */
  readonly infratentorialFraction: number;
}

/**
 * Applies the rule to the voxels `labels === id` inside the box [bboxMin, bboxMax); `regions` holds the
 * REGION bits on the same grid.
 */
export function locateLesion(
  dims: Vec3,
  labels: Int32Array,
  id: number,
  bboxMin: Vec3,
  bboxMax: Vec3,
  regions: Uint8Array,
): LocationEvidence {
  const [nx, ny, nz] = dims;
  const offs = neighbourOffsets(26);
  let touchV = false;
  let touchC = false;
  let own = 0;
  let infra = 0;
  for (let k = bboxMin[2]; k < bboxMax[2]; k++)
    for (let j = bboxMin[1]; j < bboxMax[1]; j++)
      for (let i = bboxMin[0]; i < bboxMax[0]; i++) {
        const p = i + nx * (j + ny * k);
        if (labels[p] !== id) continue;
        own++;
        const r0 = regions[p];
        if ((r0 & REGION.INFRATENTORIAL) !== 0) infra++;
        if ((r0 & REGION.VENTRICLE) !== 0) touchV = true;
        if ((r0 & REGION.CORTEX) !== 0) touchC = true;
        if (touchV) continue;
        for (const [di, dj, dk] of offs) {
          const a = i + di,
            b = j + dj,
            c = k + dk;
          if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz) continue;
          const r = regions[a + nx * (b + ny * c)];
          if ((r & REGION.VENTRICLE) !== 0) touchV = true;
          if ((r & REGION.CORTEX) !== 0) touchC = true;
        }
      }
  const infratentorialFraction = own === 0 ? 0 : infra / own;
  const location: LesionLocation = touchV
    ? 'periventricular'
    : touchC
      ? 'juxtacortical'
      : infratentorialFraction >= 0.5
        ? 'infratentorial'
        : 'subcortical';
  return { location, touchesVentricle: touchV, touchesCortex: touchC, infratentorialFraction };
}
