/**
 * HL7 v2 imaging orders → AnalysisOrder (source 'hl7v2'). Accepted: ORM^O01 and OMI^O23, versions 2.3–2.8,
 * order control NW. Field mapping (docs/dev-notes/fhir.md has the table):
 *
 *   patient            PID-3 (the repetition typed MR, else the first): CX.1 value; CX.4 assigning authority →
 *                      system: universal id of type ISO → urn:oid:<id>, else the configured map of namespace
 *                      ids, else none
 *   placer order no.   ORC-2.1, else OBR-2.1
 *   study UID          IPC-3.1 (OMI^O23, IHE RAD-4), else ZDS-1.1 (IHE "ZDS" segment on ORM), else OBR-?
 *                      is not used (no standard field)
 *   prior study UID    a ZDS segment with ZDS-2 = PRIOR (local convention), ZDS-1.1
 *   orderReference     hl7v2:<MSH-10>
 *
 * Everything wrong raises Hl7InboundError: AR for what makes the message unprocessable (MSH, encoding
 * characters, type, event, version), AE for content errors (segments, fields).
 */
import { Hl7Context, Hl7Message, type Hl7Field, type Hl7Segment } from '@medplum/core';
import type { AnalysisOrder } from '../../domain/model/analysis.ts';
import { HL7_ERROR, Hl7InboundError, hl7Unescape, type Hl7ErrorCode } from './ack.ts';

export interface Hl7OrderOptions {
  /** Assigning-authority namespace id (CX.4.1) → identifier system URI. */
  readonly assigningAuthorities?: Readonly<Record<string, string>>;
  /** Accepted HL7 versions (MSH-12.1 prefix match); default 2.3–2.8. */
  readonly versions?: readonly string[];
}

const VERSIONS = ['2.3', '2.3.1', '2.4', '2.5', '2.5.1', '2.6', '2.7', '2.7.1', '2.8'];
const SEGMENT_NAME = /^[A-Z][A-Z0-9]{2}$/;
const UID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;

function reject(code: string, message: string, hl7Code: Hl7ErrorCode, location?: string): Hl7InboundError {
  return new Hl7InboundError('AR', {
    code,
    message,
    hl7Code,
    ...(location === undefined ? {} : { location }),
  });
}

function contentError(
  code: string,
  message: string,
  hl7Code: Hl7ErrorCode,
  location?: string,
): Hl7InboundError {
  return new Hl7InboundError('AE', {
    code,
    message,
    hl7Code,
    ...(location === undefined ? {} : { location }),
  });
}

/**
 * Parses the text of one message and checks its header: starts with MSH, valid encoding characters
 * (MSH-1 one character, MSH-2 four distinct ones, none alphanumeric or a segment terminator).
 */
export function parseHl7(text: string): Hl7Message {
  if (!text.startsWith('MSH'))
    throw reject(
      'HL7.NOT_A_MESSAGE',
      'the message does not start with an MSH segment',
      HL7_ERROR.SEGMENT_SEQUENCE,
    );
  const fieldSep = text.charAt(3);
  const delimiters = [0, 1, 2, 3, 4].map((i) => text.charAt(3 + i));
  const bad =
    text.length < 9 ||
    new Set(delimiters).size !== 5 ||
    delimiters.some((c) => /[A-Za-z0-9\r\n ]/.test(c)) ||
    text.charAt(8) !== fieldSep;
  if (bad)
    throw reject(
      'HL7.BAD_ENCODING_CHARACTERS',
      'MSH-1/MSH-2 must be a field separator and four distinct encoding characters (e.g. |^~\\&)',
      HL7_ERROR.DATA_TYPE,
      'MSH^1^2',
    );
  let message: Hl7Message;
  try {
    message = Hl7Message.parse(text.replace(/\r\n|\n/g, '\r'));
  } catch (e) {
    throw reject(
      'HL7.UNPARSEABLE',
      `the message cannot be parsed: ${e instanceof Error ? e.message : String(e)}`,
      HL7_ERROR.SEGMENT_SEQUENCE,
    );
  }
  return message;
}

/** Control id (MSH-10) of a parsed message, '' when absent. */
export function controlId(message: Hl7Message): string {
  return message.getSegment('MSH')?.getField(10).toString() ?? '';
}

/** Field n (HL7 numbering; MSH-1 is the field separator) or undefined beyond the segment's last field. */
function field(segment: Hl7Segment, n: number): Hl7Field | undefined {
  // getField returns undefined past the end at runtime, although it is typed Hl7Field.
  return segment.getField(n);
}

