/**
 * DICOM UIDs for the objects this service creates. Root: **2.25** — UUID-derived UIDs (ITU-T X.667 | ISO/IEC
 * 9834-8, DICOM PS3.5 B.2): "2.25." followed by the decimal value of a 128-bit UUID. No registered
 * organisation root is needed and collisions are as unlikely as for UUIDs.
 * - newUid(): a random (version 4) UUID.
 * - uidFromName(...parts): a name-based (version 5, SHA-1) UUID in this service's namespace, so the same inputs
 *   always give the same UID (the demo study is rebuilt identically; re-imports of the same file match).
 */
import { createHash, randomUUID } from 'node:crypto';

export const UID_ROOT = '2.25';

/** Namespace UUID of ms-lesion-service for name-based UIDs (fixed; never change it). */
const NAMESPACE = '6f1c2b1e-4c1a-4d53-9a43-0d6c1e8a5b27';

function uuidToUid(hex: string): string {
  return `${UID_ROOT}.${BigInt('0x' + hex.replace(/-/g, '')).toString(10)}`;
}

export function newUid(): string {
  return uuidToUid(randomUUID());
}

export function uidFromName(...parts: readonly string[]): string {
  const ns = Buffer.from(NAMESPACE.replace(/-/g, ''), 'hex');
  const digest = createHash('sha1').update(ns).update(parts.join('\u0000'), 'utf8').digest();
  const b = Uint8Array.from(digest.subarray(0, 16));
  b[6] = (b[6] & 0x0f) | 0x50; // version 5
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  return uuidToUid(Buffer.from(b).toString('hex'));
}

/** True for a syntactically valid UID (PS3.5 9.1: digits and dots, no leading zeros, ≤ 64 chars). */
export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/.test(uid);
}
