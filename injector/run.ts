// `nosana-secrets injector`: flags onto the injector's settings, start it, and stop it cleanly on SIGTERM/SIGINT
// (the socket is removed, in-flight mounts finish).
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/log.js';
import { loadInjectorConfig } from './config.js';
import { startInjector } from './main.js';
import { closeOnSignals } from '../common/shutdown.js';

export class InjectorUsageError extends Error {
  override name = 'InjectorUsageError';
}

export async function runInjector(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'socket-dir': { type: 'string' },
      'metrics-port': { type: 'string' },
      'node-keypair': { type: 'string' },
      endpoint: { type: 'string', multiple: true },
    },
    allowPositionals: false,
  });
  let config;
  try {
    config = loadInjectorConfig(process.env, values);
  } catch (error) {
    if (error instanceof ConfigError) throw new InjectorUsageError(error.message);
    throw error;
  }
  const log = createLogger('injector');
  let injector;
  try {
    injector = await startInjector(config, log);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new InjectorUsageError(`metrics port ${config.metricsPort} is already in use: pass --metrics-port with a free port`);
    if (code === 'EACCES' || code === 'ENOENT') {
      throw new InjectorUsageError(`cannot create the socket in ${config.socketDir} (${code}): create the directory, run as its owner, or pass --socket-dir`);
    }
    throw error;
  }
  const running = injector;
  closeOnSignals(log, () => running.close());
}