function text(segment: Hl7Segment, n: number, component = 1, ctx?: Hl7Context): string {
  const f = field(segment, n);
  return f === undefined ? '' : hl7Unescape(f.getComponent(component), ctx).trim();
}

export interface MessageType {
  readonly type: 'ORM^O01' | 'OMI^O23';
  readonly controlId: string;
  readonly version: string;
}

/** Checks MSH-9 (type/event), MSH-10 (control id), MSH-12 (version). */
export function checkHeader(message: Hl7Message, options: Hl7OrderOptions = {}): MessageType {
  const msh = message.getSegment('MSH')!;
  const type = text(msh, 9, 1);
  const event = text(msh, 9, 2);
  const ctrl = text(msh, 10);
  const version = text(msh, 12);
  if (ctrl === '')
    throw reject(
      'HL7.MISSING_CONTROL_ID',
      'MSH-10 (message control id) is required',
      HL7_ERROR.REQUIRED_FIELD_MISSING,
      'MSH^1^10',
    );
  if (type !== 'ORM' && type !== 'OMI')
    throw reject(
      'HL7.UNSUPPORTED_MESSAGE_TYPE',
      `message type ${type || '(none)'} is not accepted (ORM^O01, OMI^O23)`,
      HL7_ERROR.UNSUPPORTED_MESSAGE_TYPE,
      'MSH^1^9',
    );
  if ((type === 'ORM' && event !== 'O01') || (type === 'OMI' && event !== 'O23'))
    throw reject(
      'HL7.UNSUPPORTED_EVENT',
      `trigger event ${type}^${event || '(none)'} is not accepted (ORM^O01, OMI^O23)`,
      HL7_ERROR.UNSUPPORTED_EVENT,
      'MSH^1^9',
    );
  const accepted = options.versions ?? VERSIONS;
  if (!accepted.includes(version))
    throw reject(
      'HL7.UNSUPPORTED_VERSION',
      `HL7 version ${version || '(none)'} is not accepted (${accepted.join(', ')})`,
      HL7_ERROR.UNSUPPORTED_VERSION,
      'MSH^1^12',
    );
  return { type: type === 'ORM' ? 'ORM^O01' : 'OMI^O23', controlId: ctrl, version };
}

function checkSegments(message: Hl7Message, type: MessageType['type']): void {
  const names = message.segments.map((s) => s.name);
  names.forEach((name, i) => {
    if (!SEGMENT_NAME.test(name))
      throw contentError(
        'HL7.BAD_SEGMENT',
        `segment ${i + 1} has an invalid name "${name.slice(0, 8)}"`,
        HL7_ERROR.SEGMENT_SEQUENCE,
        `${name.slice(0, 3)}^${i + 1}`,
      );
  });
  if (names.filter((n) => n === 'MSH').length !== 1)
    throw contentError(
      'HL7.BAD_SEGMENT',
      'exactly one MSH segment is allowed',
      HL7_ERROR.SEGMENT_SEQUENCE,
      'MSH',
    );
  const need = type === 'OMI^O23' ? ['PID', 'ORC', 'OBR', 'IPC'] : ['PID', 'ORC', 'OBR'];
  for (const n of need)
    if (!names.includes(n))
      throw contentError(
        'HL7.MISSING_SEGMENT',
        `${type} requires a ${n} segment`,
        HL7_ERROR.SEGMENT_SEQUENCE,
        n,
      );
  const pid = names.indexOf('PID');
  const orc = names.indexOf('ORC');
  const obr = names.indexOf('OBR');
  if (!(pid < orc && orc < obr))
    throw contentError(
      'HL7.SEGMENT_ORDER',
      'segments must come in the order PID, ORC, OBR',
      HL7_ERROR.SEGMENT_SEQUENCE,
      `${names[Math.min(orc, obr)]}^1`,
    );
  if (names.filter((n) => n === 'ORC').length > 1 || names.filter((n) => n === 'OBR').length > 1)
    throw contentError(
      'HL7.MULTIPLE_ORDERS',
      'one order (ORC/OBR) per message is accepted',
      HL7_ERROR.SEGMENT_SEQUENCE,
      'ORC^2',
    );
}

