// The operator's Prometheus metrics. These names and labels are a contract with the Helm chart's dashboard and
// alerts: keep them. Labels carry results and reasons, never a key, a job or a value.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createRegistry } from '../common/metrics.js';

export type ReconcileResult = 'success' | 'error';

export interface OperatorMetrics {
  registry: Registry;
  reconciles: Counter<'result'>;
  reconcileErrors: Counter<'reason'>;
  reconcileDuration: Histogram<'result'>;
  queueDepth: Gauge;
  bindings: Gauge<'condition' | 'reason'>;
  leader: Gauge;
}

export interface MetricSources {
  queueDepth: () => number;
  /** The Ready condition status and reason of every binding in the cache. */
  bindingConditions: () => Iterable<{ status: string; reason: string }>;
}

export function createOperatorMetrics(sources: MetricSources): OperatorMetrics {
  const registry = createRegistry('operator');
  const registers = [registry];
  return {
    registry,
    reconciles: new Counter({
      name: 'nosana_secrets_operator_reconcile_total', help: 'Reconciles of NosanaSecretBindings, by result',
      labelNames: ['result'], registers,
    }),
    reconcileErrors: new Counter({
      name: 'nosana_secrets_operator_reconcile_errors_total',
      help: 'Reconciles that left a binding not Ready, by the Ready condition reason', labelNames: ['reason'], registers,
    }),
    reconcileDuration: new Histogram({
      name: 'nosana_secrets_operator_reconcile_duration_seconds', help: 'Time per reconcile, by result',
      labelNames: ['result'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    }),
    queueDepth: new Gauge({
      name: 'nosana_secrets_operator_queue_depth', help: 'Bindings waiting in the work queue to be reconciled',
      registers, collect() { this.set(sources.queueDepth()); },
    }),
    bindings: new Gauge({
      name: 'nosana_secrets_operator_bindings',
      help: 'NosanaSecretBindings by Ready condition status (True, False, Unknown) and reason',
      labelNames: ['condition', 'reason'], registers,
      collect() {
        this.reset();
        const counts = new Map<string, { condition: string; reason: string; count: number }>();
        for (const { status, reason } of sources.bindingConditions()) {
          const id = `${status}/${reason}`;
          const entry = counts.get(id) ?? { condition: status, reason, count: 0 };
          entry.count += 1;
          counts.set(id, entry);
        }
        for (const { condition, reason, count } of counts.values()) this.set({ condition, reason }, count);
      },
    }),
    leader: new Gauge({
      name: 'nosana_secrets_operator_leader', help: '1 while this replica is the leader and acts, else 0', registers,
    }),
  };
}
