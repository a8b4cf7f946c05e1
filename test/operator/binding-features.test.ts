// What users of External Secrets expect of a binding, against the real API server, secrets server and operator: the
// env Secret's type, labels and annotations from spec.template, a force-sync annotation that re-reads at once, an
// opt-in rollout of the workloads using the env Secret, and the last sync time in `kubectl get nsb`.
import { request } from 'node:https';
import type { V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORCE_SYNC_ANNOTATION, GROUP, PLURAL, RESTARTED_AT_ANNOTATION, VERSION } from '../../operator/api/v1alpha1.js';
import type { KubeClients } from '../../operator/kube/clients.js';
import { startPrivateApiServer, type PrivateApiServer } from './private-apiserver.js';
import {
  bindingObject, bindingSpec, createBinding, decoded, eventsFor, getSecret, grant, patchBinding, startOperatorWorld,
  stopOperatorWorld, waitFor, waitForReady, type SecretsWorld, type TestOperator,
} from './cluster.js';

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;
let apiserver: PrivateApiServer;

// An API server with storage of its own: its CRD is this worktree's, whatever other test runs apply to the shared one.
beforeAll(async () => {
  apiserver = await startPrivateApiServer({ ownStorage: true });
  ({ kube, namespace, world, operator } = await startOperatorWorld('nsb-feat', { kc: apiserver.kubeConfig() }));
}, 180_000);

afterAll(async () => {
  await stopOperatorWorld({ kube, world, operator });
  await apiserver?.stop();
});

function deployment(name: string, secret: string): V1Deployment {
  const labels = { app: name };
  return {
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: 'job', image: 'registry.example.com/job:1', envFrom: [{ secretRef: { name: secret } }] }] },
      },
    },
  };
}

const secretValue = async (name: string, variable: string) => {
  const secret = await getSecret(kube, namespace, name);
  return secret ? decoded(secret)[variable] : undefined;
};

