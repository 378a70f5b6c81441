#!/usr/bin/env node
/**
 * `mslesion <command> [options]`: thin command-line front end. Each command lives in cli/commands/<name>.ts
 * and exports `run(argv, io)`, returning the process exit code; commands parse flags and call the same use
 * cases as the HTTP API. Exit codes: 0 ok, 1 failure (a coded error is printed), 2 usage error.
 */
import { COMMANDS, type CommandIo } from './commands/index.ts';

const io: CommandIo = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  progress: (line) => {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K' + line);
    else process.stderr.write(line + '\n');
  },
};

function usage(): string {
  const names = Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(14)} ${c?.summary ?? ''}`)
    .join('\n');
  return `usage: mslesion <command> [options]\n\ncommands:\n${names}\n\nmslesion <command> --help for a command's options`;
}

async function main(argv: string[]): Promise<number> {
  const name = argv.at(0);
  const rest = argv.slice(1);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (entry === undefined) {
    io.err(`mslesion: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const mod = await entry.load();
  return mod.run(rest, io);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : 'INTERNAL.ERROR';
    io.err(`mslesion: ${code}: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
