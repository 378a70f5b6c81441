/**
 * Child process for resume.test.ts: the real service (startService: SQLite store, in-process queue, worker,
 * HTTP) configured from the environment, with a pipeline that leaves a marker file per attempt and, on the
 * first attempt, blocks mid-run so the test can SIGKILL the process there. Prints {"url": …} when listening.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../config.ts';
import { startService, stopOnSignals } from '../../main.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { sampleResult } from '../contracts/analysis-store.contract.ts';

const markers = process.env.RESUME_MARKERS ?? '';
const config = loadConfig();
const logger = createLogger({ level: 'warn' });
const service = await startService(config, {
  logger,
  pipeline: async (ctx) => {
    writeFileSync(join(markers, `attempt-${ctx.analysis.attempts}`), String(process.pid));
    await ctx.progress(0.4, 'load');
    if (ctx.analysis.attempts === 1) await new Promise(() => undefined); // killed here
    await ctx.progress(0.8, 'segment');
    return { result: sampleResult() };
  },
});
stopOnSignals(service, logger);
process.stdout.write(JSON.stringify({ url: service.url }) + '\n');
