/**
 * ORU^R01 (v2.5.1) for a succeeded analysis: MSH, PID, ORC (RE), OBR for the order, one OBX (NM) per metric
 * with UCUM units, NTE with the conclusion. The text is deterministic — MSH-7 is the analysis' finish time and
 * MSH-10 is derived from the analysis id — so a re-sent ORU is byte-identical and a receiver can drop it as a
 * duplicate by control id.
 *
 *   OBX-3 (CWE)  local code ^ text ^ 99MSL ^ standard code ^ text ^ SCT (where one exists)
 *   OBX-4        sub-id: the McDonald location for per-location values, empty for totals
 *   OBX-6        UCUM: mL^milliliter^UCUM, {lesions}^lesions^UCUM, %^percent^UCUM
 */
import { createHash } from 'node:crypto';
import { Hl7Context, Hl7Message, Hl7Segment } from '@medplum/core';
import { DomainError } from '../../domain/errors.ts';
import { LESION_LOCATIONS, type Analysis } from '../../domain/model/analysis.ts';
import type { StudyDescriptor } from '../../domain/ports/image-source.port.ts';
import { LOCAL, STD, SYSTEM } from '../fhir/codes.ts';
import { conclusionText } from '../fhir/result-bundle.ts';
import { hl7Escape } from './ack.ts';

export interface OruOptions {
  readonly sendingApplication?: string;
  readonly sendingFacility?: string;
  readonly receivingApplication?: string;
  readonly receivingFacility?: string;
  /** Identifier system URI → assigning authority written in PID-3.4 (urn:oid: systems map themselves). */
  readonly assigningAuthorities?: Readonly<Record<string, string>>;
  /** MSH-11 processing id (default P). */
  readonly processingId?: 'P' | 'T' | 'D';
}

const ctx = new Hl7Context();
const C = ctx.componentSeparator;
const S = ctx.subcomponentSeparator;
const e = (s: string): string => hl7Escape(s, ctx);

