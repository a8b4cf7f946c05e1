// The operator's entry: settings, Kubernetes clients, metrics and probes, and leader election that starts a
// controller while this replica leads and stops it when it no longer does.
import type { Server } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Env } from '../common/config.js';
import { createLogger, type Logger } from '../common/log.js';
import { startProbeServer } from '../common/metrics.js';
import { AllowedEndpoints } from '../common/endpoints.js';
import { loadOperatorConfig, OPERATOR_ENDPOINTS_FIX, type OperatorConfig } from './config.js';
import { Controller } from './controller.js';
import { EventRecorder } from './events.js';
import { createKubeClients, loadKubeConfig } from './kube/clients.js';
import { LeaderElector } from './leader-election.js';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.js';
import { NodeSessions } from '../common/node-sessions.js';

export interface RunningOperator {
  config: OperatorConfig;
  metrics: OperatorMetrics;
  /** The /metrics and probe listener's port. */
  metricsPort: number;
  isLeader(): boolean;
  close(): Promise<void>;
}

export interface OperatorOverrides {
  kubeConfig?: KubeConfig;
  log?: Logger;
  /** Retry backoff of failed reconciles (tests shorten it). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export async function startOperator(env: Env = process.env, overrides: OperatorOverrides = {}): Promise<RunningOperator> {
  const config = loadOperatorConfig(env);
  const log = (overrides.log ?? createLogger('operator')).child({ identity: config.identity });
  let controller: Controller | undefined;
  let leading = !config.leaderElection;
  const metrics = createOperatorMetrics({
    queueDepth: () => controller?.queue.depth ?? 0,
    bindingConditions: () => controller?.conditions() ?? [],
  });
  const kube = createKubeClients(overrides.kubeConfig ?? loadKubeConfig(), (verb, resource) => metrics.kubeRequests.inc({ verb, resource }));
  const sessions = new NodeSessions({
    caFile: config.caFile, observer: { call: (call, outcome) => metrics.serverCalls.inc({ call, outcome }) },
  });
  const endpoints = new AllowedEndpoints(config.allowedEndpoints, OPERATOR_ENDPOINTS_FIX);
  const events = new EventRecorder(kube.events, config.identity, log);

  const startController = async () => {
    controller = new Controller({
      kube, namespace: config.namespace, workers: config.workers, endpoints,
      sessions, events, metrics, log, backoffBaseMs: overrides.backoffBaseMs, backoffMaxMs: overrides.backoffMaxMs,
    });
    metrics.leader.set(1);
    await controller.start();
    log.info({ namespace: config.namespace ?? 'all', workers: config.workers }, 'operator acting');
  };
  const stopController = async () => {
    metrics.leader.set(0);
    const stopping = controller;
    controller = undefined;
    await stopping?.stop();
  };

  const elector = config.leaderElection
    ? new LeaderElector({
      api: kube.coordination, namespace: config.leaseNamespace, name: config.leaseName, identity: config.identity,
      leaseDurationMs: config.leaseDurationMs, renewDeadlineMs: config.renewDeadlineMs, retryPeriodMs: config.retryPeriodMs,
      log, onStartedLeading: startController, onStoppedLeading: stopController,
    })
    : undefined;

  const probes: Server = await startProbeServer({
    port: config.metricsPort, host: config.metricsHost, registry: metrics.registry,
    // Every replica is ready: a standby is healthy, it just waits for the lease.
    ready: () => true,
  });
  const address = probes.address();
  const metricsPort = typeof address === 'object' && address ? address.port : config.metricsPort;
  metrics.leader.set(0);
  if (elector) elector.start();
  else await startController();
  log.info({ metricsPort, leaderElection: config.leaderElection, lease: `${config.leaseNamespace}/${config.leaseName}` }, 'operator started');

  return {
    config, metrics, metricsPort,
    isLeader: () => (elector ? elector.isLeader : leading),
    async close() {
      leading = false;
      if (elector) await elector.stop();
      else await stopController();
      await new Promise<void>((resolve) => probes.close(() => resolve()));
      kube.close();
    },
  };
}
