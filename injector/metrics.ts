// The injector's Prometheus metrics. These names and labels are a contract with the Helm chart's dashboard and alerts.
import { Counter, Histogram, type Registry } from 'prom-client';
import { createRegistry } from '../common/metrics.js';

export function createInjectorMetrics(registry: Registry = createRegistry('injector')) {
  return {
    registry,
    /** outcome: "success" or the Mount error code (BadParameters, KeyNotGranted, ...). */
    mounts: new Counter({
      name: 'nosana_secrets_injector_mounts_total', help: 'Mount calls by outcome (success or the error code)',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
    mountDuration: new Histogram({
      name: 'nosana_secrets_injector_mount_duration_seconds', help: 'Time to answer a Mount call',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
    }),
    /** call: login, job_token, read; outcome: success, unreachable, forbidden, not_found, error. */
    serverCalls: new Counter({
      name: 'nosana_secrets_injector_server_calls_total', help: 'Calls to the secrets server by call and outcome',
      labelNames: ['call', 'outcome'] as const, registers: [registry],
    }),
    tokenCache: new Counter({
      name: 'nosana_secrets_injector_token_cache_total', help: 'Job token lookups answered from the cache (hit) or by the server (miss)',
      labelNames: ['result'] as const, registers: [registry],
    }),
  };
}

export type InjectorMetrics = ReturnType<typeof createInjectorMetrics>;
