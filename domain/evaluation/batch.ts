/**
 * Batch evaluation: the cases CSV, per-site (per-scanner) stratified tables and Bland–Altman statistics of
 * lesion volumes (predicted vs reference), as in the validation figures of multi-site MS studies.
 *
 * CSV: a header row naming at least `pred` and `ref` (paths, relative to the CSV's folder), optionally `case`
 * (or `id`), `site` (or `scanner`) and `pred_transform` (ITK transform of the prediction onto the reference).
 * Comma separated; fields may be double-quoted ("" for a quote); blank lines and lines starting with # skipped.
 */
import { DomainError } from '../errors.ts';
import type { SegmentationScores } from './metrics.ts';

export interface BatchCase {
  readonly id: string;
  readonly site: string;
  readonly pred: string;
  readonly ref: string;
  readonly predTransform?: string;
}

function badCsv(message: string, line?: number): DomainError {
  return new DomainError('EVAL.BAD_CSV', line === undefined ? message : `line ${line}: ${message}`, {
    issueType: 'invalid',
    details: line === undefined ? {} : { line },
  });
}

function splitCsvLine(line: string, lineNo: number): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let x = 0; x < line.length; x++) {
    const ch = line[x];
    if (quoted) {
      if (ch === '"') {
        if (line[x + 1] === '"') {
          cur += '"';
          x++;
        } else quoted = false;
      } else cur += ch;
    } else if (ch === '"' && cur.trim() === '') {
      quoted = true;
      cur = '';
    } else if (ch === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw badCsv('unterminated quote', lineNo);
  out.push(cur.trim());
  return out;
}

export function parseCasesCsv(text: string): BatchCase[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let header: string[] | undefined;
  let headerLine = 0;
  const cases: BatchCase[] = [];
  const ids = new Set<string>();
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n];
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const fields = splitCsvLine(raw, n + 1);
    if (header === undefined) {
      header = fields.map((f) => f.toLowerCase());
      headerLine = n + 1;
      for (const need of ['pred', 'ref'])
        if (!header.includes(need)) throw badCsv(`header has no "${need}" column`, headerLine);
      continue;
    }
    if (fields.length !== header.length)
      throw badCsv(`${fields.length} fields, the header has ${header.length}`, n + 1);
    const get = (...names: string[]): string | undefined => {
      for (const name of names) {
        const c = header?.indexOf(name) ?? -1;
        if (c >= 0 && fields[c] !== '') return fields[c];
      }
      return undefined;
    };
    const pred = get('pred');
    const ref = get('ref');
    if (pred === undefined || ref === undefined) throw badCsv('empty pred or ref', n + 1);
    const id = get('case', 'id') ?? `case${cases.length + 1}`;
    if (ids.has(id)) throw badCsv(`duplicate case "${id}"`, n + 1);
    ids.add(id);
    const predTransform = get('pred_transform');
    cases.push({
      id,
      site: get('site', 'scanner') ?? 'all',
      pred,
      ref,
      ...(predTransform === undefined ? {} : { predTransform }),
    });
  }
  if (header === undefined) throw badCsv('empty CSV');
  if (cases.length === 0) throw badCsv('no cases', headerLine);
  return cases;
}

export interface CaseResult {
  readonly id: string;
  readonly site: string;
  readonly scores: SegmentationScores;
}

export interface Stat {
  readonly n: number;
  readonly mean: number | null;
  readonly sd: number | null;
  readonly median: number | null;
}

export function stat(values: readonly (number | null)[]): Stat {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { n, mean: null, sd: null, median: null };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const s = [...v].sort((a, b) => a - b);
  const median = n % 2 === 1 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { n, mean, sd, median };
}

export interface Stratum {
  readonly site: string;
  readonly cases: number;
  readonly dice: Stat;
  readonly precision: Stat;
  readonly recall: Stat;
  readonly f1: Stat;
  readonly volumeErrorMl: Stat;
  readonly absVolumeErrorMl: Stat;
  readonly relativeVolumeErrorPercent: Stat;
  /** Lesion-wise counts pooled over the stratum's cases. */
  readonly refLesions: number;
  readonly predLesions: number;
  readonly detectedRefLesions: number;
  readonly truePositivePredLesions: number;
  /** Pooled precision/recall/F1 from the summed counts. */
  readonly pooledPrecision: number | null;
  readonly pooledRecall: number | null;
  readonly pooledF1: number | null;
}

