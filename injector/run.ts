// `nosana-secrets injector`: flags onto the injector's settings, start it, and stop it cleanly on SIGTERM/SIGINT
// (the socket is removed, in-flight mounts finish).
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/log.js';
import { loadInjectorConfig } from './config.js';
import { startInjector } from './main.js';
import { closeOnSignals } from '../common/shutdown.js';
import { CliError, command } from '../cli/usage.js';

/** An error the user fixes (a flag or variable): the CLI prints it with where to look, and exits 2. */
function usageError(message: string): CliError {
  return new CliError(message, `run ${command('injector --help')} to see its flags`, 2);
}

export async function runInjector(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'socket-dir': { type: 'string' },
      'metrics-host': { type: 'string' },
      'metrics-port': { type: 'string' },
      'node-keypair': { type: 'string' },
      'ca-file': { type: 'string' },
      endpoint: { type: 'string', multiple: true },
    },
    allowPositionals: false,
  });
  let config;
  try {
    config = loadInjectorConfig(process.env, values);
  } catch (error) {
    if (error instanceof ConfigError) throw usageError(error.message);
    throw error;
  }
  const log = createLogger('injector');
  let injector;
  try {
    injector = await startInjector(config, log);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw usageError(`metrics port ${config.metricsPort} is already in use: pass --metrics-port with a free port`);
    if (code === 'EADDRNOTAVAIL') throw usageError(`metrics host ${config.metricsHost} is not an address of this machine: pass --metrics-host with one of its addresses`);
    if (code === 'EACCES' || code === 'ENOENT') {
      throw usageError(`cannot create the socket in ${config.socketDir} (${code}): create the directory, run as its owner, or pass --socket-dir`);
    }
    throw error;
  }
  const running = injector;
  closeOnSignals(log, () => running.close());
}