describe('a NosanaSecretBinding, as users of External Secrets expect', () => {
  it('gives the env Secret the type, labels and annotations of spec.template, keeping its own labels', async () => {
    await grant(world, 'job-template', { 'template/user': 'alice', 'template/password': 'pw' });
    await createBinding(kube, bindingObject(namespace, 'templated', bindingSpec(world, 'job-template', [
      { key: 'template/user', env: 'username' }, { key: 'template/password', env: 'password' },
    ], { template: {
      type: 'kubernetes.io/basic-auth',
      metadata: { labels: { team: 'ml', 'app.kubernetes.io/managed-by': 'someone-else' }, annotations: { 'example.com/rotate': 'weekly' } },
    } })));
    await waitForReady(kube, namespace, 'templated', 'True', 'SecretsResolved');
    const secret = (await getSecret(kube, namespace, 'templated'))!;
    expect(secret.type).toBe('kubernetes.io/basic-auth');
    expect(secret.metadata?.labels).toMatchObject({ team: 'ml', 'app.kubernetes.io/managed-by': 'nosana-secrets-operator' });
    expect(secret.metadata?.annotations).toMatchObject({ 'example.com/rotate': 'weekly', 'secrets.nosana.io/job': 'job-template' });
    expect(decoded(secret)).toEqual({ username: 'alice', password: 'pw' });

    // A Secret's type cannot change: a new type replaces the Secret.
    await patchBinding(kube, namespace, 'templated', [{ op: 'replace', path: '/spec/template/type', value: 'Opaque' }]);
    const replaced = await waitFor('the Secret to become Opaque', async () => {
      const current = await getSecret(kube, namespace, 'templated');
      return current?.type === 'Opaque' ? current : undefined;
    });
    expect(replaced.metadata?.uid).not.toBe(secret.metadata?.uid);
    expect(decoded(replaced)).toEqual({ username: 'alice', password: 'pw' });
  });

  it('reports a template type whose keys do not fit as InvalidSpec, naming the type', async () => {
    await grant(world, 'job-badtype', { 'badtype/x': 'x' });
    await createBinding(kube, bindingObject(namespace, 'badtype', bindingSpec(world, 'job-badtype', [{ key: 'badtype/x', env: 'X' }],
      { template: { type: 'kubernetes.io/basic-auth' } })));
    const binding = await waitForReady(kube, namespace, 'badtype', 'False', 'InvalidSpec');
    expect(binding.status?.conditions?.[0]?.message).toMatch(/of type kubernetes.io\/basic-auth is refused/);
  });

  it('reads the values again at once when the force-sync annotation changes, long before the refresh interval', async () => {
    await grant(world, 'job-force', { 'force/token': 'before' });
    await createBinding(kube, bindingObject(namespace, 'forced', bindingSpec(world, 'job-force', [{ key: 'force/token', env: 'TOKEN' }], { refreshInterval: '1h' })));
    await waitForReady(kube, namespace, 'forced', 'True', 'SecretsResolved');
    await world.server.client.putSecret(world.owner.token, 'force/token', 'after');
    expect(await secretValue('forced', 'TOKEN')).toBe('before');

    const annotation = `/metadata/annotations`;
    await patchBinding(kube, namespace, 'forced', [{ op: 'add', path: annotation, value: { [FORCE_SYNC_ANNOTATION]: '1' } }]);
    await waitFor('the Secret to hold the new value', async () => (await secretValue('forced', 'TOKEN')) === 'after', 10_000);

    // Each new value syncs again.
    await world.server.client.putSecret(world.owner.token, 'force/token', 'again');
    await patchBinding(kube, namespace, 'forced', [{ op: 'replace', path: `${annotation}/${FORCE_SYNC_ANNOTATION.replace('/', '~1')}`, value: '2' }]);
    await waitFor('the Secret to hold the third value', async () => (await secretValue('forced', 'TOKEN')) === 'again', 10_000);
  });

  it('with rolloutOnChange restarts the workloads that use the env Secret when a value changes, and no other', async () => {
    await grant(world, 'job-rollout', { 'rollout/token': 'v1' });
    await kube.apps.createNamespacedDeployment({ namespace, body: deployment('uses-it', 'rolling') });
    await kube.apps.createNamespacedDeployment({ namespace, body: deployment('other', 'something-else') });
    await createBinding(kube, bindingObject(namespace, 'rolling', bindingSpec(world, 'job-rollout', [{ key: 'rollout/token', env: 'TOKEN' }],
      { refreshInterval: '1s', rolloutOnChange: true })));
    await waitForReady(kube, namespace, 'rolling', 'True', 'SecretsResolved');
    const restartedAt = async (name: string) =>
      (await kube.apps.readNamespacedDeployment({ name, namespace })).spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION];
    expect(await restartedAt('uses-it'), 'creating the Secret restarts nothing').toBeUndefined();

    await world.server.client.putSecret(world.owner.token, 'rollout/token', 'v2');
    const when = await waitFor('the Deployment to be restarted', () => restartedAt('uses-it'));
    expect(Date.parse(when)).toBeGreaterThan(Date.now() - 60_000);
    expect(await restartedAt('other')).toBeUndefined();
    const event = await waitFor('the RolloutRestarted event', async () =>
      (await eventsFor(kube, namespace, 'rolling')).find((e) => e.reason === 'RolloutRestarted'));
    expect(event.note).toContain('Deployment/uses-it');
    expect(event.note).not.toContain('v2');
  });

  it('takes every granted key under a dataFrom prefix, named by the rest of the key, and follows new keys', async () => {
    const values = { 'db/host': 'db.internal', 'db/read-only.password': 'pw', 'other/token': 'tok' };
    await grant(world, 'job-prefix', values);
    await world.server.client.putSecret(world.owner.token, 'db/not-granted', 'hidden');
    await createBinding(kube, bindingObject(namespace, 'prefixed', bindingSpec(world, 'job-prefix', [{ key: 'other/token', env: 'TOKEN' }], {
      dataFrom: [{ prefix: 'db/', envPrefix: 'DB_', upperCase: true }], refreshInterval: '1s',
    })));
    const binding = await waitForReady(kube, namespace, 'prefixed', 'True', 'SecretsResolved');
    expect(binding.status?.keys?.map((k) => k.key)).toEqual(['db/host', 'db/read-only.password', 'other/token']);
    expect(decoded((await getSecret(kube, namespace, 'prefixed'))!)).toEqual({ TOKEN: 'tok', DB_HOST: 'db.internal', DB_READ_ONLY_PASSWORD: 'pw' });

    // A key granted later under the prefix appears on the next refresh.
    await grant(world, 'job-prefix', { ...values, 'db/user': 'app' });
    await waitFor('DB_USER in the Secret', async () => (await secretValue('prefixed', 'DB_USER')) === 'app');
  });

  it('refuses a binding that names no keys at all, neither secrets nor dataFrom', async () => {
    const { secrets: _secrets, ...spec } = bindingSpec(world, 'job-none', []);
    const refused = await createBinding(kube, bindingObject(namespace, 'nothing', spec)).then(() => '', (error: unknown) => String((error as { body?: unknown }).body ?? error));
    expect(refused).toMatch(/name the keys to read: secrets .*, dataFrom .*, or both/);
  });

  it('shows the last sync time in `kubectl get nsb`', async () => {
    await grant(world, 'job-column', { 'column/token': 'x' });
    await createBinding(kube, bindingObject(namespace, 'column', bindingSpec(world, 'job-column', [{ key: 'column/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'column', 'True', 'SecretsResolved');
    // kubectl asks the API server for a Table; its columns are the CRD's additionalPrinterColumns.
    const table = await getTable(`/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}/column`);
    const column = table.columnDefinitions.findIndex((c) => c.name === 'Last Sync');
    expect(column, table.columnDefinitions.map((c) => c.name).join(', ')).toBeGreaterThan(0);
    expect(table.rows[0]!.cells[column]).toMatch(/^\d+s$/);
  });
});

/** GET with the Accept header kubectl sends for `get`, through the test kubeconfig. */
async function getTable(path: string): Promise<{ columnDefinitions: { name: string }[]; rows: { cells: string[] }[] }> {
  const kc = kube.kubeConfig;
  const url = new URL(kc.getCurrentCluster()!.server + path);
  const options: Parameters<typeof request>[1] = { method: 'GET', headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    request(url, options, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
      response.on('end', () => (response.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${response.statusCode}: ${body}`))));
    }).on('error', reject).end();
  });
}
