/**
 * MLLP listener for HL7 v2 orders (ORM^O01, OMI^O23) → submitOrder, answering each message with an ACK
 * (original mode). Bound to 127.0.0.1 unless told otherwise. Per connection, messages are handled one at a
 * time in arrival order. Nothing a peer sends can crash it: unreadable bytes, bad encoding characters, wrong
 * segments, oversized frames and handler failures all become AE/AR ACKs with an ERR segment.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Hl7Message } from '@medplum/core';
import { isDomainError } from '../../domain/errors.ts';
import type { Analysis, AnalysisOrder } from '../../domain/model/analysis.ts';
import type { AuditLog, AuditRecord } from '../../domain/ports/audit-log.port.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';
import {
  buildAck,
  buildRejectWithoutHeader,
  HL7_ERROR,
  Hl7InboundError,
  problemFromDomainError,
  type Hl7Problem,
} from './ack.ts';
import { MllpDecoder, mllpFrame } from './mllp.ts';
import { checkHeader, controlId, orderFromMessage, parseHl7, type Hl7OrderOptions } from './orders.ts';

export type OrderHandler = (order: AnalysisOrder) => Promise<{ analysis: Analysis; created: boolean }>;

export interface MllpListenerOptions extends Hl7OrderOptions {
  /** Default 127.0.0.1 (loopback); '0.0.0.0' or a NIC address only when the network is trusted. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest accepted message in bytes (default 1 MiB); larger frames are discarded and NAKed (AR). */
  readonly maxMessageBytes?: number;
  /** Character encoding of the byte stream (default utf-8). */
  readonly encoding?: 'utf-8' | 'latin1';
  /** Idle connections are closed after this long (default 5 min). */
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  /** MSH-3/4 of ACKs that cannot echo the sender's MSH. */
  readonly application?: string;
  readonly facility?: string;
  readonly handler: OrderHandler;
  readonly logger: Logger;
  /** Checks that the PACS holds the ordered study (and prior) before accepting (throws STUDY.NOT_FOUND → AE). */
  readonly checkStudy?: (studyInstanceUid: string) => Promise<void>;
  /** Audit trail: every order received (accepted or not) is recorded. */
  readonly audit?: AuditLog;
  readonly now?: () => Date;
}

