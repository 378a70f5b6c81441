/**
 * The composition root (the only module importing both api/ and adapters/): builds the adapters the
 * configuration asks for, binds the use cases to them, and creates the HTTP app. Tests pass overrides
 * (another pipeline, a store they hold, a clock …); everything not overridden is the real adapter.
 *
 *   const c = await compose(loadConfig());
 *   c.startWorker();             // consume the queue in this process
 *   http.createServer(c.app)     // serve the API
 *   await c.close();             // stop the worker (grace period), close queue and store
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Express } from 'express';
import { Registry } from 'prom-client';
import type { Config } from './config.ts';
import { createApp } from './api/app.ts';
import type { ApiUseCases } from './api/use-cases.ts';
import type { RouteTable } from './api/http.ts';
import { bulkExportRoutes } from './api/routes/bulk-export.ts';
import { serviceResultsReader, smartAppRoutes, type SmartAppDeps } from './api/routes/smart-app.ts';
import { EhrFhirReader } from './adapters/smart/ehr-fhir-reader.ts';
import { MemorySmartSessionStore } from './adapters/smart/memory-session-store.ts';
import { SmartAppClient } from './adapters/smart/smart-client.ts';
import { createBulkExportService, type BulkExportService } from './adapters/bulk/bulk-export-service.ts';
import { FsArtifactStore } from './adapters/artifacts/fs/fs-artifact-store.ts';
import { createEhrIntegration, type EhrIntegration } from './adapters/fhir/ehr-integration.ts';
import { FolderImageSource } from './adapters/dicom/folder-source.ts';
import { FsDicomInbox } from './adapters/dicom/inbox.ts';
import { DicomWebImageSource } from './adapters/dicomweb/dicomweb-source.ts';
import { FallbackImageSource } from './adapters/images/fallback-source.ts';
import { loadSeriesRules } from './adapters/dicom/series-rules-file.ts';
import { systemClock } from './adapters/clock/system-clock.ts';
import { basicAuth, httpProbe } from './adapters/health/http-probe.ts';
import { createLogger } from './adapters/logging/logger.ts';
import { createPrometheusMetrics } from './adapters/metrics/prometheus.ts';
import { openModelRegistry, type FsModelRegistry } from './adapters/models/fs-registry.ts';
import { BullMqJobQueue } from './adapters/queue/bullmq/bullmq-queue.ts';
import { InProcessJobQueue } from './adapters/queue/in-process/in-process-queue.ts';
import { PostgresAnalysisStore } from './adapters/store/postgres/postgres-store.ts';
import { SqliteAnalysisStore } from './adapters/store/sqlite/sqlite-store.ts';
import type { AnalysisStore } from './domain/ports/analysis-store.port.ts';
import type { ArtifactStore } from './domain/ports/artifact-store.port.ts';
import type { Authenticator } from './domain/ports/authenticator.port.ts';
import type { Clock } from './domain/ports/clock.port.ts';
import type { ImageSource } from './domain/ports/image-source.port.ts';
import type { JobQueue } from './domain/ports/job-queue.port.ts';
import type { Logger } from './domain/ports/logger.port.ts';
import { getAnalysis, getArtifact, listAnalyses } from './domain/use-cases/analyses.ts';
import { analyzeStudyPipeline } from './domain/use-cases/analyze-study.ts';
import type { InferenceEngine } from './domain/ports/inference.port.ts';
import type { ExamLoad } from './domain/ports/report-renderer.port.ts';
import { encodeNifti } from './adapters/nifti/nifti.ts';
import { DicomWebClient } from './adapters/dicomweb/client.ts';
import { DicomWebPacsPublisher } from './adapters/dicom/derived/pacs-publisher.ts';
import { PdfReportRenderer } from './adapters/report/report-pdf.ts';
import type { PacsPublisher } from './domain/ports/pacs-publisher.port.ts';
import { checkReadiness, type ReadinessCheck } from './domain/use-cases/readiness.ts';
import { runAnalysis, type AnalysisPipeline, type RunOutcome } from './domain/use-cases/run-analysis.ts';
import { submitOrder } from './domain/use-cases/submit-order.ts';
import { startWorker, type Worker } from './domain/use-cases/worker.ts';

export const VERSION = (
  JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface Overrides {
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly store?: AnalysisStore;
  readonly queue?: JobQueue;
  readonly artifacts?: ArtifactStore;
  /** The analysis pipeline run for each job (default: the one assembled from the configured adapters). */
  readonly pipeline?: AnalysisPipeline;
  /** Inference engine of the default pipeline (default: onnxruntime-node, or the configured remote server). */
  readonly engine?: InferenceEngine;
  /** Where the default pipeline stores results in the PACS (default: STOW-RS to the configured PACS). */
  readonly publisher?: PacsPublisher;
  /**
   * Where studies are read from (default: the STOW-RS inbox, then the configured PACS, then the configured
   * DICOM folder — the first that has the study).
   */
  readonly imageSource?: ImageSource;
  readonly authenticator?: Authenticator;
  readonly registry?: Registry;
  /** Further readiness checks (FHIR server, MLLP peer …). */
  readonly readinessChecks?: readonly ReadinessCheck[];
  /** Further REST routes by operationId (FHIR, HL7 …). */
  readonly routes?: readonly RouteTable[];
  /** STOW-RS receiver (absent: POST /dicomweb/studies answers STOW.NOT_AVAILABLE). */
  readonly receiveInstances?: ApiUseCases['receiveInstances'];
}

