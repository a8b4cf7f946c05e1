// Every object the chart renders is sent to a real kube-apiserver as a server-side dry run with strict field
// validation: a wrong field, type or name that helm lets through is refused here, as it would be at install time.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyring } from '../../server/encryption.js';
import { ALL_FEATURES, CHART_DIR, REPO_DIR, RELEASE, helm, parseManifests, render, type KubeObject } from './helm.js';
import { apply, describeError, establishCrds, kubeConfig, strictClient, waitUntil, type Cluster } from './kube.js';

const run = promisify(execFile);

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

  /** The data of the keys Secret of `release`, or undefined when there is none. */
  const keysOf = async (release: string) => {
    try {
      const secret = await client.objects.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${release}-nosana-secrets-keys`, namespace } }) as
        { data?: Record<string, string> };
      return secret.data;
    } catch {
      return undefined;
    }
  };

  it('keeps the first keys when two renders of helm template are applied in turn, as Argo CD and Flux do', async () => {
    const first = await render({}, { namespace });
    const second = await render({}, { namespace });

    // Each render is applied as a whole; its hook Job (a plain Job to kubectl and a PreSync hook to Argo CD) runs.
    const namespaced = (objects: KubeObject[]) => objects.filter((o) => !o.kind.startsWith('Cluster'));
    for (const object of namespaced(first)) await apply(client, object as KubernetesObject, false);
    const firstRuns = await runJobs(first);
    const keys = await keysOf(RELEASE);
    expect(Object.keys(keys ?? {}).sort(), 'the keys after the first render').toEqual(['ENCRYPTION_KEYS', 'JWT_SECRET']);
    const keyring = parseKeyring(Buffer.from(keys!.ENCRYPTION_KEYS!, 'base64').toString('utf8'), 'the keys Secret');
    expect(keyring).toHaveLength(1);
    expect(keyring[0]!.key).toHaveLength(32);
    expect(Buffer.from(keys!.JWT_SECRET!, 'base64').length).toBeGreaterThanOrEqual(32);

    for (const object of namespaced(second)) await apply(client, object as KubernetesObject, false);
    const secondRuns = await runJobs(second);
    expect(await keysOf(RELEASE), 'the keys after the second render').toEqual(keys);
    expect([...firstRuns, ...secondRuns], 'the keys are generated once').toEqual([
      `created Secret ${namespace}/${RELEASE}-nosana-secrets-keys\n`,
      `Secret ${namespace}/${RELEASE}-nosana-secrets-keys exists: left as it is\n`,
    ]);
    expect(second, 'a render is the same every time').toEqual(first);
    expect(first.filter((o) => o.kind === 'Secret' && o.metadata.name.endsWith('-keys')), 'no keys in a render').toEqual([]);
  });

  it('keeps the keys across helm install, upgrade, uninstall and a new install', async () => {
    const release = `keys-${suffix}`;
    const helmIn = (...args: string[]) => helm([...args, '--namespace', namespace]);
    // No kubelet here: helm would wait for the hook Job forever, so helm skips hooks and the test runs them.
    const hooks = async () => parseManifests((await helmIn('get', 'hooks', release)).stdout);
    const installed = await helmIn('install', release, CHART_DIR, '--no-hooks');
    expect(installed.code, installed.stderr).toBe(0);
    await runJobs(await hooks());
    const first = await keysOf(release);
    expect(Object.keys(first ?? {}).sort()).toEqual(['ENCRYPTION_KEYS', 'JWT_SECRET']);

    const upgraded = await helmIn('upgrade', release, CHART_DIR, '--no-hooks', '--set', 'server.logLevel=debug');
    expect(upgraded.code, upgraded.stderr).toBe(0);
    await runJobs(await hooks());
    expect(await keysOf(release), 'the keys after helm upgrade').toEqual(first);

    const uninstalled = await helmIn('uninstall', release, '--no-hooks');
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    expect(await keysOf(release), 'the keys after helm uninstall').toEqual(first);
    const reinstalled = await helmIn('install', release, CHART_DIR, '--no-hooks');
    expect(reinstalled.code, reinstalled.stderr).toBe(0);
    await runJobs(await hooks());
    expect(await keysOf(release), 'the keys after a new install').toEqual(first);
    await helmIn('uninstall', release, '--no-hooks');
  }, 120_000);

  /**
   * Does what the cluster would do with each rendered Job (this API server has no kubelet): creates its
   * ServiceAccount, Role and RoleBinding as rendered, then runs the Job's container command (the built CLI) with
   * a token of that ServiceAccount, so the rights the chart gives it are the rights it runs with. Returns stdout.
   */
  async function runJobs(objects: KubeObject[]): Promise<string[]> {
    const outputs: string[] = [];
    for (const job of objects.filter((o) => o.kind === 'Job')) {
      const spec = (job.spec as { template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } }).template.spec;
      for (const kind of ['ServiceAccount', 'Role', 'RoleBinding']) {
        for (const object of objects.filter((o) => o.kind === kind && o.metadata.name === spec.serviceAccountName)) {
          await apply(client, object as KubernetesObject, false);
        }
      }
      outputs.push(await runAs(spec.serviceAccountName, spec.containers[0]!.args));
    }
    return outputs;
  }

  async function runAs(serviceAccount: string, args: string[]): Promise<string> {
    const admin = kubeConfig();
    const core = admin.makeApiClient(CoreV1Api);
    const { status } = await core.createNamespacedServiceAccountToken({
      name: serviceAccount, namespace, body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const cluster = admin.getCurrentCluster()!;
    const asAccount = new KubeConfig();
    asAccount.loadFromOptions({
      clusters: [cluster], users: [{ name: serviceAccount, token: status!.token }],
      contexts: [{ name: serviceAccount, cluster: cluster.name, user: serviceAccount }], currentContext: serviceAccount,
    });
    const file = join(mkdtempSync(join(tmpdir(), 'ns-chart-sa-')), 'kubeconfig');
    writeFileSync(file, asAccount.exportConfig(), { mode: 0o600 });
    const { stdout } = await run(process.execPath, [resolve(REPO_DIR, 'dist/cli/main.js'), ...args], {
      env: { ...process.env, KUBECONFIG: file, POD_NAMESPACE: namespace, LOG_LEVEL: 'warn' },
    });
    return stdout;
  }

  it('refuses an object the API server finds wrong, so the checks above can fail', async () => {
    const objects = await render({}, { namespace });
    const service = structuredClone(objects.find((o) => o.kind === 'Service')!);
    (service.spec as Record<string, unknown>).portz = [];
    const [refused] = await refusals(client, [service]);
    expect(refused).toMatch(/portz/);
  });
});
