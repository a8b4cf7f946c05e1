import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/log.js';
import cluster from 'node:cluster';
import { startServing, startWorker } from '../server/cluster.js';
import { StorageConfigError } from '../server/storage/contract.js';
import { CliError } from './usage.js';
import { closeOnSignals } from '../common/shutdown.js';

export async function runServer(): Promise<void> {
  const log = createLogger('server');
  let server;
  try {
    // SERVER_WORKERS > 1: this process is the primary, and each worker runs this same command.
    server = cluster.isWorker ? await startWorker(process.env, log) : await startServing(process.env, log);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StorageConfigError) {
      throw new CliError(error.message, 'fix the environment variable named above and start again');
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`port ${process.env.PORT ?? 4124} is already in use`, 'stop the other process or set PORT to a free port');
    throw error;
  }
  if (cluster.isPrimary) process.stderr.write(`secret manager running: open ${server.url}\n`);
  const running = server;
  closeOnSignals(log, () => running.close());
}
