/**
 * Checked reading of dcmjs "naturalized" datasets (keyword-named, values decoded). dcmjs unwraps single
 * values and keeps multi-valued attributes as arrays; these accessors accept both shapes and never trust a
 * value's type.
 */
import type { NaturalizedDataset } from 'dcmjs';

export type Dataset = NaturalizedDataset;

function first(v: unknown): unknown {
  return Array.isArray(v) ? (v as unknown[])[0] : v;
}

/** A string attribute (first value when multi-valued), trimmed; undefined when absent or empty. */
export function str(ds: Dataset, key: string): string | undefined {
  const v = first(ds[key]);
  if (typeof v === 'string') {
    const t = v.replace(/\0+$/, '').trim();
    return t === '' ? undefined : t;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** All values of a (multi-valued) string attribute, trimmed, empties dropped. */
export function strs(ds: Dataset, key: string): string[] {
  const v = ds[key];
  const list: unknown[] = Array.isArray(v) ? (v as unknown[]) : v === undefined || v === null ? [] : [v];
  const out: string[] = [];
  for (const x of list) {
    if (typeof x !== 'string') continue;
    for (const part of x.split('\\')) {
      const t = part.replace(/\0+$/, '').trim();
      if (t !== '') out.push(t);
    }
  }
  return out;
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A numeric attribute (DS/IS/US/FD …; first value when multi-valued). */
export function num(ds: Dataset, key: string): number | undefined {
  return toNumber(first(ds[key]));
}

/** All values of a numeric attribute; undefined when absent or when any value is not a number. */
export function nums(ds: Dataset, key: string): number[] | undefined {
  const v = ds[key];
  if (v === undefined || v === null) return undefined;
  const list: unknown[] = Array.isArray(v) ? (v as unknown[]) : [v];
  const out: number[] = [];
  for (const x of list) {
    if (typeof x === 'string' && x.includes('\\')) {
      for (const part of x.split('\\')) {
        const n = toNumber(part);
        if (n === undefined) return undefined;
        out.push(n);
      }
      continue;
    }
    const n = toNumber(x);
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

function isDataset(v: unknown): v is Dataset {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof ArrayBuffer);
}

/** The items of a sequence attribute (empty when absent). */
export function seq(ds: Dataset, key: string): Dataset[] {
  const v = ds[key];
  if (Array.isArray(v)) return (v as unknown[]).filter(isDataset);
  return isDataset(v) ? [v] : [];
}

/** First item of a sequence, or undefined. */
export function item(ds: Dataset, key: string): Dataset | undefined {
  return seq(ds, key)[0];
}

/** A person name as DICOM's caret form ('Family^Given'), from dcmjs' {Alphabetic} objects or strings. */
export function personName(ds: Dataset, key: string): string | undefined {
  const v = first(ds[key]);
  if (typeof v === 'string') return v.trim() === '' ? undefined : v.trim();
  if (typeof v === 'object' && v !== null && 'Alphabetic' in v) {
    const a = (v as { Alphabetic?: unknown }).Alphabetic;
    if (typeof a === 'string' && a.trim() !== '') return a.trim();
  }
  return undefined;
}

/** Bulk data (PixelData) as ArrayBuffers, as dcmjs returns it. */
export function bulk(ds: Dataset, key: string): ArrayBuffer[] {
  const v = ds[key];
  const list: unknown[] = Array.isArray(v) ? (v as unknown[]) : v === undefined || v === null ? [] : [v];
  return list.filter((x): x is ArrayBuffer => x instanceof ArrayBuffer);
}