/** HL7 DTM in UTC with an explicit offset, e.g. 20260302090410+0000. */
export function hl7Timestamp(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new TypeError(`bad timestamp ${iso}`);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}+0000`
  );
}

/** Deterministic MSH-10 for an analysis' ORU (≤ 20 characters, as v2.5 allows). */
export function oruControlId(analysisId: string): string {
  return 'MSL' + createHash('sha256').update(`oru|${analysisId}`).digest('hex').slice(0, 17).toUpperCase();
}

function cwe(
  localCode: { code: string; display: string },
  standard?: { code: string; display?: string },
): string {
  const first = `${e(localCode.code)}${C}${e(localCode.display)}${C}99MSL`;
  return standard === undefined
    ? first
    : `${first}${C}${e(standard.code)}${C}${e(standard.display ?? '')}${C}SCT`;
}

const UNIT = {
  mL: `mL${C}milliliter${C}UCUM`,
  lesions: `{lesions}${C}lesions${C}UCUM`,
  percent: `%${C}percent${C}UCUM`,
} as const;

function patientIdField(analysis: Analysis, options: OruOptions): string {
  const o = analysis.order;
  const id = e(o.patientId);
  const sys = o.patientIdSystem;
  if (sys === undefined) return `${id}${C}${C}${C}${C}MR`;
  if (sys === SYSTEM.PATIENT_RESOURCE_ID) return `${id}${C}${C}${C}${C}PI`;
  if (sys.startsWith('urn:oid:')) return `${id}${C}${C}${C}${S}${e(sys.slice(8))}${S}ISO${C}MR`;
  const namespace = options.assigningAuthorities?.[sys];
  return namespace === undefined ? `${id}${C}${C}${C}${C}MR` : `${id}${C}${C}${C}${e(namespace)}${C}MR`;
}

function fmt(v: number, digits: number): string {
  return (Math.round(v * 10 ** digits) / 10 ** digits).toString();
}

/** The ORU^R01 text (segments separated by CR) for a succeeded analysis. */
export function buildOru(analysis: Analysis, study: StudyDescriptor, options: OruOptions = {}): string {
  const result = analysis.result;
  if (analysis.status !== 'succeeded' || result === undefined)
    throw new DomainError('HL7.NO_RESULT', 'only a succeeded analysis with a result maps to an ORU', {
      issueType: 'business-rule',
      details: { analysisId: analysis.id, status: analysis.status },
    });
  const finished = hl7Timestamp(analysis.finishedAt ?? analysis.updatedAt);
  const observed = study.studyDate !== undefined && /^\d{8}$/.test(study.studyDate) ? study.studyDate : '';
  const placer = e(analysis.order.placerOrderNumber ?? analysis.id);
  const filler = `${e(analysis.id)}${C}MSLESION`;
  const segments: Hl7Segment[] = [];
  const seg = (fields: string[]): void => {
    segments.push(new Hl7Segment(fields, ctx));
  };
  seg([
    'MSH',
    ctx.getMsh2(),
    e(options.sendingApplication ?? 'MSLESION'),
    e(options.sendingFacility ?? ''),
    e(options.receivingApplication ?? ''),
    e(options.receivingFacility ?? ''),
    finished,
    '',
    `ORU${C}R01${C}ORU_R01`,
    oruControlId(analysis.id),
    options.processingId ?? 'P',
    '2.5.1',
  ]);
  seg(['PID', '1', '', patientIdField(analysis, options)]);
  seg(['ORC', 'RE', placer, filler, '', 'CM']);
  const obr = [
    'OBR',
    '1',
    placer,
    filler,
    `${STD.MR_BRAIN.code}${C}${e(STD.MR_BRAIN.display ?? '')}${C}LN`,
    '',
    '',
    observed,
  ];
  while (obr.length < 23) obr.push('');
  obr[22] = finished; // OBR-22 results report/status change
  obr.push('', 'MR', 'F'); // OBR-23 charge, OBR-24 diagnostic service section, OBR-25 result status
  seg(obr);

  let n = 0;
  const obx = (code: string, subId: string, value: string, units: string): void => {
    n += 1;
    seg(['OBX', String(n), 'NM', code, e(subId), value, units, '', '', '', '', 'F', '', '', observed]);
  };
  const l = result.lesions;
  const volume = { code: STD.VOLUME.code, display: STD.VOLUME.display };
  const count = { code: STD.NUMBER_OF_LESIONS.code, display: STD.NUMBER_OF_LESIONS.display };
  obx(cwe(LOCAL.TOTAL_VOLUME, volume), '', fmt(l.totalVolumeMl, 3), UNIT.mL);
  obx(cwe(LOCAL.LESION_COUNT, count), '', String(l.count), UNIT.lesions);
  for (const loc of LESION_LOCATIONS) {
    obx(cwe(LOCAL.LOCATION_VOLUME, volume), loc, fmt(l.volumeByLocationMl[loc], 3), UNIT.mL);
    obx(cwe(LOCAL.LESION_COUNT, count), loc, String(l.countByLocation[loc]), UNIT.lesions);
  }
  const ch = result.change;
  if (ch !== undefined) {
    obx(cwe(LOCAL.NEW_COUNT), '', String(ch.newCount), UNIT.lesions);
    obx(cwe(LOCAL.ENLARGED_COUNT), '', String(ch.enlargedCount), UNIT.lesions);
    obx(cwe(LOCAL.DISAPPEARED_COUNT), '', String(ch.disappearedCount), UNIT.lesions);
    obx(cwe(LOCAL.VOLUME_CHANGE, volume), '', fmt(ch.totalVolumeChangeMl, 3), UNIT.mL);
    if (ch.totalVolumeChangePercent !== null)
      obx(cwe(LOCAL.VOLUME_CHANGE_PERCENT), '', fmt(ch.totalVolumeChangePercent, 1), UNIT.percent);
  }
  seg(['NTE', '1', 'L', e(conclusionText(result))]);
  return new Hl7Message(segments, ctx).toString();
}
