/**
 * The EHR side of the service, assembled from its settings for compose.ts: the API's SMART authenticator, the
 * FHIR API's mapping + audit log (+ optional PACS study check), the durable outbox with its dispatcher and
 * senders (FHIR push with SMART Backend Services, ORU over MLLP), the ResultDelivery that queues the results
 * of every succeeded analysis, and the MLLP order listener. Each part is on only when configured.
 */
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type { Analysis, DeliveryStatus } from '../../domain/model/analysis.ts';
import type { AnalysisStore } from '../../domain/ports/analysis-store.port.ts';
import type { ArtifactStore } from '../../domain/ports/artifact-store.port.ts';
import type { AuditLog } from '../../domain/ports/audit-log.port.ts';
import type { Authenticator } from '../../domain/ports/authenticator.port.ts';
import type { Clock } from '../../domain/ports/clock.port.ts';
import type { FhirResults } from '../../domain/ports/fhir-results.port.ts';
import type { ImageSource } from '../../domain/ports/image-source.port.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';
import type { Outbox, OutboxSender } from '../../domain/ports/outbox.port.ts';
import type { ResultDelivery } from '../../domain/ports/result-delivery.port.ts';
import { PostgresAuditLog } from '../audit/postgres-audit-log.ts';
import { SqliteAuditLog } from '../audit/sqlite-audit-log.ts';
import { JwtVerifier } from '../auth/jwt-verifier.ts';
import { SmartAuthenticator } from '../auth/smart-authenticator.ts';
import { startMllpListener, type MllpListener, type OrderHandler } from '../hl7v2/mllp-listener.ts';
import { MllpSender } from '../hl7v2/mllp-sender.ts';
import { OutboxDispatcher } from '../outbox/dispatcher.ts';
import { PostgresOutbox } from '../outbox/postgres/postgres-outbox.ts';
import { OutboxResultDelivery } from '../outbox/result-delivery.ts';
import { SqliteOutbox } from '../outbox/sqlite/sqlite-outbox.ts';
import { FhirPushClient } from './fhir-push-client.ts';
import { analysedStudy } from './analysed-study.ts';
import { createFhirResults } from './fhir-results.ts';
import { SmartBackendAuth, type SmartAlg } from './smart-auth.ts';

/** The `ehr` settings (config.ts). */
export interface EhrSettings {
  readonly authIssuer?: string;
  readonly authAudience?: string;
  readonly authJwksUri?: string;
  readonly fhirServerUrl?: string;
  readonly fhirTokenUrl?: string;
  readonly fhirClientId?: string;
  readonly fhirPrivateKeyFile?: string;
  readonly fhirKeyAlg: SmartAlg;
  readonly fhirScope: string;
  readonly studyTimezone?: string;
  readonly hl7ListenPort?: number;
  readonly hl7ListenHost: string;
  readonly hl7MaxMessageBytes: number;
  readonly oruHost?: string;
  readonly oruPort?: number;
  readonly oruReceivingApplication?: string;
  readonly oruReceivingFacility?: string;
  readonly checkStudyOnOrder: boolean;
  readonly outboxPollMs: number;
}

export interface EhrDeps {
  readonly store: AnalysisStore;
  readonly artifacts: ArtifactStore;
  readonly imageSource?: ImageSource;
  readonly submitOrder: OrderHandler;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Where the outbox lives: the service's SQLite file, or its PostgreSQL schema. */
  readonly database:
    | { readonly kind: 'sqlite'; readonly path: string }
    | { readonly kind: 'postgres'; readonly url: string; readonly schema: string };
  /** SQLite file of the audit trail with a SQLite database (the service's file); with PostgreSQL it is there. */
  readonly auditPath: string;
  readonly version: string;
  /** Lease owner of the dispatcher (the worker id). */
  readonly owner: string;
}

export interface EhrIntegration {
  readonly authenticator?: Authenticator;
  readonly fhirApi: {
    readonly fhir: FhirResults;
    readonly audit: AuditLog;
    readonly checkStudy?: (uid: string) => Promise<void>;
  };
  readonly outbox: Outbox;
  readonly resultDelivery: ResultDelivery;
  readonly readinessChecks: readonly { readonly name: string; check(signal: AbortSignal): Promise<void> }[];
  /**
   * Queues the results of a succeeded analysis on every configured channel (study from the PACS, report.pdf
   * from the artifacts). Throws when they cannot be queued (outbox or store unavailable …).
   */
  queueResults(analysis: Analysis): Promise<readonly DeliveryStatus[]>;
  /**
   * queueResults after a run, never throwing: a failure is logged, and the worker's sweeper queues the results
   * later (they have no delivery status for the channel until then).
   */
  afterSucceeded(analysis: Analysis): Promise<readonly DeliveryStatus[]>;
  /** Starts the MLLP order listener when a port is configured. */
  startListener(): Promise<MllpListener | undefined>;
  /** Starts delivering the outbox (the worker role). */
  startDispatcher(): void;
  close(): Promise<void>;
}

function readKey(path: string): JWK | string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DomainError('CONFIG.INVALID', `cannot read the SMART private key file ${path}`, {
      issueType: 'invalid',
      cause: e,
    });
  }
  return text.trimStart().startsWith('{') ? (JSON.parse(text) as JWK) : text;
}

