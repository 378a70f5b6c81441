/**
 * Series → volume: image planes (classic instances or enhanced multi-frame frames) become one float32 volume
 * on an LPS affine.
 *
 * - Voxel order: i = column index (along a row, DICOM's fastest), j = row index, k = slice. Slices are sorted
 *   by their position along the slice normal (row cosines × column cosines), never by InstanceNumber.
 * - Affine columns: i → row cosines × column spacing (PixelSpacing[1]), j → column cosines × row spacing
 *   (PixelSpacing[0]), k → the slice step; translation = ImagePositionPatient of the first sorted slice.
 * - Slice step from positions, not SliceThickness/SpacingBetweenSlices: the mean step between the first and
 *   last slice ((P_last − P_0)/(n − 1)), which spreads position rounding (GE writes 0.1 mm) over the whole
 *   stack instead of trusting the first pair. Without tilt the step is taken along the exact normal.
 * - Gantry tilt (a stack whose positions advance obliquely to the normal, i.e. sheared): by default the
 *   affine is sheared, k → the actual step vector, so every voxel stays exactly where the scanner put it
 *   (no resampling); with `tilt: 'refuse'` it is SERIES.GANTRY_TILT instead.
 * - Values: stored value × RescaleSlope + RescaleIntercept, per plane.
 *
 * Codes (issueType 'business-rule' unless noted): SERIES.EMPTY ('required'), SERIES.SINGLE_SLICE,
 * SERIES.MIXED_SIZE, SERIES.MIXED_ORIENTATION, SERIES.BAD_ORIENTATION, SERIES.DUPLICATE_SLICE,
 * SERIES.MISSING_SLICE, SERIES.NON_UNIFORM_SPACING, SERIES.GANTRY_TILT.
 */
import { DomainError } from '../errors.ts';
import { cross, dot, norm, scale, sub, type Mat4, type Vec3 } from '../model/geometry.ts';
import { createVolume, type Volume } from '../model/volume.ts';
import type { ImageSlice } from '../ports/image-source.port.ts';

export interface AssemblyOptions {
  /** 'shear' (default) keeps a tilted stack exact with a sheared affine; 'refuse' throws SERIES.GANTRY_TILT. */
  readonly tilt?: 'shear' | 'refuse';
  /**
   * How far (mm) a slice may sit from the uniform grid fitted through the stack before the series counts as
   * non-uniform. Default min(0.2 mm, a quarter of the spacing): GE writes positions rounded to 0.1 mm, so a
   * slice and the two end slices that define the grid can each be 0.05 mm off per coordinate (≤ 0.173 mm).
   */
  readonly positionToleranceMm?: number;
  /** Tilt below this angle (degrees) is treated as none (default 0.01°; rounding of cosines stays below). */
  readonly tiltThresholdDegrees?: number;
}

/** Where each voxel slice came from: needed later to reference the source images (DICOM SEG). */
export interface SliceRef {
  readonly k: number;
  readonly sopInstanceUid: string;
  readonly sopClassUid?: string;
  /** 1-based frame of a multi-frame instance. */
  readonly frameNumber?: number;
  readonly instanceNumber?: number;
  readonly imagePositionPatient: Vec3;
}

export interface AssembledVolume {
  readonly volume: Volume<Float32Array>;
  /** One per k, in k order. */
  readonly slices: readonly SliceRef[];
  /** Distance between slice planes along the normal (mm). */
  readonly sliceSpacing: number;
  /** Angle between the slice step and the normal (degrees); 0 when below the threshold. */
  readonly tiltDegrees: number;
  /** Largest distance of a slice from the fitted uniform grid (mm). */
  readonly maxPositionResidualMm: number;
  readonly frameOfReferenceUid?: string;
  readonly warnings: readonly string[];
}

function refuse(code: string, message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError(code, message, { issueType: 'business-rule', details });
}

const COSINE_TOLERANCE = 1e-4;

function sameOrientation(
  a: ImageSlice['imageOrientationPatient'],
  b: ImageSlice['imageOrientationPatient'],
): boolean {
  for (let x = 0; x < 6; x++) if (Math.abs(a[x] - b[x]) > COSINE_TOLERANCE) return false;
  return true;
}

function unit(v: Vec3, what: string): Vec3 {
  const n = norm(v);
  if (!(n > 0.9 && n < 1.1)) throw refuse('SERIES.BAD_ORIENTATION', `${what} is not a unit vector (${n})`);
  return scale(v, 1 / n);
}

