#!/usr/bin/env node
// nosana-secrets: one CLI for the server, the owner's client commands, and the cluster parts.
import { parseArgs } from 'node:util';
import { runClientCommand, CLIENT_COMMANDS } from './client-commands.js';
import { CliError, USAGE } from './usage.js';

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'server': {
      parseArgs({ args: rest, options: {}, allowPositionals: false });
      const { runServer } = await import('./run-server.js');
      await runServer();
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
      if ((CLIENT_COMMANDS as readonly string[]).includes(command)) {
        await runClientCommand(command, rest);
        return;
      }
      throw new CliError(`unknown command "${command}"`, 'run `nosana-secrets help` to see the commands', 2);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof CliError) {
    process.stderr.write(`error: ${error.message}\n${error.fix ? `fix: ${error.fix}\n` : ''}`);
    process.exit(error.exitCode);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
});
