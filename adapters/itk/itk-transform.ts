/**
 * ITK text transform files ("#Insight Transform File V1.0", as written by ITK, ANTs, elastix/transformix exports,
 * Slicer, SimpleITK) → a 4×4 matrix in LPS millimetres.
 *
 * Convention (ITK's, kept as is): the transform maps points of the FIXED image space to the MOVING image space —
 * the direction a resampler needs to pull moving intensities onto the fixed grid. A file named "A_to_B" written
 * by a registration of moving A onto fixed B therefore maps B-space points to A-space points. registration.ts
 * returns matrices in the same convention, so the two compare directly.
 *
 * Supported: MatrixOffsetTransformBase / AffineTransform (12 parameters, FixedParameters = centre),
 * TranslationTransform, Euler3DTransform, VersorRigid3DTransform, Similarity3DTransform, and
 * CompositeTransform of those (sub-transforms applied last-listed first, as ITK does). ITK's parameters are
 * already in LPS.
 *
 * Codes: ITK.NOT_FOUND, ITK.INVALID, ITK.UNSUPPORTED.
 */
import { readFile, writeFile, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { IDENTITY, multiply, type Mat4, type Vec3 } from '../../domain/model/geometry.ts';

export interface ItkTransformEntry {
  /** e.g. 'MatrixOffsetTransformBase_double_3_3'. */
  readonly type: string;
  readonly parameters: readonly number[];
  readonly fixedParameters: readonly number[];
}

function invalid(message: string): DomainError {
  return new DomainError('ITK.INVALID', message, { issueType: 'structure' });
}

function numbers(line: string, what: string): number[] {
  const parts = line
    .trim()
    .split(/\s+/)
    .filter((s) => s.length > 0);
  const out = parts.map(Number);
  if (out.some((x) => !Number.isFinite(x))) throw invalid(`${what} holds a value that is not a number`);
  return out;
}

/** Splits an ITK text transform file into its transforms (in file order). */
export function parseItkTransformEntries(text: string): ItkTransformEntry[] {
  const lines = text.split(/\r?\n/);
  if (!lines.some((l) => /^#\s*Insight Transform File/i.test(l)))
    throw invalid('not an ITK text transform file (no "#Insight Transform File" header)');
  const entries: { type: string; parameters?: number[]; fixedParameters?: number[] }[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw invalid(`unexpected line "${line.slice(0, 60)}"`);
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1);
    if (key === 'Transform') entries.push({ type: value.trim() });
    else if (key === 'Parameters' || key === 'FixedParameters') {
      const cur = entries.at(-1);
      if (cur === undefined) throw invalid(`${key} before any Transform line`);
      if (key === 'Parameters') cur.parameters = numbers(value, key);
      else cur.fixedParameters = numbers(value, key);
    } else throw invalid(`unknown key "${key}"`);
  }
  if (entries.length === 0) throw invalid('the file holds no transform');
  return entries.map((e) => ({
    type: e.type,
    parameters: e.parameters ?? [],
    fixedParameters: e.fixedParameters ?? [],
  }));
}

function need(e: ItkTransformEntry, p: number, f: number): void {
  if (e.parameters.length !== p)
    throw invalid(`${e.type} needs ${p} parameters, the file has ${e.parameters.length}`);
  if (e.fixedParameters.length < f)
    throw invalid(`${e.type} needs ${f} fixed parameters, the file has ${e.fixedParameters.length}`);
}

/** x ↦ A (x − c) + t + c as a 4×4 (A row-major 3×3). */
function centred(A: readonly number[], t: Vec3, c: Vec3): Mat4 {
  const off = [0, 1, 2].map(
    (r) => t[r] + c[r] - (A[3 * r] * c[0] + A[3 * r + 1] * c[1] + A[3 * r + 2] * c[2]),
  );
  return [A[0], A[1], A[2], off[0], A[3], A[4], A[5], off[1], A[6], A[7], A[8], off[2], 0, 0, 0, 1];
}

function versorMatrix(vx: number, vy: number, vz: number): number[] {
  const n2 = vx * vx + vy * vy + vz * vz;
  if (n2 > 1 + 1e-9) throw invalid('versor has norm > 1');
  const w = Math.sqrt(Math.max(0, 1 - n2));
  return [
    1 - 2 * (vy * vy + vz * vz),
    2 * (vx * vy - w * vz),
    2 * (vx * vz + w * vy),
    2 * (vx * vy + w * vz),
    1 - 2 * (vx * vx + vz * vz),
    2 * (vy * vz - w * vx),
    2 * (vx * vz - w * vy),
    2 * (vy * vz + w * vx),
    1 - 2 * (vx * vx + vy * vy),
  ];
}

function mul3(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) out[3 * r + c] += a[3 * r + k] * b[3 * k + c];
  return out;
}

/** One (non-composite) ITK transform as a 4×4 in LPS, fixed → moving. */
export function itkEntryToMatrix(e: ItkTransformEntry): Mat4 {
  const base = e.type.replace(/_(double|float)_3(_3)?$/, '');
  if (!/_(double|float)_3(_3)?$/.test(e.type))
    throw new DomainError('ITK.UNSUPPORTED', `${e.type}: only 3-D transforms are supported`, {
      issueType: 'not-supported',
    });
  const p = e.parameters;
  const f = e.fixedParameters;
  const c: Vec3 = f.length >= 3 ? [f[0], f[1], f[2]] : [0, 0, 0];
  switch (base) {
    case 'MatrixOffsetTransformBase':
    case 'AffineTransform':
      need(e, 12, 0);
      return centred(p.slice(0, 9), [p[9], p[10], p[11]], c);
    case 'TranslationTransform':
      need(e, 3, 0);
      return [1, 0, 0, p[0], 0, 1, 0, p[1], 0, 0, 1, p[2], 0, 0, 0, 1];
    case 'Euler3DTransform': {
      need(e, 6, 3);
      const [ax, ay, az] = [p[0], p[1], p[2]];
      const Rx = [1, 0, 0, 0, Math.cos(ax), -Math.sin(ax), 0, Math.sin(ax), Math.cos(ax)];
      const Ry = [Math.cos(ay), 0, Math.sin(ay), 0, 1, 0, -Math.sin(ay), 0, Math.cos(ay)];
      const Rz = [Math.cos(az), -Math.sin(az), 0, Math.sin(az), Math.cos(az), 0, 0, 0, 1];
      // ITK default (ComputeZYX off): R = Rz · Rx · Ry; with the 4th fixed parameter 1: R = Rz · Ry · Rx
      const zyx = (f[3] ?? 0) !== 0;
      const R = zyx ? mul3(Rz, mul3(Ry, Rx)) : mul3(Rz, mul3(Rx, Ry));
      return centred(R, [p[3], p[4], p[5]], c);
    }
    case 'VersorRigid3DTransform':
      need(e, 6, 3);
      return centred(versorMatrix(p[0], p[1], p[2]), [p[3], p[4], p[5]], c);
    case 'Similarity3DTransform': {
      need(e, 7, 3);
      const R = versorMatrix(p[0], p[1], p[2]).map((x) => x * p[6]);
      return centred(R, [p[3], p[4], p[5]], c);
    }
    default:
      throw new DomainError('ITK.UNSUPPORTED', `ITK transform type ${e.type} is not supported`, {
        issueType: 'not-supported',
        details: { type: e.type },
      });
  }
}

/**
 * The whole file as one matrix (fixed → moving, LPS). A CompositeTransform's sub-transforms are composed as ITK
 * applies them: the last one listed acts first.
 */
export function parseItkTransform(text: string): Mat4 {
  const entries = parseItkTransformEntries(text);
  const first = entries[0];
  if (first.type.startsWith('CompositeTransform')) {
    const subs = entries.slice(1);
    if (subs.length === 0) throw invalid('CompositeTransform without sub-transforms');
    return subs.reduce<Mat4>((acc, e) => multiply(acc, itkEntryToMatrix(e)), IDENTITY);
  }
  if (entries.length !== 1) throw invalid(`${entries.length} transforms without a CompositeTransform header`);
  return itkEntryToMatrix(first);
}

export async function readItkTransform(path: string): Promise<Mat4> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DomainError('ITK.NOT_FOUND', `cannot read ${path}`, { issueType: 'not-found', cause: e });
  }
  return parseItkTransform(text);
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(12).replace(/\.?0+$/, '');
}

