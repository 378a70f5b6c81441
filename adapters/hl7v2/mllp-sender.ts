/**
 * ORU delivery over MLLP with @medplum/hl7's Hl7Client (the outbox sender for channel 'hl7v2'): one
 * connection per message, wait for the application ACK with a timeout, check that MSA-2 names our control id.
 * AA/CA = delivered; AE/CE = the receiver refused the content (permanent, HL7.ACK_ERROR); AR/CR = rejected
 * for now (e.g. the receiver is down behind an engine: retried, HL7.ACK_REJECT); no connection, a timeout or
 * a closed socket = retried (HL7.DELIVERY_TRANSIENT). The ORU text is deterministic (same MSH-10 on a
 * re-send), so a receiver that detects duplicates by control id drops re-deliveries.
 */
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';
import { DomainError } from '../../domain/errors.ts';
import type { OutboxMessage, OutboxSender } from '../../domain/ports/outbox.port.ts';

export const HL7_CONTENT_TYPE = 'x-application/hl7-v2+er7';

export interface MllpSenderOptions {
  readonly host: string;
  readonly port: number;
  /** Wait this long for the ACK (default 15 s; keep below the outbox lease). */
  readonly ackTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Byte encoding on the wire (default utf-8). */
  readonly encoding?: string;
}

function transient(message: string, cause?: unknown): DomainError {
  return new DomainError('HL7.DELIVERY_TRANSIENT', message, {
    issueType: 'transient',
    ...(cause === undefined ? {} : { cause }),
  });
}

function errText(ack: Hl7Message): string {
  const err = ack.getSegment('ERR');
  const msa = ack.getSegment('MSA');
  const parts = [
    err?.getField(5).getComponent(1),
    err?.getField(8).toString(),
    err?.getField(3).getComponent(2),
    msa?.getField(3).toString(),
  ].filter((s): s is string => s !== undefined && s !== '');
  return parts.join(' — ') || 'no details';
}

export class MllpSender implements OutboxSender {
  readonly channel = 'hl7v2' as const;
  readonly #o: MllpSenderOptions;

  constructor(options: MllpSenderOptions) {
    this.#o = options;
  }

  /** Sends one HL7 message text and returns the ACK (throws DomainError as described above). */
  async sendText(text: string): Promise<Hl7Message> {
    let message: Hl7Message;
    try {
      message = Hl7Message.parse(text);
    } catch (e) {
      throw new DomainError('HL7.BAD_OUTBOUND', 'the outbound HL7 message cannot be parsed', {
        issueType: 'invalid',
        cause: e,
      });
    }
    const control = message.getSegment('MSH')?.getField(10).toString() ?? '';
    const client = new Hl7Client({
      host: this.#o.host,
      port: this.#o.port,
      encoding: this.#o.encoding ?? 'utf-8',
      keepAlive: false,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
    });
    // Socket errors are also dispatched as events; keep them from being unhandled.
    client.addEventListener('error', () => undefined);
    let ack: Hl7Message;
    try {
      await client.connect();
      ack = await client.sendAndWait(message, { timeoutMs: this.#o.ackTimeoutMs ?? 15_000 });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw transient(`MLLP delivery to ${this.#o.host}:${this.#o.port} failed: ${why}`, e);
    } finally {
      await client.close().catch(() => undefined);
    }
    const msa = ack.getSegment('MSA');
    const code = msa?.getField(1).toString().toUpperCase() ?? '';
    const acked = msa?.getField(2).toString() ?? '';
    if (acked !== control) throw transient(`ACK names control id ${acked || '(none)'}, expected ${control}`);
    if (code === 'AA' || code === 'CA') return ack;
    if (code === 'AR' || code === 'CR')
      throw new DomainError('HL7.ACK_REJECT', `receiver rejected the message (${code}): ${errText(ack)}`, {
        issueType: 'transient',
      });
    if (code === 'AE' || code === 'CE')
      throw new DomainError(
        'HL7.ACK_ERROR',
        `receiver reported an application error (${code}): ${errText(ack)}`,
        {
          issueType: 'invalid',
        },
      );
    throw transient(`unexpected acknowledgement code ${code || '(none)'}`);
  }

  async send(message: OutboxMessage): Promise<void> {
    await this.sendText(message.payload);
  }
}
