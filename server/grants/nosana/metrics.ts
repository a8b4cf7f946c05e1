// How the Nosana network answers this server: latency and outcome of each RPC and gateway call, so an operator sees
// a slow or failing RPC endpoint before users report refused logins. Labels are bounded: the call's name and the
// error type, never an address or a URL.
import { Histogram, type Registry } from 'prom-client';
import { HttpError } from '../../errors.js';

export type NetworkCall = 'getAccountInfo' | 'getProgramAccounts' | 'ipfs';

export type TimedCall = <T>(call: NetworkCall, run: () => Promise<T>) => Promise<T>;

export function networkCallTimer(registry: Registry | undefined): TimedCall {
  const duration = new Histogram({
    name: 'nosana_secrets_nosana_request_duration_seconds',
    help: 'Solana RPC and IPFS gateway calls of the Nosana grant source, by call and outcome',
    labelNames: ['call', 'outcome'],
    registers: registry ? [registry] : [],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  return async (call, run) => {
    const end = duration.startTimer({ call });
    try {
      const result = await run();
      end({ outcome: 'ok' });
      return result;
    } catch (error) {
      end({ outcome: error instanceof HttpError ? error.type : 'error' });
      throw error;
    }
  };
}