export function assembleVolume(input: readonly ImageSlice[], options: AssemblyOptions = {}): AssembledVolume {
  const warnings: string[] = [];
  if (input.length === 0)
    throw new DomainError('SERIES.EMPTY', 'the series has no image planes', { issueType: 'required' });
  // The same plane delivered twice (same SOP instance and frame) is harmless: keep one.
  const seen = new Set<string>();
  const planes: ImageSlice[] = [];
  for (const s of input) {
    const key = `${s.sopInstanceUid}#${s.frameNumber ?? 1}`;
    if (seen.has(key)) continue;
    seen.add(key);
    planes.push(s);
  }
  if (planes.length < input.length)
    warnings.push(`${input.length - planes.length} repeated plane(s) ignored`);
  if (planes.length === 1)
    throw refuse('SERIES.SINGLE_SLICE', 'the series has a single image plane: a volume needs at least two', {
      sopInstanceUid: planes[0].sopInstanceUid,
    });

  const ref = planes[0];
  for (const s of planes) {
    if (s.rows !== ref.rows || s.columns !== ref.columns)
      throw refuse(
        'SERIES.MIXED_SIZE',
        `planes differ in size (${ref.rows}×${ref.columns} and ${s.rows}×${s.columns})`,
      );
    if (
      Math.abs(s.pixelSpacing[0] - ref.pixelSpacing[0]) > 1e-4 * ref.pixelSpacing[0] + 1e-6 ||
      Math.abs(s.pixelSpacing[1] - ref.pixelSpacing[1]) > 1e-4 * ref.pixelSpacing[1] + 1e-6
    )
      throw refuse(
        'SERIES.MIXED_SIZE',
        `planes differ in pixel spacing (${ref.pixelSpacing.join('\\')} and ${s.pixelSpacing.join('\\')})`,
      );
    if (!sameOrientation(s.imageOrientationPatient, ref.imageOrientationPatient))
      throw refuse(
        'SERIES.MIXED_ORIENTATION',
        `planes differ in orientation (${ref.imageOrientationPatient.join('\\')} and ${s.imageOrientationPatient.join('\\')})`,
      );
    if (s.pixels.length !== s.rows * s.columns)
      throw refuse('SERIES.MIXED_SIZE', `a plane holds ${s.pixels.length} values for ${s.rows}×${s.columns}`);
  }
  const o = ref.imageOrientationPatient;
  const rowDir = unit([o[0], o[1], o[2]], 'the row direction');
  const colDir = unit([o[3], o[4], o[5]], 'the column direction');
  if (Math.abs(dot(rowDir, colDir)) > 1e-3)
    throw refuse('SERIES.BAD_ORIENTATION', 'row and column directions are not perpendicular');
  const normal = unit(cross(rowDir, colDir), 'the slice normal');

  const order = planes
    .map((s) => ({ s, d: dot(s.imagePositionPatient, normal) }))
    .sort((a, b) => a.d - b.d || (a.s.instanceNumber ?? 0) - (b.s.instanceNumber ?? 0));
  const n = order.length;
  const steps = order.slice(1).map((x, k) => x.d - order[k].d);
  const sortedSteps = [...steps].sort((a, b) => a - b);
  const median = sortedSteps[Math.floor(sortedSteps.length / 2)];
  const dupTol = Math.max(1e-3, 0.05 * median);
  const dup = steps.findIndex((st) => st < dupTol);
  if (dup >= 0 || !(median > 0))
    throw refuse(
      'SERIES.DUPLICATE_SLICE',
      `two planes lie at the same position (${order[Math.max(0, dup)].d.toFixed(3)} mm along the normal): ` +
        'several echoes, time points or a repeated acquisition in one series',
      {
        sopInstanceUids: dup >= 0 ? [order[dup].s.sopInstanceUid, order[dup + 1].s.sopInstanceUid] : [],
      },
    );
  const tol = options.positionToleranceMm ?? Math.min(0.2, 0.25 * median);
  // Gaps: a step that is (close to) a multiple of the median step.
  const gaps: { after: number; missing: number }[] = [];
  for (let k = 0; k < steps.length; k++) {
    const q = Math.round(steps[k] / median);
    if (q >= 2 && Math.abs(steps[k] - q * median) <= Math.max(tol, 0.1 * median))
      gaps.push({ after: k, missing: q - 1 });
  }
  if (gaps.length > 0) {
    const total = gaps.reduce((s, g) => s + g.missing, 0);
    throw refuse(
      'SERIES.MISSING_SLICE',
      `${total} slice(s) missing from the series (gap after sorted plane ${gaps[0].after + 1} of ${n}, ` +
        `spacing ${median.toFixed(3)} mm)`,
      { missing: total, gaps, spacingMm: median },
    );
  }
  const first = order[0].s.imagePositionPatient;
  const last = order[n - 1].s.imagePositionPatient;
  const stepVec = scale(sub(last, first), 1 / (n - 1));
  const spacing = dot(stepVec, normal);
  // Tilt: the step has a component across the normal that adds up to more than rounding over the stack.
  const lateral = norm(sub(stepVec, scale(normal, spacing)));
  const tiltDeg = (Math.atan2(lateral, spacing) * 180) / Math.PI;
  const tilted = tiltDeg > (options.tiltThresholdDegrees ?? 0.01) && lateral * (n - 1) > tol;
  if (tilted) {
    if (options.tilt === 'refuse')
      throw refuse('SERIES.GANTRY_TILT', `the slice stack is tilted by ${tiltDeg.toFixed(2)}° (sheared)`, {
        tiltDegrees: tiltDeg,
      });
    warnings.push(`slice stack tilted by ${tiltDeg.toFixed(2)}°: the affine is sheared (no resampling)`);
  }
  const kCol: Vec3 = tilted ? stepVec : scale(normal, spacing);
  // Every slice must sit on the grid first + k·kCol (within the rounding tolerance).
  let residual = 0;
  for (let k = 0; k < n; k++) {
    const expected: Vec3 = [first[0] + k * kCol[0], first[1] + k * kCol[1], first[2] + k * kCol[2]];
    residual = Math.max(residual, norm(sub(order[k].s.imagePositionPatient, expected)));
  }
  if (residual > tol)
    throw refuse(
      'SERIES.NON_UNIFORM_SPACING',
      `slice positions are not uniformly spaced: a plane lies ${residual.toFixed(3)} mm off the uniform grid ` +
        `(tolerance ${tol.toFixed(3)} mm; steps ${sortedSteps[0].toFixed(3)}–${sortedSteps[sortedSteps.length - 1].toFixed(3)} mm)`,
      {
        maxResidualMm: residual,
        toleranceMm: tol,
        minStepMm: sortedSteps[0],
        maxStepMm: sortedSteps[sortedSteps.length - 1],
      },
    );
  const [rowSpacing, colSpacing] = ref.pixelSpacing;
  const affine: Mat4 = [
    rowDir[0] * colSpacing,
    colDir[0] * rowSpacing,
    kCol[0],
    first[0],
    rowDir[1] * colSpacing,
    colDir[1] * rowSpacing,
    kCol[1],
    first[1],
    rowDir[2] * colSpacing,
    colDir[2] * rowSpacing,
    kCol[2],
    first[2],
    0,
    0,
    0,
    1,
  ];
  const nx = ref.columns;
  const ny = ref.rows;
  const plane = nx * ny;
  const data = new Float32Array(plane * n);
  const slices: SliceRef[] = [];
  for (let k = 0; k < n; k++) {
    const s = order[k].s;
    const { rescaleSlope: m, rescaleIntercept: b, pixels } = s;
    const base = k * plane;
    if (m === 1 && b === 0) for (let x = 0; x < plane; x++) data[base + x] = pixels[x];
    else for (let x = 0; x < plane; x++) data[base + x] = pixels[x] * m + b;
    slices.push({
      k,
      sopInstanceUid: s.sopInstanceUid,
      ...(s.sopClassUid === undefined ? {} : { sopClassUid: s.sopClassUid }),
      ...(s.frameNumber === undefined ? {} : { frameNumber: s.frameNumber }),
      ...(s.instanceNumber === undefined ? {} : { instanceNumber: s.instanceNumber }),
      imagePositionPatient: s.imagePositionPatient,
    });
  }
  const fors = new Set(planes.map((s) => s.frameOfReferenceUid).filter((u) => u !== undefined));
  if (fors.size > 1) warnings.push('planes carry different FrameOfReferenceUIDs');
  const frameOfReferenceUid = ref.frameOfReferenceUid;
  return {
    volume: createVolume([nx, ny, n], affine, data),
    slices,
    sliceSpacing: spacing,
    tiltDegrees: tilted ? tiltDeg : 0,
    maxPositionResidualMm: residual,
    ...(frameOfReferenceUid === undefined ? {} : { frameOfReferenceUid }),
    warnings,
  };
}