/**
 * An AffineTransform_double_3_3 file for `m` (fixed → moving, LPS) about `centre` (default the origin): readable
 * by ITK, ANTs, Slicer and SimpleITK.
 */
export function formatItkTransform(m: Mat4, centre: Vec3 = [0, 0, 0]): string {
  if (m.length !== 16 || Math.abs(m[12]) + Math.abs(m[13]) + Math.abs(m[14]) > 1e-12 || m[15] !== 1)
    throw new RangeError('not an affine 4×4');
  const A = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
  // offset = t + c − A c  ⇒  t = offset − c + A c
  const t = [0, 1, 2].map(
    (r) =>
      m[4 * r + 3] - centre[r] + (A[3 * r] * centre[0] + A[3 * r + 1] * centre[1] + A[3 * r + 2] * centre[2]),
  );
  return [
    '#Insight Transform File V1.0',
    '#Transform 0',
    'Transform: AffineTransform_double_3_3',
    `Parameters: ${[...A, ...t].map(fmt).join(' ')}`,
    `FixedParameters: ${centre.map(fmt).join(' ')}`,
    '',
  ].join('\n');
}

export async function writeItkTransform(path: string, m: Mat4, centre?: Vec3): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, formatItkTransform(m, centre));
  await rename(tmp, path);
}
