#!/usr/bin/env node
// nosana-secrets: one CLI for the server, the owner's client commands, and the cluster parts.
import { parseArgs } from 'node:util';
import { runClientCommand } from './client-commands.js';
import { CLIENT_COMMANDS, CliError, command as named, commandHelp, usage } from './usage.js';

/** `--help` or `-h` among a command's options (not after `--`, where it would be a value). */
function asksForHelp(args: string[]): boolean {
  const options = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  return options.includes('--help') || options.includes('-h');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const help = rest[0] === undefined ? undefined : commandHelp(rest[0]);
    process.stdout.write(help ?? usage());
    return;
  }
  const help = commandHelp(command);
  if (help !== undefined && asksForHelp(rest)) {
    process.stdout.write(help);
    return;
  }
  switch (command) {
    case 'server': {
      const { values } = parseArgs({ args: rest, options: { host: { type: 'string' }, port: { type: 'string' } }, allowPositionals: false });
      const { runServer } = await import('./run-server.js');
      await runServer(values);
      return;
    }
    case 'rotate-keys': {
      parseArgs({ args: rest, options: {}, allowPositionals: false });
      const { rotateKeys } = await import('./rotate-keys.js');
      await rotateKeys();
      return;
    }
    case 'create-keys-secret': {
      const { createKeysSecret } = await import('./create-keys-secret.js');
      await createKeysSecret(rest);
      return;
    }
    case 'operator': {
      const { runOperator } = await import('../operator/cli.js');
      await runOperator(rest);
      return;
    }
    case 'injector': {
      const { runInjector } = await import('../injector/run.js');
      await runInjector(rest);
      return;
    }
    default:
      if (CLIENT_COMMANDS.includes(command)) {
        await runClientCommand(command, rest);
        return;
      }
      throw new CliError(`unknown command "${command}"`, `run ${named('help')} to see the commands`, 2);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof CliError) {
    process.stderr.write(`error: ${error.message}\n${error.fix ? `fix: ${error.fix}\n` : ''}`);
    process.exit(error.exitCode);
  }
  // node:util parseArgs errors (an unknown option, a missing value) are the user's to fix: say where the flags are.
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
    const command = process.argv[2] ?? '';
    process.stderr.write(`error: ${(error as Error).message}\nfix: run ${named(`${command} --help`)} to see its options\n`);
    process.exit(2);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
});
