/**
 * NIfTI-1/-2 reading and NIfTI-1 writing (.nii or .nii.gz). Voxel order is NIfTI's (i fastest), so the
 * buffer maps straight onto domain Volume; the RAS affine (sform, else qform, else pixdim) is converted to
 * LPS at this boundary.
 */
import { readFile, writeFile, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DomainError } from '../../domain/errors.ts';
import { multiply, RAS_TO_LPS, type Mat4, type Vec3 } from '../../domain/model/geometry.ts';
import { createVolume, voxelCount, type Volume, type VoxelArray } from '../../domain/model/volume.ts';

export interface NiftiImage {
  readonly volume: Volume;
  /** Description field (descrip), trimmed. */
  readonly description: string;
}

const DT = {
  UINT8: 2,
  INT16: 4,
  INT32: 8,
  FLOAT32: 16,
  FLOAT64: 64,
  INT8: 256,
  UINT16: 512,
  UINT32: 768,
} as const;

function bad(message: string): DomainError {
  return new DomainError('NIFTI.INVALID', message, { issueType: 'structure' });
}

/** Parses NIfTI bytes (gzipped or not). Scaled data (scl_slope ≠ 0/1) come back as Float32Array. */
export function parseNifti(input: Uint8Array): NiftiImage {
  let bytes = input;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DomainError('NIFTI.INVALID', 'gzip stream is corrupt', { issueType: 'structure', cause: e });
    }
  }
  if (bytes.length < 348) throw bad('file shorter than a NIfTI header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let le = true;
  let size = dv.getInt32(0, true);
  if (size !== 348 && size !== 540) {
    le = false;
    size = dv.getInt32(0, false);
  }
  if (size === 348) return parseV1(bytes, dv, le);
  if (size === 540) return parseV2(bytes, dv, le);
  throw bad('not a NIfTI header (sizeof_hdr is neither 348 nor 540)');
}

interface RawHeader {
  dims: number[];
  datatype: number;
  voxOffset: number;
  pixdim: number[];
  sclSlope: number;
  sclInter: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: number[];
  descrip: string;
}

function parseV1(bytes: Uint8Array, dv: DataView, le: boolean): NiftiImage {
  const magic = String.fromCharCode(bytes[344], bytes[345], bytes[346]);
  if (magic !== 'n+1' && magic !== 'ni1') throw bad(`bad NIfTI-1 magic "${magic}"`);
  const dims: number[] = [];
  for (let d = 0; d < 8; d++) dims.push(dv.getInt16(40 + 2 * d, le));
  const pixdim: number[] = [];
  for (let d = 0; d < 8; d++) pixdim.push(dv.getFloat32(76 + 4 * d, le));
  const srow: number[] = [];
  for (let d = 0; d < 12; d++) srow.push(dv.getFloat32(280 + 4 * d, le));
  return finish(bytes, le, {
    dims,
    datatype: dv.getInt16(70, le),
    voxOffset: dv.getFloat32(108, le),
    pixdim,
    sclSlope: dv.getFloat32(112, le),
    sclInter: dv.getFloat32(116, le),
    qformCode: dv.getInt16(252, le),
    sformCode: dv.getInt16(254, le),
    quatern: [dv.getFloat32(256, le), dv.getFloat32(260, le), dv.getFloat32(264, le)],
    qoffset: [dv.getFloat32(268, le), dv.getFloat32(272, le), dv.getFloat32(276, le)],
    srow,
    descrip: decodeString(bytes.subarray(148, 228)),
  });
}

function parseV2(bytes: Uint8Array, dv: DataView, le: boolean): NiftiImage {
  const dims: number[] = [];
  for (let d = 0; d < 8; d++) dims.push(Number(dv.getBigInt64(16 + 8 * d, le)));
  const pixdim: number[] = [];
  for (let d = 0; d < 8; d++) pixdim.push(dv.getFloat64(104 + 8 * d, le));
  const srow: number[] = [];
  for (let d = 0; d < 12; d++) srow.push(dv.getFloat64(400 + 8 * d, le));
  return finish(bytes, le, {
    dims,
    datatype: dv.getInt16(12, le),
    voxOffset: Number(dv.getBigInt64(168, le)),
    pixdim,
    sclSlope: dv.getFloat64(176, le),
    sclInter: dv.getFloat64(184, le),
    qformCode: dv.getInt32(344, le),
    sformCode: dv.getInt32(348, le),
    quatern: [dv.getFloat64(352, le), dv.getFloat64(360, le), dv.getFloat64(368, le)],
    qoffset: [dv.getFloat64(376, le), dv.getFloat64(384, le), dv.getFloat64(392, le)],
    srow,
    descrip: decodeString(bytes.subarray(240, 320)),
  });
}

function decodeString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return new TextDecoder('latin1').decode(end < 0 ? b : b.subarray(0, end)).trim();
}