function uidOf(value: string, code: string, location: string): string {
  if (!UID.test(value) || value.length > 64)
    throw contentError(
      code,
      `${location.replace(/\^/g, '-')} is not a DICOM UID`,
      HL7_ERROR.DATA_TYPE,
      location,
    );
  return value;
}

function patientOf(
  pid: Hl7Segment,
  options: Hl7OrderOptions,
  ctx: Hl7Context,
): { patientId: string; patientIdSystem?: string } {
  const f = field(pid, 3);
  const reps = f === undefined ? [] : f.components.map((_, r) => r);
  const rep = reps.find((r) => f?.getComponent(5, undefined, r) === 'MR') ?? 0;
  const value = f === undefined ? '' : hl7Unescape(f.getComponent(1, undefined, rep), ctx).trim();
  if (value === '')
    throw contentError(
      'HL7.MISSING_PATIENT_ID',
      'PID-3 (patient identifier) is required',
      HL7_ERROR.REQUIRED_FIELD_MISSING,
      'PID^1^3',
    );
  const namespace = f!.getComponent(4, 0, rep).trim();
  const universal = f!.getComponent(4, 1, rep).trim();
  const universalType = f!.getComponent(4, 2, rep).trim();
  let system: string | undefined;
  if (universal !== '' && universalType === 'ISO' && UID.test(universal)) system = `urn:oid:${universal}`;
  else if (namespace !== '') system = options.assigningAuthorities?.[namespace];
  return { patientId: value, ...(system === undefined ? {} : { patientIdSystem: system }) };
}

/** The order carried by an ORM^O01 / OMI^O23 message (its header already checked by checkHeader). */
export function orderFromMessage(message: Hl7Message, options: Hl7OrderOptions = {}): AnalysisOrder {
  const header = checkHeader(message, options);
  checkSegments(message, header.type);
  const ctx = message.context;
  const pid = message.getSegment('PID')!;
  const orc = message.getSegment('ORC')!;
  const obr = message.getSegment('OBR')!;
  const control = text(orc, 1);
  if (control !== 'NW')
    throw contentError(
      'HL7.UNSUPPORTED_ORDER_CONTROL',
      `ORC-1 order control ${control || '(none)'} is not supported (NW only)`,
      HL7_ERROR.TABLE_VALUE,
      'ORC^1^1',
    );
  const placer = text(orc, 2, 1, ctx) || text(obr, 2, 1, ctx);
  if (placer === '')
    throw contentError(
      'HL7.MISSING_PLACER_ORDER_NUMBER',
      'ORC-2 or OBR-2 (placer order number) is required',
      HL7_ERROR.REQUIRED_FIELD_MISSING,
      'ORC^1^2',
    );
  let study = '';
  let location = '';
  const ipc = message.getSegment('IPC');
  if (ipc !== undefined && text(ipc, 3) !== '') {
    study = text(ipc, 3);
    location = 'IPC^1^3';
  }
  const zds = message.getAllSegments('ZDS');
  const currentZds = zds.find((z) => text(z, 2).toUpperCase() !== 'PRIOR');
  if (study === '' && currentZds !== undefined) {
    study = text(currentZds, 1);
    location = 'ZDS^1^1';
  }
  if (study === '')
    throw contentError(
      'HL7.MISSING_STUDY_UID',
      'the Study Instance UID is required in IPC-3 (OMI^O23) or ZDS-1 (ORM^O01)',
      HL7_ERROR.REQUIRED_FIELD_MISSING,
      header.type === 'OMI^O23' ? 'IPC^1^3' : 'ZDS^1^1',
    );
  const priorZds = zds.filter((z) => text(z, 2).toUpperCase() === 'PRIOR');
  if (priorZds.length > 1)
    throw contentError(
      'HL7.MULTIPLE_PRIORS',
      'at most one ZDS segment marked PRIOR',
      HL7_ERROR.SEGMENT_SEQUENCE,
      'ZDS',
    );
  const prior =
    priorZds.length === 1 ? uidOf(text(priorZds[0], 1), 'HL7.INVALID_PRIOR_STUDY_UID', 'ZDS^2^1') : undefined;
  return {
    studyInstanceUid: uidOf(study, 'HL7.INVALID_STUDY_UID', location),
    ...patientOf(pid, options, ctx),
    ...(prior === undefined ? {} : { priorStudyInstanceUid: prior }),
    placerOrderNumber: placer,
    source: 'hl7v2',
    options: {},
    orderReference: `hl7v2:${header.controlId}`,
  };
}
