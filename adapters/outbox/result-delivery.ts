/**
 * ResultDelivery into the durable outbox: builds the FHIR transaction Bundle (adapters/fhir/result-bundle.ts)
 * and the ORU^R01 (adapters/hl7v2/oru.ts) for the configured channels and enqueues them. Identical content is
 * not queued twice (a delivered message stays delivered); the dispatcher does the sending.
 */
import type { DeliveryStatus } from '../../domain/model/analysis.ts';
import type { Clock } from '../../domain/ports/clock.port.ts';
import type { DeliveryStatusRecorder, Outbox } from '../../domain/ports/outbox.port.ts';
import type { ResultDelivery, ResultDeliveryInput } from '../../domain/ports/result-delivery.port.ts';
import { FHIR_JSON } from '../fhir/fhir-push-client.ts';
import { buildResultBundle, type ResultBundleOptions } from '../fhir/result-bundle.ts';
import { HL7_CONTENT_TYPE } from '../hl7v2/mllp-sender.ts';
import { buildOru, type OruOptions } from '../hl7v2/oru.ts';

export interface OutboxResultDeliveryOptions {
  readonly outbox: Outbox;
  readonly clock: Clock;
  /** Deliver a FHIR transaction bundle (options for the bundle: server base, timezone, per-lesion …). */
  readonly fhir?: Omit<ResultBundleOptions, 'pdf'>;
  /** Deliver an ORU^R01 (MSH addressing, assigning authorities). */
  readonly hl7v2?: OruOptions;
  /** Records the status of newly queued messages (and of queued ones the analysis has no status for). */
  readonly recorder?: DeliveryStatusRecorder;
}

export class OutboxResultDelivery implements ResultDelivery {
  readonly #o: OutboxResultDeliveryOptions;
  readonly channels: readonly DeliveryStatus['channel'][];

  constructor(options: OutboxResultDeliveryOptions) {
    this.#o = options;
    this.channels = [
      ...(options.fhir === undefined ? [] : (['fhir'] as const)),
      ...(options.hl7v2 === undefined ? [] : (['hl7v2'] as const)),
    ];
  }

  async deliver(input: ResultDeliveryInput): Promise<readonly DeliveryStatus[]> {
    const { analysis, study, pdf } = input;
    const now = this.#o.clock.now();
    const entries = [
      ...(this.#o.fhir === undefined
        ? []
        : [
            {
              channel: 'fhir' as const,
              contentType: FHIR_JSON,
              payload: JSON.stringify(
                buildResultBundle(analysis, study, {
                  ...this.#o.fhir,
                  ...(pdf === undefined ? {} : { pdf }),
                }),
              ),
            },
          ]),
      ...(this.#o.hl7v2 === undefined
        ? []
        : [
            {
              channel: 'hl7v2' as const,
              contentType: HL7_CONTENT_TYPE,
              payload: buildOru(analysis, study, this.#o.hl7v2),
            },
          ]),
    ];
    const out: DeliveryStatus[] = [];
    for (const e of entries) {
      const { message, changed } = await this.#o.outbox.enqueue({ analysisId: analysis.id, ...e }, now);
      const status: DeliveryStatus = {
        channel: e.channel,
        state:
          message.state === 'delivered' ? 'delivered' : message.state === 'failed' ? 'failed' : 'pending',
        attempts: message.attempts,
        ...(message.lastError === undefined ? {} : { lastError: message.lastError }),
      };
      // also when nothing changed but the analysis has no status yet (a queueing whose recording failed)
      const unrecorded = !analysis.delivery.some((d) => d.channel === e.channel);
      if ((changed || unrecorded) && this.#o.recorder !== undefined)
        await this.#o.recorder.record(analysis.id, status);
      out.push(status);
    }
    return out;
  }
}
