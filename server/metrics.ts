// The server's Prometheus metrics. These names are a contract: the chart's dashboard and alert rules use them, and a
// test checks that every name there is exported here.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createRegistry } from '../common/metrics.js';

export interface ServerMetrics {
  registry: Registry;
  /** The text /metrics serves: this registry's, or with several workers every worker's summed (server/cluster.ts). */
  collect: () => Promise<string>;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  logins: Counter<'scope' | 'outcome'>;
  secretReads: Counter<'scope'>;
  secretWrites: Counter<'operation'>;
  storageDuration: Histogram<'operation' | 'backend'>;
  storageUp: Gauge<'backend'>;
}

export function createServerMetrics(): ServerMetrics {
  const registry = createRegistry('server');
  const registers = [registry];
  return {
    registry,
    collect: () => registry.metrics(),
    httpRequests: new Counter({
      name: 'nosana_secrets_http_requests_total', help: 'HTTP requests by route template, method and status',
      labelNames: ['method', 'route', 'status'], registers,
    }),
    httpDuration: new Histogram({
      name: 'nosana_secrets_http_request_duration_seconds', help: 'HTTP request latency by route template',
      labelNames: ['method', 'route', 'status'], registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    }),
    logins: new Counter({
      name: 'nosana_secrets_logins_total', help: 'Login attempts by scope (owner, job) and outcome',
      labelNames: ['scope', 'outcome'], registers,
    }),
    secretReads: new Counter({
      name: 'nosana_secrets_secret_reads_total', help: 'Secret values returned, by token scope',
      labelNames: ['scope'], registers,
    }),
    secretWrites: new Counter({
      name: 'nosana_secrets_secret_writes_total', help: 'Secrets stored or deleted',
      labelNames: ['operation'], registers,
    }),
    storageDuration: new Histogram({
      name: 'nosana_secrets_storage_operation_duration_seconds', help: 'Storage operation latency',
      labelNames: ['operation', 'backend'], registers,
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    }),
    storageUp: new Gauge({
      name: 'nosana_secrets_storage_up', help: '1 when the last storage health check succeeded',
      labelNames: ['backend'], registers,
      // Across workers: 1 only when every worker reached the storage.
      aggregator: 'min',
    }),
  };
}
