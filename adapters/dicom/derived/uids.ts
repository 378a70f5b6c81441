/**
 * Deterministic UIDs for the derived objects of an analysis. Every UID is a function of the analysis id and
 * the object's role, so publishing the same analysis again (after a crash, a retry or a manual re-send)
 * produces the very same Series/SOP Instance UIDs and the PACS replaces or ignores the copies instead of
 * filing new series.
 *
 * Root: by default the UUID-derived root `2.25` (ITU-T X.667 | ISO/IEC 9834-8, DICOM PS3.5 B.2): the UID is
 * `2.25.` + the decimal value of a 128-bit name-based identifier, SHA-256(`ms-lesion-service|<analysis id>|
 * <role>`) truncated to 128 bits with the RFC 9562 version (8) and variant bits set — no registration needed and
 * no collisions in practice. A site that owns an OID may pass `uidRoot` instead; the UID is then
 * `<root>.` + as many decimal digits of the same hash as fit in 64 characters.
 *
 * Codes: DICOM.BAD_UID_ROOT ('value'), DICOM.BAD_ANALYSIS_ID ('value').
 */
import { createHash } from 'node:crypto';
import { DomainError } from '../../../domain/errors.ts';

export const DEFAULT_UID_ROOT = '2.25';
const ROOT = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;
const ANALYSIS_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && ROOT.test(uid);
}

export function checkUidRoot(root: string): string {
  if (!ROOT.test(root) || root.length > 40)
    throw new DomainError(
      'DICOM.BAD_UID_ROOT',
      `UID root "${root}" is not a dotted-decimal OID of ≤ 40 characters`,
      {
        issueType: 'value',
      },
    );
  return root;
}

function hash128(analysisId: string, role: string): bigint {
  const h = createHash('sha256').update(`ms-lesion-service|${analysisId}|${role}`).digest();
  const b = Buffer.from(h.subarray(0, 16));
  b[6] = (b[6] & 0x0f) | 0x80; // version 8 (custom, name-based)
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
  return BigInt('0x' + b.toString('hex'));
}

/** The UID of one derived object or attribute, e.g. role 'seg.series', 'sc.instance.12'. */
export function derivedUid(analysisId: string, role: string, uidRoot: string = DEFAULT_UID_ROOT): string {
  if (!ANALYSIS_ID.test(analysisId))
    throw new DomainError(
      'DICOM.BAD_ANALYSIS_ID',
      'analysis id must be 1–128 letters, digits, ".", "_" or "-"',
      {
        issueType: 'value',
      },
    );
  const root = checkUidRoot(uidRoot);
  const digits = hash128(analysisId, role).toString(10);
  if (root === DEFAULT_UID_ROOT) return `${root}.${digits}`;
  const room = 64 - root.length - 1;
  let tail = digits.slice(0, Math.max(1, room));
  tail = tail.replace(/^0+(?=.)/, '');
  return `${root}.${tail}`;
}

/** A UID factory bound to one analysis. */
export function uidFactory(analysisId: string, uidRoot: string = DEFAULT_UID_ROOT): (role: string) => string {
  checkUidRoot(uidRoot);
  return (role) => derivedUid(analysisId, role, uidRoot);
}

/** The UID roles of the series this service files into a study (SEG, SR, Encapsulated PDF, overlay SC). */
export const DERIVED_SERIES_ROLE = {
  seg: 'seg.series',
  sr: 'sr.series',
  pdf: 'pdf.series',
  overlay: 'sc.series',
} as const;

/** The Series Instance UIDs the derived series of an analysis get (whether or not they were published). */
export function derivedSeriesUids(analysisId: string, uidRoot: string = DEFAULT_UID_ROOT): string[] {
  return Object.values(DERIVED_SERIES_ROLE).map((role) => derivedUid(analysisId, role, uidRoot));
}