function stratum(site: string, rs: readonly CaseResult[]): Stratum {
  const sum = (f: (s: SegmentationScores) => number): number => rs.reduce((a, r) => a + f(r.scores), 0);
  const refLesions = sum((s) => s.refLesions);
  const predLesions = sum((s) => s.predLesions);
  const detected = sum((s) => s.detectedRefLesions);
  const tpPred = sum((s) => s.truePositivePredLesions);
  const p = predLesions > 0 ? tpPred / predLesions : null;
  const r = refLesions > 0 ? detected / refLesions : null;
  return {
    site,
    cases: rs.length,
    dice: stat(rs.map((x) => x.scores.dice)),
    precision: stat(rs.map((x) => x.scores.precision)),
    recall: stat(rs.map((x) => x.scores.recall)),
    f1: stat(rs.map((x) => x.scores.f1)),
    volumeErrorMl: stat(rs.map((x) => x.scores.volumeErrorMl)),
    absVolumeErrorMl: stat(rs.map((x) => x.scores.absVolumeErrorMl)),
    relativeVolumeErrorPercent: stat(rs.map((x) => x.scores.relativeVolumeErrorPercent)),
    refLesions,
    predLesions,
    detectedRefLesions: detected,
    truePositivePredLesions: tpPred,
    pooledPrecision: p,
    pooledRecall: r,
    pooledF1: p === null || r === null ? null : p + r === 0 ? 0 : (2 * p * r) / (p + r),
  };
}

/** One stratum per site (sorted by name) and one over all cases. */
export function stratifyBySite(results: readonly CaseResult[]): { overall: Stratum; sites: Stratum[] } {
  const bySite = new Map<string, CaseResult[]>();
  for (const r of results) {
    const list = bySite.get(r.site) ?? [];
    list.push(r);
    bySite.set(r.site, list);
  }
  const sites = [...bySite.keys()].sort().map((s) => stratum(s, bySite.get(s) ?? []));
  return { overall: stratum('all sites', results), sites };
}

export interface BlandAltman {
  readonly n: number;
  /** Per case: mean of the two volumes (x) and pred − ref (y), mL. */
  readonly points: readonly {
    readonly id: string;
    readonly site: string;
    readonly mean: number;
    readonly diff: number;
  }[];
  readonly bias: number;
  readonly sd: number;
  readonly lowerLimit: number;
  readonly upperLimit: number;
}

/** Bland–Altman agreement of predicted vs reference volume: bias = mean difference, limits = bias ± 1.96 SD. */
export function blandAltman(results: readonly CaseResult[]): BlandAltman {
  if (results.length === 0)
    throw new DomainError('EVAL.NO_CASES', 'Bland–Altman needs at least one case', { issueType: 'invalid' });
  const points = results.map((r) => ({
    id: r.id,
    site: r.site,
    mean: (r.scores.predVolumeMl + r.scores.refVolumeMl) / 2,
    diff: r.scores.predVolumeMl - r.scores.refVolumeMl,
  }));
  const s = stat(points.map((p) => p.diff));
  const bias = s.mean ?? 0;
  const sd = s.sd ?? 0;
  return { n: points.length, points, bias, sd, lowerLimit: bias - 1.96 * sd, upperLimit: bias + 1.96 * sd };
}

const fmt = (x: number | null, digits = 3): string => (x === null ? '–' : x.toFixed(digits));
const ms = (s: Stat, digits = 3): string =>
  s.mean === null ? '–' : `${fmt(s.mean, digits)} ± ${fmt(s.sd, digits)}`;

/** The stratified table as Markdown (one row per site, then all sites). */
export function stratifiedTableMarkdown(t: { overall: Stratum; sites: readonly Stratum[] }): string {
  const head =
    '| site | cases | Dice | precision | recall | F1 | volume error mL | |volume error| mL | rel. volume error % | pooled P / R / F1 |\n' +
    '|---|---|---|---|---|---|---|---|---|---|';
  const row = (s: Stratum): string =>
    `| ${s.site} | ${s.cases} | ${ms(s.dice)} | ${ms(s.precision)} | ${ms(s.recall)} | ${ms(s.f1)} | ${ms(s.volumeErrorMl)} | ${ms(s.absVolumeErrorMl)} | ${ms(s.relativeVolumeErrorPercent, 1)} | ${fmt(s.pooledPrecision)} / ${fmt(s.pooledRecall)} / ${fmt(s.pooledF1)} |`;
  return [head, ...t.sites.map(row), row(t.overall)].join('\n');
}
