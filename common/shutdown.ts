// Graceful shutdown on SIGTERM (Kubernetes) and SIGINT (Ctrl-C), the same for every long-running part: close once,
// exit 0 when closed, 1 when closing failed.
import type { Logger } from './log.js';

export function closeOnSignals(log: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    close().then(() => process.exit(0), (error: Error) => {
      log.error({ err: error.message }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
