// Every object the chart renders is sent to a real kube-apiserver as a server-side dry run with strict field
// validation: a wrong field, type or name that helm lets through is refused here, as it would be at install time.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_FEATURES, CHART_DIR, helm, parseManifests, render, type KubeObject } from './helm.js';
import { apply, describeError, establishCrds, kubeConfig, strictClient, waitUntil, type Cluster } from './kube.js';

/** Dry-runs every object; returns what the API server refused, one line each. */
async function refusals(client: Cluster, objects: KubeObject[]): Promise<string[]> {
  const refused: string[] = [];
  for (const object of objects) {
    try {
      await apply(client, object as KubernetesObject, true);
    } catch (error) {
      refused.push(`${object.kind}/${object.metadata.name}: ${describeError(error)}`);
    }
  }
  return refused;
}

describe('the rendered chart on a real kube-apiserver', () => {
  const suffix = randomBytes(3).toString('hex');
  const namespace = `chart-test-${suffix}`;
  const monitoringNamespace = `chart-monitoring-${suffix}`;
  let client: Cluster;

  beforeAll(async () => {
    client = strictClient(kubeConfig());
    for (const name of [namespace, monitoringNamespace]) {
      await apply(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, false);
    }
    // The Prometheus Operator's kinds must exist for its objects to be checked; the fixture says what it keeps.
    const monitoringCrds = parseManifests(readFileSync(join(import.meta.dirname, 'fixtures/monitoring.coreos.com-minimal-crds.yaml'), 'utf8'));
    await establishCrds(client, monitoringCrds as KubernetesObject[]);
    // Discovery can lag behind Established; a first dry run that passes shows the kind is served.
    await waitUntil('monitoring.coreos.com/v1 to be served', async () => {
      await apply(client, {
        apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'probe', namespace }, spec: { groups: [] },
      } as KubernetesObject, true);
      return true;
    });
  });

  afterAll(async () => {
    for (const name of [namespace, monitoringNamespace]) {
      await client?.objects.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }).catch(() => undefined);
    }
  });

  it('accepts every object rendered with the default values, CRDs included', async () => {
    const objects = await render({}, { namespace, includeCrds: true });
    expect(objects.some((o) => o.kind === 'CustomResourceDefinition')).toBe(true);
    expect(await refusals(client, objects)).toEqual([]);
  });

  it('accepts every object rendered with every optional feature on', async () => {
    const values = { ...ALL_FEATURES, grafanaDashboard: { ...ALL_FEATURES.grafanaDashboard, namespace: monitoringNamespace } };
    const objects = await render(values, { namespace });
    expect(objects.map((o) => o.kind)).toEqual(expect.arrayContaining(['ServiceMonitor', 'PrometheusRule', 'ConfigMap']));
    expect(await refusals(client, objects)).toEqual([]);
  });

  it('accepts the objects rendered with HTTPS from cert-manager, a metrics port and NetworkPolicies for listed namespaces', async () => {
    const certManagerCrds = parseManifests(readFileSync(join(import.meta.dirname, 'fixtures/cert-manager.io-minimal-crds.yaml'), 'utf8'));
    await establishCrds(client, certManagerCrds as KubernetesObject[]);
    const values = {
      server: { metricsPort: 9090, tls: { enabled: true, certManager: { enabled: true, issuerRef: { name: 'cluster-ca', kind: 'ClusterIssuer' } } } },
      networkPolicy: { allowedNamespaces: ['ci'], extraFrom: [{ ipBlock: { cidr: '10.1.0.0/16' } }] },
      metrics: { serviceMonitor: { enabled: true } },
    };
    const objects = await render(values, { namespace });
    expect(objects.map((o) => o.kind)).toEqual(expect.arrayContaining(['Certificate', 'NetworkPolicy', 'ServiceMonitor']));
    await waitUntil('cert-manager.io/v1 to be served', async () => (await refusals(client, objects.filter((o) => o.kind === 'Certificate'))).length === 0);
    expect(await refusals(client, objects)).toEqual([]);
    // and a NetworkPolicy the API server finds wrong is refused, so the check above can fail
    const policy = structuredClone(objects.find((o) => o.kind === 'NetworkPolicy')!);
    (policy.spec as { ingress: { ports: { port: unknown }[] }[] }).ingress[0]!.ports[0]!.port = 'not a port name!';
    expect((await refusals(client, [policy]))[0]).toMatch(/port/);
  });

  it('keeps the generated JWT secret and encryption keys across helm upgrade and uninstall', async () => {
    const release = `keys-${suffix}`;
    const keys = async () => {
      const secret = await client.objects.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${release}-nosana-secrets-keys`, namespace } }) as
        { data?: Record<string, string> };
      return secret.data;
    };
    const helmIn = (...args: string[]) => helm([...args, '--namespace', namespace]);
    const installed = await helmIn('install', release, CHART_DIR);
    expect(installed.code, installed.stderr).toBe(0);
    const first = await keys();
    expect(Object.keys(first ?? {}).sort()).toEqual(['ENCRYPTION_KEYS', 'JWT_SECRET']);

    const upgraded = await helmIn('upgrade', release, CHART_DIR, '--set', 'server.logLevel=debug');
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(await keys(), 'the keys after helm upgrade').toEqual(first);

    const uninstalled = await helmIn('uninstall', release);
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    expect(await keys(), 'the keys after helm uninstall').toEqual(first);
    // and a new install over the kept Secret reads it instead of generating new keys
    const reinstalled = await helmIn('install', release, CHART_DIR);
    expect(reinstalled.code, reinstalled.stderr).toBe(0);
    expect(await keys(), 'the keys after a new install').toEqual(first);
    await helmIn('uninstall', release);
  });

  it('refuses an object the API server finds wrong, so the checks above can fail', async () => {
    const objects = await render({}, { namespace });
    const service = structuredClone(objects.find((o) => o.kind === 'Service')!);
    (service.spec as Record<string, unknown>).portz = [];
    const [refused] = await refusals(client, [service]);
    expect(refused).toMatch(/portz/);
  });
});