function rasAffine(h: RawHeader): Mat4 {
  if (h.sformCode > 0) return [...h.srow, 0, 0, 0, 1];
  const [dx, dy, dz] = [Math.abs(h.pixdim[1] || 1), Math.abs(h.pixdim[2] || 1), Math.abs(h.pixdim[3] || 1)];
  if (h.qformCode > 0) {
    const [b, c, d] = h.quatern;
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    const qfac = h.pixdim[0] < 0 ? -1 : 1;
    const R = [
      [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    const s = [dx, dy, dz * qfac];
    return [
      R[0][0] * s[0],
      R[0][1] * s[1],
      R[0][2] * s[2],
      h.qoffset[0],
      R[1][0] * s[0],
      R[1][1] * s[1],
      R[1][2] * s[2],
      h.qoffset[1],
      R[2][0] * s[0],
      R[2][1] * s[1],
      R[2][2] * s[2],
      h.qoffset[2],
      0,
      0,
      0,
      1,
    ];
  }
  return [dx, 0, 0, 0, 0, dy, 0, 0, 0, 0, dz, 0, 0, 0, 0, 1];
}

function finish(bytes: Uint8Array, le: boolean, h: RawHeader): NiftiImage {
  const nd = h.dims[0];
  if (nd < 1 || nd > 7) throw bad(`bad dim[0] = ${nd}`);
  const dims: Vec3 = [h.dims[1] || 1, nd >= 2 ? h.dims[2] || 1 : 1, nd >= 3 ? h.dims[3] || 1 : 1];
  for (let d = 4; d <= nd; d++)
    if ((h.dims[d] ?? 1) > 1) throw bad(`only 3-D images are supported (dim[${d}] = ${h.dims[d]})`);
  if (dims.some((d) => d <= 0 || d > 4096)) throw bad(`implausible dimensions ${dims.join('×')}`);
  const n = voxelCount(dims);
  const offset = Math.max(h.voxOffset, bytes.length > 540 && h.voxOffset === 0 ? 352 : h.voxOffset);
  const bpv: Partial<Record<number, number>> = {
    [DT.UINT8]: 1,
    [DT.INT8]: 1,
    [DT.INT16]: 2,
    [DT.UINT16]: 2,
    [DT.INT32]: 4,
    [DT.UINT32]: 4,
    [DT.FLOAT32]: 4,
    [DT.FLOAT64]: 8,
  };
  const width: number | undefined = bpv[h.datatype];
  if (width === undefined)
    throw new DomainError('NIFTI.UNSUPPORTED_DATATYPE', `NIfTI datatype ${h.datatype} is not supported`, {
      issueType: 'not-supported',
    });
  if (offset + n * width > bytes.length) throw bad('file is truncated: fewer voxels than the header says');
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, n * width);
  let data: VoxelArray;
  switch (h.datatype) {
    case DT.UINT8: {
      const a = new Uint8Array(n); // a plain Uint8Array, never a Node Buffer
      a.set(bytes.subarray(offset, offset + n));
      data = a;
      break;
    }
    case DT.INT8: {
      const a = new Int16Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getInt8(x);
      data = a;
      break;
    }
    case DT.INT16: {
      const a = new Int16Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getInt16(2 * x, le);
      data = a;
      break;
    }
    case DT.UINT16: {
      const a = new Uint16Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getUint16(2 * x, le);
      data = a;
      break;
    }
    case DT.INT32: {
      const a = new Int32Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getInt32(4 * x, le);
      data = a;
      break;
    }
    case DT.UINT32: {
      const a = new Float64Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getUint32(4 * x, le);
      data = a;
      break;
    }
    case DT.FLOAT32: {
      const a = new Float32Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getFloat32(4 * x, le);
      data = a;
      break;
    }
    default: {
      const a = new Float32Array(n);
      for (let x = 0; x < n; x++) a[x] = dv.getFloat64(8 * x, le);
      data = a;
    }
  }
  const slope = h.sclSlope;
  if (Number.isFinite(slope) && slope !== 0 && (slope !== 1 || h.sclInter !== 0)) {
    const f = new Float32Array(n);
    for (let x = 0; x < n; x++) f[x] = data[x] * slope + h.sclInter;
    data = f;
  }
  const affine = multiply(RAS_TO_LPS, rasAffine(h));
  return { volume: createVolume(dims, affine, data), description: h.descrip };
}

export async function readNifti(path: string): Promise<NiftiImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new DomainError('NIFTI.NOT_FOUND', `cannot read ${path}`, { issueType: 'not-found', cause: e });
  }
  return parseNifti(bytes);
}

