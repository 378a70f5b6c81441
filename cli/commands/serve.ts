/**
 * `mslesion serve [--role api|worker|inference|all] [--port N] [--host H] [--config file] [--print-config]`:
 * runs the service (see main.ts for the roles). Settings come from the config file and MSLESION_* variables;
 * flags win. Stops gracefully on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { describeConfig, loadConfig, ROLES, type Config, type Role } from '../../config.ts';
import { startService, stopOnSignals } from '../../main.ts';
import { createLogger } from '../../adapters/logging/logger.ts';

const USAGE = `usage: mslesion serve [--role api|worker|inference|all] [--port N] [--host H] [--config file] [--print-config]`;

/** The part of the CLI's CommandIo this command uses (not imported: the command table imports this module). */
interface Io {
  out(line: string): void;
  err(line: string): void;
}

export async function run(argv: string[], io: Io): Promise<number> {
  let values: {
    role?: string;
    port?: string;
    host?: string;
    config?: string;
    'print-config'?: boolean;
    help?: boolean;
  };
  try {
    values = parseArgs({
      args: argv,
      options: {
        role: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        config: { type: 'string' },
        'print-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    io.err(`mslesion serve: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    io.out(USAGE);
    return 0;
  }
  if (values.role !== undefined && !ROLES.includes(values.role as Role)) {
    io.err(`mslesion serve: --role must be one of ${ROLES.join(', ')}\n${USAGE}`);
    return 2;
  }
  const overrides: Record<string, string> = {};
  if (values.role !== undefined) overrides.role = values.role;
  if (values.host !== undefined) overrides['http.host'] = values.host;
  if (values.port !== undefined) {
    overrides['http.port'] = values.port;
    if (values.role === 'inference') overrides['inference.port'] = values.port;
  }
  let config: Config;
  try {
    config = loadConfig({ ...(values.config === undefined ? {} : { file: values.config }), overrides });
  } catch (e) {
    const problems = (e as { details?: { problems?: string[] } }).details?.problems ?? [String(e)];
    io.err(`mslesion serve: CONFIG.INVALID:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  if (values['print-config'] === true) {
    io.out(JSON.stringify(describeConfig(config), null, 2));
    return 0;
  }
  const logger = createLogger({ level: config.log.level, base: { role: config.role } });
  const service = await startService(config, { logger });
  io.err(`mslesion serve: ${service.role} listening on ${service.url}`);
  stopOnSignals(service, logger);
  return new Promise<number>(() => {
    // runs until a signal stops the service (stopOnSignals sets the exit code)
  });
}