export async function createEhrIntegration(settings: EhrSettings, deps: EhrDeps): Promise<EhrIntegration> {
  const { logger, clock } = deps;
  const authenticator =
    settings.authIssuer === undefined
      ? undefined
      : new SmartAuthenticator({
          verifier: new JwtVerifier({
            issuer: settings.authIssuer,
            audience: settings.authAudience ?? '',
            ...(settings.authJwksUri === undefined ? {} : { jwksUri: settings.authJwksUri }),
          }),
        });
  const checkStudy =
    settings.checkStudyOnOrder && deps.imageSource !== undefined
      ? async (uid: string): Promise<void> => {
          await deps.imageSource!.findStudy(uid);
        }
      : undefined;
  // the audit trail lives with the service's database: SQLite file, or the PostgreSQL schema every node shares
  const audit =
    deps.database.kind === 'postgres'
      ? await PostgresAuditLog.open({ connectionString: deps.database.url, schema: deps.database.schema })
      : new SqliteAuditLog({ path: deps.auditPath });
  // every analysis of a study: their derived series (SEG, SR, PDF, overlay) are not part of its ImagingStudy
  const analysisIdsOfStudy = async (studyInstanceUid: string): Promise<readonly string[]> =>
    (await deps.store.list({ studyInstanceUid, limit: 1000, offset: 0 })).items.map((a) => a.id);
  const fhir = createFhirResults({
    version: deps.version,
    analysisIdsOfStudy,
    ...(deps.imageSource === undefined ? {} : { imageSource: deps.imageSource }),
    ...(settings.studyTimezone === undefined ? {} : { studyTimezone: settings.studyTimezone }),
  });
  const outbox: Outbox =
    deps.database.kind === 'sqlite'
      ? new SqliteOutbox({ path: deps.database.path })
      : await PostgresOutbox.open({ connectionString: deps.database.url, schema: deps.database.schema });

  const senders: OutboxSender[] = [];
  if (settings.fhirServerUrl !== undefined) {
    const auth =
      settings.fhirClientId === undefined || settings.fhirPrivateKeyFile === undefined
        ? undefined
        : new SmartBackendAuth({
            clientId: settings.fhirClientId,
            privateKey: readKey(settings.fhirPrivateKeyFile),
            alg: settings.fhirKeyAlg,
            scope: settings.fhirScope,
            ...(settings.fhirTokenUrl === undefined
              ? { fhirBaseUrl: settings.fhirServerUrl }
              : { tokenUrl: settings.fhirTokenUrl }),
          });
    senders.push(
      new FhirPushClient({ baseUrl: settings.fhirServerUrl, ...(auth === undefined ? {} : { auth }) }),
    );
  }
  if (settings.oruHost !== undefined && settings.oruPort !== undefined)
    senders.push(new MllpSender({ host: settings.oruHost, port: settings.oruPort }));

  const recorder = {
    async record(analysisId: string, status: DeliveryStatus): Promise<void> {
      await deps.store.update(analysisId, { delivery: [status] }, clock.now());
    },
  };
  const resultDelivery = new OutboxResultDelivery({
    outbox,
    clock,
    recorder,
    ...(settings.fhirServerUrl === undefined
      ? {}
      : {
          fhir: {
            serverBase: settings.fhirServerUrl,
            ...(settings.studyTimezone === undefined ? {} : { studyTimezone: settings.studyTimezone }),
          },
        }),
    ...(settings.oruHost === undefined
      ? {}
      : {
          hl7v2: {
            ...(settings.oruReceivingApplication === undefined
              ? {}
              : { receivingApplication: settings.oruReceivingApplication }),
            ...(settings.oruReceivingFacility === undefined
              ? {}
              : { receivingFacility: settings.oruReceivingFacility }),
          },
        }),
  });
  const dispatcher = new OutboxDispatcher({
    outbox,
    senders,
    recorder,
    clock,
    logger,
    owner: deps.owner,
    pollMs: settings.outboxPollMs,
  });
  let listener: MllpListener | undefined;
  let dispatching = false;
  const queueResults = async (analysis: Analysis): Promise<readonly DeliveryStatus[]> => {
    if (resultDelivery.channels.length === 0) return [];
    const study = await analysedStudy(analysis, {
      ...(deps.imageSource === undefined ? {} : { imageSource: deps.imageSource }),
      analysisIdsOfStudy,
    });
    const pdf = await deps.artifacts.get(analysis.id, 'report.pdf');
    return resultDelivery.deliver({ analysis, study, ...(pdf === undefined ? {} : { pdf: pdf.data }) });
  };

  return {
    ...(authenticator === undefined ? {} : { authenticator }),
    fhirApi: { fhir, audit, ...(checkStudy === undefined ? {} : { checkStudy }) },
    outbox,
    resultDelivery,
    readinessChecks: [{ name: 'outbox', check: () => outbox.ping() }],
    queueResults,
    async afterSucceeded(analysis) {
      try {
        return await queueResults(analysis);
      } catch (e) {
        logger.error(
          {
            analysisId: analysis.id,
            code: isDomainError(e) ? e.code : 'INTERNAL.ERROR',
            err: e instanceof Error ? e.message : String(e),
          },
          'results could not be queued for the EHR; the sweeper queues them again',
        );
        return [];
      }
    },
    async startListener() {
      if (settings.hl7ListenPort === undefined || listener !== undefined) return listener;
      listener = await startMllpListener({
        host: settings.hl7ListenHost,
        port: settings.hl7ListenPort,
        maxMessageBytes: settings.hl7MaxMessageBytes,
        handler: deps.submitOrder,
        logger,
        audit,
        ...(checkStudy === undefined ? {} : { checkStudy }),
      });
      return listener;
    },
    startDispatcher() {
      if (dispatching || senders.length === 0) return;
      dispatching = true;
      dispatcher.start();
    },
    async close() {
      if (dispatching) await dispatcher.stop();
      if (listener !== undefined) await listener.close();
      await outbox.close();
      await audit.close();
    },
  };
}