export interface ServiceUseCases extends ApiUseCases {
  /** Runs one analysis now in this process (the worker's job; the CLI's `analyze`). */
  runAnalysis(analysisId: string, signal?: AbortSignal): Promise<RunOutcome>;
}

export interface Composition {
  readonly config: Config;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly store: AnalysisStore;
  readonly queue: JobQueue;
  readonly artifacts: ArtifactStore;
  readonly useCases: ServiceUseCases;
  /** The full API (role api/all). */
  readonly app: Express;
  /** Health, readiness and metrics only (role worker's listener). */
  readonly opsApp: Express;
  readonly workerId: string;
  /** EHR integration: outbox + dispatcher, result delivery, MLLP listener (`ehr.startListener()`), audit. */
  readonly ehr: EhrIntegration;
  /** FHIR Bulk Data export (jobs, files, runner); its routes are mounted on `app`. */
  readonly bulkExport: BulkExportService;
  /** Starts consuming the queue in this process (once). */
  startWorker(): Worker;
  /** Stops the worker (within its grace period) and closes queue and store. Idempotent. */
  close(): Promise<void>;
}

async function openEngine(config: Config, logger: Logger): Promise<InferenceEngine> {
  if (config.inference.remoteUrl !== undefined) {
    const { KServeInferenceClient } = await import('./adapters/onnx/remote/kserve-client.ts');
    return new KServeInferenceClient({
      url: config.inference.remoteUrl,
      timeoutMs: config.inference.remoteTimeoutMs,
    });
  }
  const { OnnxInferenceEngine } = await import('./adapters/onnx/onnx-engine.ts');
  return new OnnxInferenceEngine({
    provider: config.inference.provider,
    cudaFallback: config.inference.cudaFallback,
    ...(config.inference.threads === undefined ? {} : { intraOpThreads: config.inference.threads }),
    logger,
  });
}

async function openStore(config: Config): Promise<AnalysisStore> {
  if (config.store.kind === 'postgres')
    return PostgresAnalysisStore.open({
      connectionString: config.store.postgresUrl ?? '',
      schema: config.store.postgresSchema,
    });
  return new SqliteAnalysisStore({ path: config.store.sqlitePath });
}

function openQueue(config: Config, logger: Logger): JobQueue {
  const onError = (analysisId: string, e: unknown): void => {
    logger.error({ analysisId, err: e instanceof Error ? e.message : String(e) }, 'job delivery failed');
  };
  if (config.queue.kind === 'bullmq')
    return new BullMqJobQueue({
      redisUrl: config.queue.redisUrl ?? '',
      prefix: config.queue.prefix,
      queueName: config.queue.name,
      onError,
      lockMs: Math.min(30_000, Math.max(1000, config.worker.leaseMs)),
    });
  return new InProcessJobQueue({ onError });
}

