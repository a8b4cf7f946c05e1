import cluster from 'node:cluster';
import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/log.js';
import { closeOnSignals } from '../common/shutdown.js';
import { startServing, startWorker } from '../server/cluster.js';
import { StorageConfigError } from '../server/storage/contract.js';
import { CliError } from './usage.js';

/** `nosana-secrets server [--host HOST] [--port PORT]`: the flags win over HOST and PORT. */
export async function runServer(flags: { host?: string; port?: string } = {}): Promise<void> {
  const log = createLogger('server');
  const env = { ...process.env, HOST: flags.host ?? process.env.HOST, PORT: flags.port ?? process.env.PORT };
  let server;
  try {
    // SERVER_WORKERS > 1: this process is the primary, and each worker runs this same command.
    server = cluster.isWorker ? await startWorker(env, log) : await startServing(env, log);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StorageConfigError) {
      throw new CliError(error.message, 'fix the environment variable or flag named above and start again');
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`port ${env.PORT ?? 4124} is already in use`, 'stop the other process, or pass --port (or set PORT) with a free port');
    if (code === 'EADDRNOTAVAIL') throw new CliError(`${env.HOST} is not an address of this machine`, 'pass --host (or set HOST) with one of its addresses, or 0.0.0.0 for all');
    throw error;
  }
  if (cluster.isPrimary) process.stderr.write(`secret manager listening on ${server.listening}: open ${server.url}\n`);
  const running = server;
  closeOnSignals(log, () => running.close());
}