export interface MllpListener {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface InboundOutcome {
  readonly ack: string;
  readonly code: 'AA' | 'AE' | 'AR';
  readonly analysisId?: string;
  readonly created?: boolean;
  readonly errorCode?: string;
}

let fallbackSeq = 0;

/** Handles the text of one inbound message and returns its ACK (never throws). */
export async function handleInbound(text: string, options: MllpListenerOptions): Promise<InboundOutcome> {
  const now = options.now ?? (() => new Date());
  const sender = { application: options.application ?? 'MSLESION', facility: options.facility ?? '' };
  const headerless = (problem: Hl7Problem): InboundOutcome => {
    fallbackSeq = (fallbackSeq + 1) % 1_000_000;
    const ctrl = `MSLNAK${String(Date.now() % 1e8)}${String(fallbackSeq)}`.slice(0, 20);
    return {
      ack: buildRejectWithoutHeader(problem, sender, ctrl, now()).toString(),
      code: 'AR',
      errorCode: problem.code,
    };
  };
  let message: Hl7Message | undefined;
  try {
    message = parseHl7(text);
    checkHeader(message, options);
  } catch (e) {
    if (e instanceof Hl7InboundError) {
      if (message === undefined) return headerless(e.problem);
      return { ack: buildAck(message, e.ack, e.problem).toString(), code: e.ack, errorCode: e.problem.code };
    }
    return headerless({
      code: 'HL7.UNPARSEABLE',
      message: 'the message cannot be parsed',
      hl7Code: HL7_ERROR.SEGMENT_SEQUENCE,
    });
  }
  const msh = message.getSegment('MSH');
  const sendingApp = [msh?.getField(3).toString(), msh?.getField(4).toString()].filter(
    (x) => x !== undefined && x !== '',
  );
  let audited: { patient?: AuditRecord['patient']; reference?: string } = {};
  const audit = async (outcome: AuditRecord['outcome'], description?: string): Promise<void> => {
    if (options.audit === undefined) return;
    await options.audit
      .record({
        recorded: now().toISOString(),
        action: 'C',
        interaction: 'create',
        outcome,
        ...(description === undefined ? {} : { outcomeDescription: description }),
        agent: { who: sendingApp.join('^') || 'unknown-hl7-sender' },
        source: 'hl7v2',
        entities: [{ reference: audited.reference ?? `hl7v2:${controlId(message)}` }],
        ...(audited.patient === undefined ? {} : { patient: audited.patient }),
      })
      .catch(() => undefined);
  };
  try {
    const order = orderFromMessage(message, options);
    audited = {
      patient: {
        id: order.patientId,
        ...(order.patientIdSystem === undefined ? {} : { system: order.patientIdSystem }),
      },
    };
    if (options.checkStudy !== undefined) {
      await options.checkStudy(order.studyInstanceUid);
      if (order.priorStudyInstanceUid !== undefined) await options.checkStudy(order.priorStudyInstanceUid);
    }
    const { analysis, created } = await options.handler(order);
    audited.reference = `ServiceRequest/${analysis.id}`;
    await audit('0');
    options.logger.info(
      { analysisId: analysis.id, created, controlId: controlId(message), channel: 'hl7v2' },
      created ? 'HL7 order accepted' : 'HL7 order repeated: existing analysis',
    );
    return { ack: buildAck(message, 'AA').toString(), code: 'AA', analysisId: analysis.id, created };
  } catch (e) {
    let ack: 'AE' | 'AR';
    let problem: Hl7Problem;
    if (e instanceof Hl7InboundError) {
      ack = e.ack;
      problem = e.problem;
    } else if (isDomainError(e)) {
      ({ ack, problem } = problemFromDomainError(e));
    } else {
      ack = 'AR';
      problem = {
        code: 'INTERNAL.ERROR',
        message: 'internal error; retry later',
        hl7Code: HL7_ERROR.INTERNAL,
      };
      options.logger.error(
        { controlId: controlId(message), err: e instanceof Error ? e.message : String(e) },
        'HL7 order handling failed',
      );
    }
    options.logger.warn(
      { controlId: controlId(message), ack, code: problem.code, channel: 'hl7v2' },
      'HL7 order not accepted',
    );
    await audit(ack === 'AE' ? '4' : '8', problem.code);
    return { ack: buildAck(message, ack, problem).toString(), code: ack, errorCode: problem.code };
  }
}

/** The NAK for an oversized frame (names the message when its MSH was in the first bytes). */
export function oversizedAck(head: Buffer, size: number, options: MllpListenerOptions): string {
  const limit = options.maxMessageBytes ?? 1024 * 1024;
  const problem: Hl7Problem = {
    code: 'HL7.MESSAGE_TOO_LARGE',
    message: `message of ${size} bytes exceeds the limit of ${limit} bytes`,
    hl7Code: HL7_ERROR.INTERNAL,
  };
  const text = head.toString(options.encoding ?? 'utf-8');
  const mshEnd = text.indexOf('\r');
  try {
    if (mshEnd > 0) {
      const message = parseHl7(text.slice(0, mshEnd));
      return buildAck(message, 'AR', problem).toString();
    }
  } catch {
    // no readable MSH in the first bytes: answer with a header of our own
  }
  const now = options.now ?? (() => new Date());
  return buildRejectWithoutHeader(
    problem,
    { application: options.application ?? 'MSLESION', facility: options.facility ?? '' },
    `MSLNAK${String(Date.now() % 1e8)}`,
    now(),
  ).toString();
}

export async function startMllpListener(options: MllpListenerOptions): Promise<MllpListener> {
  const host = options.host ?? '127.0.0.1';
  const encoding = options.encoding ?? 'utf-8';
  const maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setTimeout(options.idleTimeoutMs ?? 300_000);
    socket.on('timeout', () => socket.destroy());
    socket.on('error', (err) => {
      options.logger.debug({ err: err.message, channel: 'hl7v2' }, 'MLLP connection error');
    });
    socket.on('close', () => sockets.delete(socket));
    let chain: Promise<void> = Promise.resolve();
    const reply = (produce: () => Promise<string> | string): void => {
      chain = chain
        .then(async () => {
          const ack = await produce();
          if (!socket.destroyed) socket.write(mllpFrame(Buffer.from(ack, encoding)));
        })
        .catch((err: unknown) => {
          options.logger.error(
            { err: err instanceof Error ? err.message : String(err), channel: 'hl7v2' },
            'MLLP reply failed',
          );
        });
    };
    const decoder = new MllpDecoder({
      maxMessageBytes,
      onMessage: (payload) => {
        reply(async () => (await handleInbound(payload.toString(encoding), options)).ack);
      },
      onOversized: (head, size) => {
        options.logger.warn(
          { size, limit: maxMessageBytes, channel: 'hl7v2' },
          'oversized HL7 message refused',
        );
        reply(() => oversizedAck(head, size, options));
      },
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        options.logger.error(
          { err: err instanceof Error ? err.message : String(err), channel: 'hl7v2' },
          'MLLP framing failed; closing the connection',
        );
        socket.destroy();
      }
    });
  });
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  options.logger.info({ host, port, channel: 'hl7v2' }, 'MLLP listener started');
  return {
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}
