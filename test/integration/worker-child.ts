/**
 * Child process for bullmq-workers.test.ts: a real worker (startService, role from the environment) whose
 * pipeline appends `start|end <analysisId> <pid> <ms>` lines to RUN_LOG and takes RUN_MS milliseconds.
 * Prints {"url": …} when listening.
 */
import { appendFileSync } from 'node:fs';
import { loadConfig } from '../../config.ts';
import { startService, stopOnSignals } from '../../main.ts';
import { createLogger } from '../../adapters/logging/logger.ts';

const runLog = process.env.RUN_LOG ?? '';
const runMs = Number(process.env.RUN_MS ?? '200');
const config = loadConfig();
const logger = createLogger({ level: 'warn' });
const service = await startService(config, {
  logger,
  pipeline: async (ctx) => {
    appendFileSync(runLog, `start ${ctx.analysis.id} ${process.pid} ${Date.now()}\n`);
    for (let i = 1; i <= 4; i++) {
      await new Promise((r) => setTimeout(r, runMs / 4));
      await ctx.progress(i / 5, 'work');
    }
    appendFileSync(runLog, `end ${ctx.analysis.id} ${process.pid} ${Date.now()}\n`);
    return {};
  },
});
stopOnSignals(service, logger);
process.stdout.write(JSON.stringify({ url: service.url }) + '\n');
