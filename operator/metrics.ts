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
  bindingCondition: Gauge<'binding_namespace' | 'binding' | 'condition' | 'status' | 'reason'>;
  leader: Gauge;
  kubeRequests: Counter<'verb' | 'resource'>;
  serverCalls: Counter<'call' | 'outcome'>;
}

export interface BindingCondition {
  namespace: string;
  name: string;
  status: string;
  reason: string;
}

export interface MetricSources {
  queueDepth: () => number;
  /** The Ready condition status and reason of every binding in the cache. */
  bindingConditions: () => Iterable<BindingCondition>;
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
    // One series per binding, as External Secrets' externalsecret_status_condition: an alert can name the one binding
    // that is not Ready, however slowly it retries. The binding's namespace is binding_namespace, because Prometheus
    // sets `namespace` to the operator's own. Only the leader exports them (a standby has no cache).
    bindingCondition: new Gauge({
      name: 'nosana_secrets_operator_binding_condition',
      help: 'The Ready condition of each NosanaSecretBinding: 1 on the series of its current status and reason',
      labelNames: ['binding_namespace', 'binding', 'condition', 'status', 'reason'], registers,
      collect() {
        this.reset();
        for (const { namespace, name, status, reason } of sources.bindingConditions()) {
          this.set({ binding_namespace: namespace, binding: name, condition: 'Ready', status, reason }, 1);
        }
      },
    }),
    // What the operator costs the API server: calls by Kubernetes verb and resource (watch events are not calls).
    kubeRequests: new Counter({
      name: 'nosana_secrets_operator_kube_requests_total', help: 'Calls to the Kubernetes API server by verb and resource',
      labelNames: ['verb', 'resource'], registers,
    }),
    serverCalls: new Counter({
      name: 'nosana_secrets_operator_server_calls_total', help: 'Calls to the secrets server by call and outcome',
      labelNames: ['call', 'outcome'], registers,
    }),
    leader: new Gauge({
      name: 'nosana_secrets_operator_leader', help: '1 while this replica is the leader and acts, else 0', registers,
    }),
  };
}
