/**
 * Process entry: `node main.ts` (role from MSLESION_ROLE, default all) or `mslesion serve --role …`.
 *   api        the REST API (orders are queued; workers elsewhere run them)
 *   worker     consumes the job queue; serves only /healthz, /readyz and /metrics
 *   all        both in one process (the embedded default: SQLite + in-process queue)
 *   inference  a KServe v2 inference server for the models (GPU nodes)
 * SIGTERM/SIGINT stop gracefully: stop accepting connections, let running requests and analyses finish
 * within their grace periods (an unfinished analysis goes back to the queue), close stores and queues.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeConfig, loadConfig, type Config } from './config.ts';
import { compose, type Composition, type Overrides } from './compose.ts';
import { createLogger } from './adapters/logging/logger.ts';
import type { Logger } from './domain/ports/logger.port.ts';

export interface RunningService {
  readonly role: Config['role'];
  /** Where the HTTP listener (API, ops or inference) listens. */
  readonly url: string;
  readonly composition?: Composition;
  /** Graceful stop; resolves when everything is closed. Idempotent. */
  stop(): Promise<void>;
}

function listen(server: Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}

function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
    }, graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

async function startInference(config: Config, logger: Logger): Promise<RunningService> {
  // Loaded only for this role: the API and workers never load onnxruntime unless they segment.
  const [{ openModelRegistry }, { OnnxInferenceEngine }, { startInferenceServer }] = await Promise.all([
    import('./adapters/models/fs-registry.ts'),
    import('./adapters/onnx/onnx-engine.ts'),
    import('./adapters/onnx/remote/kserve-server.ts'),
  ]);
  const models = await openModelRegistry({ roots: [config.models.dir] });
  for (const r of models.refused) logger.error({ modelId: r.modelId, code: r.error.code }, 'model refused');
  const engine = new OnnxInferenceEngine({
    provider: config.inference.provider,
    cudaFallback: config.inference.cudaFallback,
    logger,
  });
  const server = await startInferenceServer({
    host: config.inference.host,
    port: config.inference.port,
    models,
    engine,
    logger,
    maxInFlight: config.inference.maxInFlight,
  });
  let stopping: Promise<void> | undefined;
  return {
    role: 'inference',
    url: server.url,
    stop() {
      stopping ??= server.close().then(() => engine.close());
      return stopping;
    },
  };
}

/** Starts the configured role. */
export async function startService(config: Config, overrides: Overrides = {}): Promise<RunningService> {
  const logger = overrides.logger ?? createLogger({ level: config.log.level, base: { role: config.role } });
  logger.info({ config: describeConfig(config) }, 'starting');
  if (config.role === 'inference') return startInference(config, logger);
  const c = await compose(config, { ...overrides, logger });
  if (config.role === 'worker' || config.role === 'all') c.startWorker();
  const server = createServer(config.role === 'worker' ? c.opsApp : c.app);
  server.requestTimeout = 0; // large STOW uploads; the body limit bounds them
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 5000;
  let url: string;
  try {
    url = await listen(server, config.http.host, config.http.port);
  } catch (e) {
    await c.close();
    throw e;
  }
  if (config.role === 'api' || config.role === 'all') {
    try {
      await c.ehr.startListener();
    } catch (e) {
      await Promise.all([closeServer(server, 0), c.close()]);
      throw e;
    }
  }
  logger.info({ url, workerId: c.workerId }, 'listening');
  let stopping: Promise<void> | undefined;
  return {
    role: config.role,
    url,
    composition: c,
    stop() {
      stopping ??= (async () => {
        logger.info({}, 'stopping');
        await Promise.all([closeServer(server, config.http.shutdownGraceMs), c.close()]);
        logger.info({}, 'stopped');
      })();
      return stopping;
    },
  };
}

/** Stops `service` on SIGTERM/SIGINT (a second signal exits at once). */
export function stopOnSignals(service: RunningService, logger: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    signalled = true;
    logger.info({ signal }, 'signal received');
    service.stop().then(
      () => {
        process.exitCode = 0;
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      },
      (e: unknown) => {
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    const problems = (e as { details?: { problems?: string[] } }).details?.problems ?? [String(e)];
    process.stderr.write(`mslesion: CONFIG.INVALID:\n  ${problems.join('\n  ')}\n`);
    process.exit(1);
  }
  const logger = createLogger({ level: config.log.level, base: { role: config.role } });
  try {
    const service = await startService(config, { logger });
    stopOnSignals(service, logger);
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : 'INTERNAL.ERROR';
    logger.error({ code, err: e instanceof Error ? e.message : String(e) }, 'failed to start');
    process.exit(1);
  }
}