function openImageSource(config: Config, inbox: FsDicomInbox): ImageSource {
  const sources: ImageSource[] = [inbox.imageSource()];
  if (config.pacs !== undefined)
    sources.push(
      new DicomWebImageSource({
        url: config.pacs.dicomWebUrl,
        timeoutMs: config.pacs.timeoutMs,
        ...(config.pacs.username === undefined || config.pacs.password === undefined
          ? {}
          : { auth: { username: config.pacs.username, password: config.pacs.password } }),
      }),
    );
  if (config.dicomFolder !== undefined) sources.push(new FolderImageSource(config.dicomFolder));
  return new FallbackImageSource(sources);
}

export async function compose(config: Config, overrides: Overrides = {}): Promise<Composition> {
  const logger = overrides.logger ?? createLogger({ level: config.log.level, base: { role: config.role } });
  const clock = overrides.clock ?? systemClock;
  const registry = overrides.registry ?? new Registry();
  const store = overrides.store ?? (await openStore(config));
  let queue: JobQueue | undefined;
  try {
    queue = overrides.queue ?? openQueue(config, logger);
    return await assemble(config, overrides, { logger, clock, registry, store, queue });
  } catch (e) {
    // nothing half-open is left behind when composition fails
    if (overrides.queue === undefined) await queue?.close().catch(() => undefined);
    if (overrides.store === undefined) await store.close().catch(() => undefined);
    throw e;
  }
}

