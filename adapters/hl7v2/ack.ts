/**
 * HL7 v2 acknowledgements (original mode): AA accepted; AE application error (the content is wrong: missing
 * segments or fields, an invalid order); AR application reject (the message cannot be processed at all:
 * unreadable MSH, bad encoding characters, unsupported type/event/version, oversized, or the service is
 * unable to take it now — the sender should retry later). Errors travel in an ERR segment (v2.5 layout):
 * ERR-2 location, ERR-3 HL7 table 0357 code, ERR-4 severity, ERR-5 the service's error code (coding system
 * 99MSL), ERR-8 the message text.
 */
import { Hl7Context, Hl7Message, Hl7Segment, formatHl7DateTime } from '@medplum/core';
import type { DomainError } from '../../domain/errors.ts';

export type AckCode = 'AA' | 'AE' | 'AR';

/** HL7 table 0357 (message error condition codes). */
export const HL7_ERROR = {
  SEGMENT_SEQUENCE: '100^Segment sequence error^HL70357',
  REQUIRED_FIELD_MISSING: '101^Required field missing^HL70357',
  DATA_TYPE: '102^Data type error^HL70357',
  TABLE_VALUE: '103^Table value not found^HL70357',
  UNSUPPORTED_MESSAGE_TYPE: '200^Unsupported message type^HL70357',
  UNSUPPORTED_EVENT: '201^Unsupported event code^HL70357',
  UNSUPPORTED_PROCESSING_ID: '202^Unsupported processing id^HL70357',
  UNSUPPORTED_VERSION: '203^Unsupported version id^HL70357',
  UNKNOWN_KEY: '204^Unknown key identifier^HL70357',
  DUPLICATE_KEY: '205^Duplicate key identifier^HL70357',
  INTERNAL: '207^Application internal error^HL70357',
} as const;

export type Hl7ErrorCode = (typeof HL7_ERROR)[keyof typeof HL7_ERROR];

const DEFAULT_CONTEXT = new Hl7Context();

/** Escapes text for an HL7 field (\F\ \S\ \T\ \R\ \E\, line breaks as \.br\). */
export function hl7Escape(text: string, ctx: Hl7Context = DEFAULT_CONTEXT): string {
  let out = '';
  for (const ch of text) {
    if (ch === ctx.escapeCharacter) out += `${ctx.escapeCharacter}E${ctx.escapeCharacter}`;
    else if (ch === ctx.fieldSeparator) out += `${ctx.escapeCharacter}F${ctx.escapeCharacter}`;
    else if (ch === ctx.componentSeparator) out += `${ctx.escapeCharacter}S${ctx.escapeCharacter}`;
    else if (ch === ctx.subcomponentSeparator) out += `${ctx.escapeCharacter}T${ctx.escapeCharacter}`;
    else if (ch === ctx.repetitionSeparator) out += `${ctx.escapeCharacter}R${ctx.escapeCharacter}`;
    else if (ch === '\r' || ch === '\n') out += `${ctx.escapeCharacter}.br${ctx.escapeCharacter}`;
    else out += ch;
  }
  return out;
}

/** Reverses hl7Escape for the basic delimiter escapes (others are left as they are). */
export function hl7Unescape(text: string, ctx: Hl7Context = DEFAULT_CONTEXT): string {
  const e = ctx.escapeCharacter;
  if (!text.includes(e)) return text;
  const map: Record<string, string> = {
    E: e,
    F: ctx.fieldSeparator,
    S: ctx.componentSeparator,
    T: ctx.subcomponentSeparator,
    R: ctx.repetitionSeparator,
    '.br': '\r',
  };
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text[i] === e) {
      const close = text.indexOf(e, i + 1);
      const seq = close < 0 ? undefined : map[text.slice(i + 1, close)];
      if (seq !== undefined) {
        out += seq;
        i = close + 1;
        continue;
      }
    }
    out += text[i];
    i += 1;
  }
  return out;
}

export interface Hl7Problem {
  /** The service's code, e.g. HL7.MISSING_SEGMENT (ERR-5). */
  readonly code: string;
  readonly message: string;
  readonly hl7Code: Hl7ErrorCode;
  /** ERR-2 error location, e.g. 'PID^1^3' (segment^sequence^field). */
  readonly location?: string;
}

/** An inbound message that cannot be accepted; `ack` says how (AE content error, AR reject). */
export class Hl7InboundError extends Error {
  readonly problem: Hl7Problem;
  readonly ack: 'AE' | 'AR';
  constructor(ack: 'AE' | 'AR', problem: Hl7Problem) {
    super(problem.message);
    this.name = 'Hl7InboundError';
    this.ack = ack;
    this.problem = problem;
  }
}

export function errSegment(problem: Hl7Problem, ctx: Hl7Context = DEFAULT_CONTEXT): Hl7Segment {
  const fields = [
    'ERR',
    '',
    problem.location ?? '',
    problem.hl7Code,
    'E',
    `${hl7Escape(problem.code, ctx)}${ctx.componentSeparator}${ctx.componentSeparator}99MSL`,
    '',
    '',
    hl7Escape(problem.message.slice(0, 250), ctx),
  ];
  return new Hl7Segment(fields, ctx);
}

/** ACK for a message whose MSH could be read. */
export function buildAck(message: Hl7Message, code: AckCode, problem?: Hl7Problem): Hl7Message {
  return message.buildAck({
    ackCode: code,
    ...(problem === undefined ? {} : { errSegment: errSegment(problem, message.context) }),
  });
}

/** AR for bytes that are not a readable HL7 message (no usable MSH): a fresh MSH, MSA-2 empty. */
export function buildRejectWithoutHeader(
  problem: Hl7Problem,
  sender: { application: string; facility: string },
  controlId: string,
  now: Date,
): Hl7Message {
  const ctx = DEFAULT_CONTEXT;
  const msh = new Hl7Segment(
    [
      'MSH',
      ctx.getMsh2(),
      hl7Escape(sender.application),
      hl7Escape(sender.facility),
      '',
      '',
      formatHl7DateTime(now),
      '',
      `ACK${ctx.componentSeparator}${ctx.componentSeparator}ACK`,
      controlId,
      'P',
      '2.5',
    ],
    ctx,
  );
  const msa = new Hl7Segment(['MSA', 'AR', '', 'Application Reject'], ctx);
  return new Hl7Message([msh, msa, errSegment(problem, ctx)], ctx);
}

/** Maps a DomainError from order handling to an ACK: content problems AE, transient failures AR. */
export function problemFromDomainError(e: DomainError): { ack: 'AE' | 'AR'; problem: Hl7Problem } {
  const transient = e.issueType === 'transient' || e.issueType === 'timeout' || e.issueType === 'exception';
  const hl7Code: Hl7ErrorCode =
    e.code === 'ORDER.CONFLICT'
      ? HL7_ERROR.DUPLICATE_KEY
      : e.issueType === 'not-found'
        ? HL7_ERROR.UNKNOWN_KEY
        : transient || e.issueType === 'processing'
          ? HL7_ERROR.INTERNAL
          : HL7_ERROR.DATA_TYPE;
  return { ack: transient ? 'AR' : 'AE', problem: { code: e.code, message: e.message, hl7Code } };
}