/** Quaternion of the rotation part for the qform, so readers that ignore sform agree. */
function qformFrom(ras: Mat4): { b: number; c: number; d: number; qfac: number; pix: Vec3 } {
  const col = (c: number): Vec3 => [ras[c], ras[4 + c], ras[8 + c]];
  const pix: Vec3 = [0, 1, 2].map((c) => Math.hypot(...col(c))) as unknown as Vec3;
  const r = [0, 1, 2].map((c) => col(c).map((x) => x / (pix[c] || 1)));
  const det =
    r[0][0] * (r[1][1] * r[2][2] - r[2][1] * r[1][2]) -
    r[1][0] * (r[0][1] * r[2][2] - r[2][1] * r[0][2]) +
    r[2][0] * (r[0][1] * r[1][2] - r[1][1] * r[0][2]);
  let qfac = 1;
  if (det < 0) {
    qfac = -1;
    r[2] = r[2].map((x) => -x);
  }
  // r[c] is column c; R[row][col] = r[col][row]
  const R = (row: number, c: number): number => r[c][row];
  let a = 1 + R(0, 0) + R(1, 1) + R(2, 2);
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (R(2, 1) - R(1, 2))) / a;
    c = (0.25 * (R(0, 2) - R(2, 0))) / a;
    d = (0.25 * (R(1, 0) - R(0, 1))) / a;
  } else {
    const xd = 1 + R(0, 0) - (R(1, 1) + R(2, 2));
    const yd = 1 + R(1, 1) - (R(0, 0) + R(2, 2));
    const zd = 1 + R(2, 2) - (R(0, 0) + R(1, 1));
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (R(0, 1) + R(1, 0))) / b;
      d = (0.25 * (R(0, 2) + R(2, 0))) / b;
      a = (0.25 * (R(2, 1) - R(1, 2))) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (R(0, 1) + R(1, 0))) / c;
      d = (0.25 * (R(1, 2) + R(2, 1))) / c;
      a = (0.25 * (R(0, 2) - R(2, 0))) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (R(0, 2) + R(2, 0))) / d;
      c = (0.25 * (R(1, 2) + R(2, 1))) / d;
      a = (0.25 * (R(1, 0) - R(0, 1))) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac, pix };
}

/** Encodes a volume as NIfTI-1 (gzipped when `gzip`). Float64 data are written as float32. */
export function encodeNifti(
  volume: Volume,
  options: { gzip?: boolean; description?: string } = {},
): Uint8Array {
  const { dims, data } = volume;
  let datatype: number;
  let bitpix: number;
  let payload: Uint8Array;
  if (data instanceof Uint8Array) {
    datatype = DT.UINT8;
    bitpix = 8;
    payload = data;
  } else if (data instanceof Int16Array) {
    datatype = DT.INT16;
    bitpix = 16;
    payload = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else if (data instanceof Uint16Array) {
    datatype = DT.UINT16;
    bitpix = 16;
    payload = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else if (data instanceof Int32Array) {
    datatype = DT.INT32;
    bitpix = 32;
    payload = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else {
    const f = data instanceof Float32Array ? data : Float32Array.from(data);
    datatype = DT.FLOAT32;
    bitpix = 32;
    payload = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  }
  const header = new Uint8Array(352);
  const dv = new DataView(header.buffer);
  dv.setInt32(0, 348, true);
  const dimArr = [3, dims[0], dims[1], dims[2], 1, 1, 1, 1];
  dimArr.forEach((d, x) => {
    dv.setInt16(40 + 2 * x, d, true);
  });
  dv.setInt16(70, datatype, true);
  dv.setInt16(72, bitpix, true);
  const ras = multiply(RAS_TO_LPS, volume.affine);
  const q = qformFrom(ras);
  const pixdim = [q.qfac, q.pix[0], q.pix[1], q.pix[2], 1, 1, 1, 1];
  pixdim.forEach((p, x) => {
    dv.setFloat32(76 + 4 * x, p, true);
  });
  dv.setFloat32(108, 352, true);
  dv.setFloat32(112, 1, true);
  dv.setFloat32(116, 0, true);
  header[123] = 2 | 8; // xyzt_units: mm, s
  const desc = new TextEncoder().encode((options.description ?? '').slice(0, 79));
  header.set(desc, 148);
  dv.setInt16(252, 1, true); // qform_code scanner
  dv.setInt16(254, 1, true); // sform_code scanner
  dv.setFloat32(256, q.b, true);
  dv.setFloat32(260, q.c, true);
  dv.setFloat32(264, q.d, true);
  dv.setFloat32(268, ras[3], true);
  dv.setFloat32(272, ras[7], true);
  dv.setFloat32(276, ras[11], true);
  for (let x = 0; x < 12; x++) dv.setFloat32(280 + 4 * x, ras[x], true);
  header.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  const out = new Uint8Array(352 + payload.byteLength);
  out.set(header, 0);
  out.set(payload, 352);
  return options.gzip === false ? out : gzipSync(out, { level: 6 });
}

/** Writes atomically (temp file + rename) so a crash never leaves half a file. */
export async function writeNifti(path: string, volume: Volume, description?: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const bytes = encodeNifti(volume, {
    gzip: path.endsWith('.gz'),
    ...(description === undefined ? {} : { description }),
  });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}
