/**
 * Stand-alone KServe v2 inference node (what `mslesion serve --role inference` starts, without the rest of the
 * service): `node adapters/onnx/remote/inference-server.main.ts --models DIR [--models DIR2] [--host 127.0.0.1]
 * [--port 8000] [--threads N] [--provider cpu|cuda] [--cuda-fallback cpu|fail] [--max-in-flight 4]`.
 * Prints {"url": …} on stdout once listening; logs JSON lines on stderr; stops on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { openModelRegistry } from '../../models/fs-registry.ts';
import { OnnxInferenceEngine } from '../onnx-engine.ts';
import { startInferenceServer } from './kserve-server.ts';

const { values } = parseArgs({
  options: {
    models: { type: 'string', multiple: true, default: ['models'] },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    threads: { type: 'string' },
    provider: { type: 'string', default: 'cpu' },
    'cuda-fallback': { type: 'string', default: 'fail' },
    'max-in-flight': { type: 'string', default: '4' },
  },
});
const log =
  (level: string) =>
  (o: object, msg?: string): void => {
    process.stderr.write(JSON.stringify({ level, time: Date.now(), ...o, msg }) + '\n');
  };
const logger = { info: log('info'), warn: log('warn'), error: log('error') };
if (values.provider !== 'cpu' && values.provider !== 'cuda') throw new Error('--provider is cpu or cuda');
const fallback = values['cuda-fallback'];
if (fallback !== 'cpu' && fallback !== 'fail') throw new Error('--cuda-fallback is cpu or fail');
const models = await openModelRegistry({ roots: values.models });
for (const r of models.refused) logger.error({ modelId: r.modelId, code: r.error.code }, r.error.message);
const engine = new OnnxInferenceEngine({
  provider: values.provider,
  cudaFallback: fallback,
  ...(values.threads === undefined ? {} : { intraOpThreads: Number(values.threads) }),
  logger,
});
const server = await startInferenceServer({
  host: values.host,
  port: Number(values.port),
  models,
  engine,
  logger,
  maxInFlight: Number(values['max-in-flight']),
});
process.stdout.write(JSON.stringify({ url: server.url }) + '\n');
const stop = (): void => {
  server
    .close()
    .then(() => engine.close())
    .then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: String(e) }, 'shutdown failed');
        process.exit(1);
      },
    );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
