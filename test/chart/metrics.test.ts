// A dashboard panel or an alert that reads a metric nobody exports shows nothing and never fires. These tests start
// the real processes, scrape their /metrics, and check every metric name the chart's dashboard and rules use.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { loadInjectorConfig } from '../../injector/config.js';
import { startInjector } from '../../injector/main.js';
import { startOperator } from '../../operator/main.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { ALL_FEATURES, CHART_DIR, REPO_DIR, find, parseManifests, render } from './helm.js';
import { establishCrds, kubeConfig, strictClient } from './kube.js';
import { dashboardExpressions, exportedNames, metricNamesIn } from './promql.js';

/** Series Prometheus makes itself (for every target, and for alerts); no process exports them. */
const PROMETHEUS_SERIES = new Set(['up', 'ALERTS']);

type Part = 'server' | 'operator' | 'injector' | 'csi-driver';

/** Which process must export a name: the operator's and injector's own metrics carry their part in the name. */
function partOf(name: string): Part {
  if (!name.startsWith('nosana_secrets_')) return 'csi-driver';
  if (name.startsWith('nosana_secrets_operator_')) return 'operator';
  if (name.startsWith('nosana_secrets_injector_')) return 'injector';
  return 'server';
}

async function alertExpressions(): Promise<{ where: string; expr: string }[]> {
  const rule = find(await render(ALL_FEATURES), 'PrometheusRule');
  const groups = (rule.spec as { groups: { rules: { alert: string; expr: string }[] }[] }).groups;
  return groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
}

/** Metric name -> where it is used, for the names one part must export. */
async function namesUsedBy(part: Part): Promise<Map<string, string[]>> {
  const used = new Map<string, string[]>();
  for (const { where, expr } of [...dashboardExpressions(), ...(await alertExpressions())]) {
    for (const name of metricNamesIn(expr)) {
      if (PROMETHEUS_SERIES.has(name) || partOf(name) !== part) continue;
      used.set(name, [...(used.get(name) ?? []), where]);
    }
  }
  return used;
}

function missing(used: Map<string, string[]>, exported: Set<string>): string[] {
  return [...used].filter(([name]) => !exported.has(name)).map(([name, where]) => `${name} (used by ${where.join(', ')})`);
}

async function scrape(url: string): Promise<Set<string>> {
  const response = await fetch(url);
  expect(response.status, `GET ${url}`).toBe(200);
  return exportedNames(await response.text());
}

describe('the dashboard and the alert rules', () => {
  let server: RunningServer;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ns-chart-metrics-'));
    server = await startServer(
      {
        PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: `sqlite://${stateDir}/db.sqlite`, SECRETS_STATE_DIR: stateDir,
        // The Nosana grant source's metrics exist only with that source on; nothing is called at start-up (loopback).
        GRANT_SOURCES: 'api,nosana', NOSANA_RPC_URL: 'http://127.0.0.1:9', IPFS_GATEWAY: 'http://127.0.0.1:9',
      },
      createLogger('server', 'warn'),
    );
  });
  afterAll(async () => {
    await server?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('read metric names from every panel, variable and alert', async () => {
    // Guards the checks below against passing because the name extraction found nothing.
    const all = new Set([...dashboardExpressions(), ...(await alertExpressions())].flatMap(({ expr }) => [...metricNamesIn(expr)]));
    expect([...all]).toEqual(expect.arrayContaining([
      'nosana_secrets_http_requests_total', 'nosana_secrets_http_request_duration_seconds_bucket', 'nosana_secrets_logins_total',
      'nosana_secrets_injector_mounts_total', 'nosana_secrets_injector_mount_duration_seconds_bucket',
      'nosana_secrets_operator_reconcile_total', 'nosana_secrets_operator_reconcile_errors_total', 'nosana_secrets_operator_bindings',
      'nosana_secrets_process_resident_memory_bytes', 'up',
    ]));
    expect(metricNamesIn('sum by (le) (rate(a_bucket{x="y(z)"}[5m])) / on (pod) group_left b or absent(c{d=~"e|f"})'))
      .toEqual(new Set(['a_bucket', 'b', 'c']));
    expect(metricNamesIn('label_values(d_total{job="x"}, namespace)')).toEqual(new Set(['d_total']));
  });

  it('use only metrics the server exports at /metrics', async () => {
    const used = await namesUsedBy('server');
    expect(used.size).toBeGreaterThan(5);
    expect(missing(used, await scrape(`${server.url}/metrics`))).toEqual([]);
  });

  it('use only metrics the operator exports at /metrics', async () => {
    const used = await namesUsedBy('operator');
    expect(used.size).toBeGreaterThan(3);
    expect(missing(used, await scrape(await operatorMetricsUrl()))).toEqual([]);
  });

  it('use only metrics the injector exports at /metrics', async () => {
    const used = await namesUsedBy('injector');
    expect(used.size).toBeGreaterThan(1);
    expect(missing(used, await scrape(await injectorMetricsUrl()))).toEqual([]);
  });
});

// The operator and the injector are started through their own entry points, as `nosana-secrets operator|injector`
// does, so the names checked are the ones a deployed pod serves.
let stopOperator: (() => Promise<void>) | undefined;
let stopInjector: (() => Promise<void>) | undefined;
afterAll(async () => {
  await stopOperator?.();
  await stopInjector?.();
});

async function operatorMetricsUrl(): Promise<string> {
  const kc = kubeConfig();
  // The operator's informers list NosanaSecretBindings: their CRD must be served (the same file helm installs).
  const crds = parseManifests(readFileSync(join(REPO_DIR, 'crds/nosanasecretbindings.yaml'), 'utf8'));
  await establishCrds(strictClient(kc), crds as KubernetesObject[]);
  const operator = await startOperator({
    METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', LEADER_ELECT: 'false',
    // A namespace of its own, with no bindings: only the names of its metrics are wanted here.
    WATCH_NAMESPACE: `chart-metrics-${randomBytes(3).toString('hex')}`,
    NOSANA_SECRETS_ENDPOINT: 'http://127.0.0.1:4124',
  }, { kubeConfig: kc, log: createLogger('operator', 'warn') });
  stopOperator = () => operator.close();
  return `http://127.0.0.1:${operator.metricsPort}/metrics`;
}

async function injectorMetricsUrl(): Promise<string> {
  const socketDir = mkdtempSync(join(tmpdir(), 'ns-chart-injector-'));
  const config = loadInjectorConfig({ NOSANA_INJECTOR_SOCKET_DIR: socketDir, METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', NOSANA_INJECTOR_ENDPOINTS: 'http://127.0.0.1:4124' });
  const injector = await startInjector(config, createLogger('injector', 'warn'), kubeConfig());
  stopInjector = async () => {
    await injector.close();
    rmSync(socketDir, { recursive: true, force: true });
  };
  return `http://127.0.0.1:${injector.metricsPort}/metrics`;
}