async function assemble(
  config: Config,
  overrides: Overrides,
  base: { logger: Logger; clock: Clock; registry: Registry; store: AnalysisStore; queue: JobQueue },
): Promise<Composition> {
  const { logger, clock, registry, store, queue } = base;
  const artifacts = overrides.artifacts ?? new FsArtifactStore(config.artifacts.dir);
  const metrics = createPrometheusMetrics({ registry, store, queue, logger });
  const workerId = config.worker.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const inbox = await FsDicomInbox.open(config.inboxDir);
  const images = overrides.imageSource ?? openImageSource(config, inbox);
  const rules = await loadSeriesRules(config.seriesRulesPath);
  const receiveInstances: NonNullable<ApiUseCases['receiveInstances']> =
    overrides.receiveInstances ??
    (async (parts) => {
      const r = await inbox.store(parts);
      return {
        instances: r.instances.map((i) => ({
          stored: i.stored,
          ...(i.sopClassUid === undefined ? {} : { sopClassUid: i.sopClassUid }),
          ...(i.sopInstanceUid === undefined ? {} : { sopInstanceUid: i.sopInstanceUid }),
          ...(i.failureReason === undefined ? {} : { failureReason: i.failureReason }),
          ...(i.error === undefined ? {} : { error: i.error }),
        })),
      };
    });

  let models: Promise<FsModelRegistry> | undefined;
  const modelRegistry = (): Promise<FsModelRegistry> => {
    models ??= openModelRegistry({
      roots: [config.models.dir],
      ...(config.models.defaultLesionModel === undefined
        ? {}
        : { defaults: { 'ms-lesion-segmentation': config.models.defaultLesionModel } }),
    });
    return models;
  };

  // onnxruntime (or the remote client) loads on the first analysis, not at start: API-only nodes never load it.
  let engine: Promise<InferenceEngine> | undefined;
  const inferenceEngine = (): Promise<InferenceEngine> => {
    engine ??=
      overrides.engine !== undefined ? Promise.resolve(overrides.engine) : openEngine(config, logger);
    return engine;
  };
  const publisher =
    overrides.publisher ??
    (config.pacs === undefined || !config.pipeline.publishToPacs
      ? undefined
      : new DicomWebPacsPublisher({
          stow: new DicomWebClient({
            url: config.pacs.dicomWebUrl,
            timeoutMs: config.pacs.timeoutMs,
            ...(config.pacs.username === undefined || config.pacs.password === undefined
              ? {}
              : { auth: { username: config.pacs.username, password: config.pacs.password } }),
          }),
        }));
  const history = async (patientId: string, excludeId: string): Promise<ExamLoad[]> => {
    const page = await store.list({ patientId, status: 'succeeded', limit: 50, offset: 0 });
    return page.items.flatMap((a) =>
      a.id === excludeId || a.result?.studyDate === undefined
        ? []
        : [
            {
              date: a.result.studyDate,
              totalVolumeMl: a.result.lesions.totalVolumeMl,
              count: a.result.lesions.count,
            },
          ],
    );
  };
  const pipeline: AnalysisPipeline =
    overrides.pipeline ??
    (async (ctx) => {
      const [models, eng] = await Promise.all([modelRegistry(), inferenceEngine()]);
      return analyzeStudyPipeline({
        load: { images, rules },
        segment: { engine: eng, models },
        codec: {
          encodeNifti: (v, description) =>
            encodeNifti(v, { gzip: true, ...(description === undefined ? {} : { description }) }),
        },
        now: () => clock.now(),
        report: new PdfReportRenderer(),
        ...(publisher === undefined ? {} : { publisher }),
        history,
        settings: {
          mirror: config.pipeline.mirror,
          anatomy: config.pipeline.anatomy,
          brainExtraction: { spacing: config.pipeline.brainSpacingMm },
          parcellationSpacing: config.pipeline.parcellationSpacingMm,
        },
      })(ctx);
    });

  const checks: ReadinessCheck[] = [
    { name: 'store', check: () => store.ping() },
    { name: 'queue', check: () => queue.ping() },
    { name: 'artifacts', check: () => artifacts.ping() },
    {
      name: 'models',
      async check() {
        const r = await modelRegistry();
        if (r.refused.length > 0)
          throw new Error(
            `refused models: ${r.refused.map((m) => `${m.modelId} (${m.error.code})`).join(', ')}`,
          );
      },
    },
    ...(config.pacs === undefined
      ? []
      : [
          httpProbe({
            name: 'pacs',
            url: `${config.pacs.dicomWebUrl}/studies?limit=1`,
            headers: {
              accept: 'application/dicom+json',
              ...(config.pacs.username === undefined || config.pacs.password === undefined
                ? {}
                : { authorization: basicAuth(config.pacs.username, config.pacs.password) }),
            },
          }),
        ]),
    ...(overrides.readinessChecks ?? []),
  ];

  const ehr = await createEhrIntegration(config.ehr, {
    store,
    artifacts,
    imageSource: images,
    submitOrder: (order) => submitOrder({ store, queue, clock, logger }, order),
    clock,
    logger,
    database:
      config.store.kind === 'postgres'
        ? { kind: 'postgres', url: config.store.postgresUrl ?? '', schema: config.store.postgresSchema }
        : { kind: 'sqlite', path: config.store.sqlitePath },
    auditPath: config.store.sqlitePath,
    version: VERSION,
    owner: workerId,
  });

  const apiAuthenticator = overrides.authenticator ?? ehr.authenticator;
  const bulkExport = await createBulkExportService(
    {
      ...config.bulk,
      requiresAccessToken: apiAuthenticator !== undefined,
      ...(config.http.publicBaseUrl === undefined ? {} : { publicBaseUrl: config.http.publicBaseUrl }),
    },
    {
      database:
        config.store.kind === 'postgres'
          ? { kind: 'postgres', url: config.store.postgresUrl ?? '', schema: config.store.postgresSchema }
          : { kind: 'sqlite', path: config.store.sqlitePath },
      store,
      fhir: ehr.fhirApi.fhir,
      clock,
      logger,
      runnerId: workerId,
    },
  );

  const runDeps = {
    store,
    artifacts,
    clock,
    logger,
    metrics,
    pipeline,
    workerId,
    leaseMs: config.worker.leaseMs,
    maxAttempts: config.worker.maxAttempts,
    retryBaseMs: config.worker.retryBaseMs,
    retryMaxMs: config.worker.retryMaxMs,
  };
  // A succeeded analysis' results go to the EHR outbox (FHIR bundle, ORU) when delivery is configured; when that
  // fails, the worker's sweeper queues them later (redelivery below).
  const run = async (id: string, signal?: AbortSignal): Promise<RunOutcome> => {
    const outcome = await runAnalysis(runDeps, id, signal);
    if (outcome.outcome === 'succeeded') await ehr.afterSucceeded(outcome.analysis);
    return outcome;
  };
  const useCases: ServiceUseCases = {
    submitOrder: (order) => submitOrder({ store, queue, clock, logger }, order),
    getAnalysis: (id) => getAnalysis({ store }, id),
    listAnalyses: (query) => listAnalyses({ store }, query),
    getArtifact: (id, name) => getArtifact({ store, artifacts }, id, name),
    readiness: () => checkReadiness({ clock, checks }, config.readiness.timeoutMs),
    runAnalysis: (id, signal) => run(id, signal),
    receiveInstances,
  };
  const ehrReader = new EhrFhirReader();
  const smartApp: SmartAppDeps | undefined =
    config.smart.clientId === undefined
      ? undefined
      : {
          client: new SmartAppClient({
            clientId: config.smart.clientId,
            scope: config.smart.scope,
            ...(config.smart.clientSecret === undefined ? {} : { clientSecret: config.smart.clientSecret }),
          }),
          sessions: new MemorySmartSessionStore(),
          reader:
            config.smart.dataSource === 'ehr'
              ? ehrReader
              : {
                  ...serviceResultsReader({
                    useCases,
                    fhir: ehr.fhirApi.fhir,
                    patientIdentifiers: (s) => ehrReader.patientIdentifiers(s),
                  }),
                  patientName: (s) => ehrReader.patientName(s),
                },
          settings: {
            allowedIssuers: (config.smart.issuers ?? '')
              .split(',')
              .map((x) => x.trim().replace(/\/+$/, ''))
              .filter((x) => x !== ''),
            ...(config.smart.standaloneIssuer === undefined
              ? {}
              : { standaloneIssuer: config.smart.standaloneIssuer }),
            ...(config.http.publicBaseUrl === undefined ? {} : { publicBaseUrl: config.http.publicBaseUrl }),
            sessionTtlMs: config.smart.sessionTtlSeconds * 1000,
            cookieSameSite: config.smart.cookieSameSite,
            cookieSecret: config.smart.cookieSecret ?? randomBytes(32),
            dataSource: config.smart.dataSource,
          },
          logger,
          audit: ehr.fhirApi.audit,
        };
  const extraRoutes: RouteTable[] = [
    ...(overrides.routes ?? []),
    bulkExportRoutes({ api: bulkExport, audit: ehr.fhirApi.audit }),
    smartAppRoutes(smartApp),
  ];
  const appOptions = {
    logger,
    version: VERSION,
    registry,
    jsonLimitBytes: config.http.jsonLimitBytes,
    stowMaxBytes: config.http.stowMaxBytes,
    validateResponses: config.http.validateResponses,
    ...(apiAuthenticator === undefined ? {} : { authenticator: apiAuthenticator }),
    fhir: ehr.fhirApi,
    routes: extraRoutes,
  };
  const app = createApp(useCases, appOptions);
  const opsApp = createApp(useCases, { ...appOptions, opsOnly: true });

  let worker: Worker | undefined;
  let closing: Promise<void> | undefined;
  return {
    config,
    logger,
    registry,
    store,
    queue,
    artifacts,
    useCases,
    app,
    opsApp,
    workerId,
    ehr,
    bulkExport,
    startWorker() {
      if (worker !== undefined) return worker;
      worker = startWorker({
        store,
        queue,
        clock,
        logger,
        run,
        concurrency: config.worker.concurrency,
        sweepIntervalMs: config.worker.sweepIntervalMs,
        staleQueuedMs: config.worker.staleQueuedMs,
        // results whose queueing after the run failed (outbox down) are queued by the sweeper
        ...(ehr.resultDelivery.channels.length === 0
          ? {}
          : {
              redelivery: {
                channels: ehr.resultDelivery.channels,
                afterMs: config.ehr.redeliverAfterMs,
                lookbackMs: config.ehr.redeliverLookbackHours * 3_600_000,
                queue: (a) => ehr.queueResults(a),
              },
            }),
      });
      ehr.startDispatcher();
      logger.info({ workerId, concurrency: config.worker.concurrency }, 'worker started');
      return worker;
    },
    close() {
      closing ??= (async () => {
        if (worker !== undefined) await worker.stop(config.worker.shutdownGraceMs);
        await bulkExport.close();
        await ehr.close();
        if (overrides.queue === undefined) await queue.close();
        if (overrides.store === undefined) await store.close();
        if (engine !== undefined && overrides.engine === undefined) await (await engine).close();
      })();
      return closing;
    },
  };
}
