// A binding's life with a real API server, a real secrets server and the operator: the env Secret and the status
// appear, follow changes of values and of the spec, are repaired when someone edits them, go when the job finishes,
// and go with the binding when it is deleted, by garbage collection, even when no operator runs any more.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEGACY_FINALIZER } from '../../operator/api/v1alpha1.js';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  bindingObject, bindingSpec, createBinding, decoded, deleteBinding, eventsFor, getBinding, getSecret, grant, patchBinding,
  sample, scrape, startOperatorWorld, stopOperatorWorld, waitFor, waitForReady, type SecretsWorld, type TestOperator
} from './cluster.js';

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;
let operatorStopped = false;

beforeAll(async () => {
  ({ kube, namespace, world, operator } = await startOperatorWorld('nsb-life'));
});

afterAll(() => stopOperatorWorld({ kube, world, operator: operatorStopped ? undefined : operator }));

describe('a NosanaSecretBinding', () => {
  it('gets its env Secret and a Ready status with the key versions', async () => {
    await grant(world, 'job-apply', { 'api/token': 'tok-1', 'db/password': 'pw-1' });
    await createBinding(kube, bindingObject(namespace, 'apply', bindingSpec(world, 'job-apply', [
      { key: 'api/token', env: 'API_TOKEN' }, { key: 'db/password', env: 'DB_PASSWORD' },
    ])));

    const binding = await waitForReady(kube, namespace, 'apply', 'True', 'SecretsResolved');
    expect(binding.status?.keys).toEqual([{ key: 'api/token', version: 1 }, { key: 'db/password', version: 1 }]);
    expect(binding.status?.secretName).toBe('apply');
    expect(binding.status?.observedGeneration).toBe(binding.metadata.generation);
    expect(Date.parse(binding.status!.lastSyncTime!)).toBeGreaterThan(Date.now() - 60_000);
    // No finalizer: it would keep the binding Terminating for good once the operator is uninstalled.
    expect(binding.metadata.finalizers ?? []).toEqual([]);

    const secret = await getSecret(kube, namespace, 'apply');
    expect(decoded(secret!)).toEqual({ API_TOKEN: 'tok-1', DB_PASSWORD: 'pw-1' });
    expect(secret!.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'nosana-secrets-operator', 'secrets.nosana.io/binding': 'apply' });
    expect(secret!.metadata?.annotations).toMatchObject({ 'secrets.nosana.io/job': 'job-apply', 'secrets.nosana.io/owner': world.owner.address });
    expect(secret!.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'NosanaSecretBinding', name: 'apply', uid: binding.metadata.uid, controller: true });

    const events = await waitFor('the SecretsResolved event', async () =>
      (await eventsFor(kube, namespace, 'apply')).find((e) => e.reason === 'SecretsResolved'));
    expect(events.note).toMatch(/2 key\(s\) resolved; Secret apply holds 2 variable\(s\)/);
  });

  it('follows a changed value on its refresh, with the new version in the status', async () => {
    await grant(world, 'job-refresh', { 'refresh/token': 'old-value' });
    await createBinding(kube, bindingObject(namespace, 'refresh',
      bindingSpec(world, 'job-refresh', [{ key: 'refresh/token', env: 'TOKEN' }], { refreshInterval: '1s' })));
    await waitForReady(kube, namespace, 'refresh', 'True', 'SecretsResolved');

    await world.server.client.putSecret(world.owner.token, 'refresh/token', 'new-value');
    const secret = await waitFor('the Secret to hold the new value', async () => {
      const current = await getSecret(kube, namespace, 'refresh');
      return current && decoded(current).TOKEN === 'new-value' ? current : undefined;
    });
    expect(secret.metadata?.name).toBe('refresh');
    await waitFor('version 2 in the status', async () =>
      (await getBinding(kube, namespace, 'refresh'))?.status?.keys?.some((k) => k.key === 'refresh/token' && k.version === 2));
    await waitFor('the SecretUpdated event', async () =>
      (await eventsFor(kube, namespace, 'refresh')).find((e) => e.reason === 'SecretUpdated' && /refresh\/token v2/.test(e.note ?? '')));
  });

  it('follows a changed spec: a new env entry appears and a removed one goes', async () => {
    await grant(world, 'job-change', { 'change/a': 'value-a', 'change/b': 'value-b' });
    await createBinding(kube, bindingObject(namespace, 'change', bindingSpec(world, 'job-change', [{ key: 'change/a', env: 'A' }])));
    const first = await waitForReady(kube, namespace, 'change', 'True', 'SecretsResolved');

    await patchBinding(kube, namespace, 'change', [{ op: 'replace', path: '/spec/secrets', value: [{ key: 'change/b', env: 'B' }] }]);
    const second = await waitFor('the status of the next generation', async () => {
      const binding = await getBinding(kube, namespace, 'change');
      return binding && binding.status?.observedGeneration === first.metadata.generation! + 1 ? binding : undefined;
    });
    expect(second.status?.keys).toEqual([{ key: 'change/b', version: 1 }]);
    expect(decoded((await getSecret(kube, namespace, 'change'))!)).toEqual({ B: 'value-b' });
  });

  it('restores its env Secret when someone deletes or edits it', async () => {
    await grant(world, 'job-repair', { 'repair/token': 'the-value' });
    await createBinding(kube, bindingObject(namespace, 'repair', bindingSpec(world, 'job-repair', [{ key: 'repair/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'repair', 'True', 'SecretsResolved');

    await kube.core.patchNamespacedSecret({ namespace, name: 'repair', body: [{ op: 'replace', path: '/data/TOKEN', value: Buffer.from('tampered').toString('base64') }] });
    await waitFor('the edited Secret to be restored', async () => {
      const secret = await getSecret(kube, namespace, 'repair');
      return secret && decoded(secret).TOKEN === 'the-value';
    });
    await kube.core.deleteNamespacedSecret({ namespace, name: 'repair' });
    await waitFor('the deleted Secret to be created again', async () => {
      const secret = await getSecret(kube, namespace, 'repair');
      return secret && decoded(secret).TOKEN === 'the-value';
    });
  });

  it('loses its env Secret when the job finishes, and is deleted after ttlAfterFinished', async () => {
    await grant(world, 'job-finish', { 'finish/token': 'value' });
    await createBinding(kube, bindingObject(namespace, 'finish',
      bindingSpec(world, 'job-finish', [{ key: 'finish/token', env: 'TOKEN' }], { ttlAfterFinished: '2s' })));
    await waitForReady(kube, namespace, 'finish', 'True', 'SecretsResolved');

    await patchBinding(kube, namespace, 'finish', [{ op: 'replace', path: '/spec/jobFinished', value: true }]);
    const finished = await waitForReady(kube, namespace, 'finish', 'False', 'JobFinished');
    expect(finished.status?.finishedAt).toBeDefined();
    expect(finished.status?.secretName).toBeUndefined();
    expect(await getSecret(kube, namespace, 'finish')).toBeUndefined();
    await waitFor('the binding to be deleted after its TTL', async () => (await getBinding(kube, namespace, 'finish')) === undefined);
  });

  it('takes its env Secret with it when deleted (garbage collection, through the ownerReference)', async () => {
    await grant(world, 'job-delete', { 'delete/token': 'value' });
    await createBinding(kube, bindingObject(namespace, 'delete', bindingSpec(world, 'job-delete', [{ key: 'delete/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'delete', 'True', 'SecretsResolved');
    expect(await getSecret(kube, namespace, 'delete')).toBeDefined();

    await deleteBinding(kube, namespace, 'delete');
    await waitFor('the binding to be gone', async () => (await getBinding(kube, namespace, 'delete')) === undefined);
    await waitFor('the env Secret to be gone', async () => (await getSecret(kube, namespace, 'delete')) === undefined);
  });

  it('removes the finalizer an older operator left on a binding, so deleting it is not held up', async () => {
    await grant(world, 'job-legacy', { 'legacy/token': 'value' });
    const old = bindingObject(namespace, 'legacy', bindingSpec(world, 'job-legacy', [{ key: 'legacy/token', env: 'TOKEN' }]));
    old.metadata.finalizers = [LEGACY_FINALIZER];
    await createBinding(kube, old);
    await waitForReady(kube, namespace, 'legacy', 'True', 'SecretsResolved');
    await waitFor('the old finalizer to be removed', async () => {
      const binding = await getBinding(kube, namespace, 'legacy');
      return binding !== undefined && !(binding.metadata.finalizers ?? []).includes(LEGACY_FINALIZER);
    });
    await deleteBinding(kube, namespace, 'legacy');
    await waitFor('the binding to be gone', async () => (await getBinding(kube, namespace, 'legacy')) === undefined);
  });

  it('reports reconciles, queue depth, bindings by condition and leadership on /metrics', async () => {
    const text = await scrape(operator.metricsPort);
    expect(sample(text, 'nosana_secrets_operator_reconcile_total', { result: 'success' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_reconcile_duration_seconds_count', { result: 'success' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_queue_depth')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'nosana_secrets_operator_bindings', { condition: 'True', reason: 'SecretsResolved' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_leader')).toBe(1);
    expect(text).toContain('# TYPE nosana_secrets_operator_reconcile_errors_total counter');
  });

  it('counts its calls to the API server by verb and resource, and to the secrets server by call, on /metrics', async () => {
    const text = await scrape(operator.metricsPort);
    expect(sample(text, 'nosana_secrets_operator_kube_requests_total', { verb: 'create', resource: 'secrets' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_kube_requests_total', { verb: 'patch', resource: 'nosanasecretbindings/status' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_server_calls_total', { call: 'read', outcome: 'success' })).toBeGreaterThan(0);
    // Resources only, never an object's name: a label per binding would grow without bound.
    const resources = [...text.matchAll(/nosana_secrets_operator_kube_requests_total\{[^}]*resource="([^"]*)"/g)].map((m) => m[1]);
    for (const resource of resources) {
      expect(resource).toMatch(/^(secrets|events|leases|namespaces|nosanasecretbindings(\/status)?|deployments|statefulsets|daemonsets)$/);
    }
  });

  it('never writes a secret value into a status, an Event or its log', async () => {
    const values = ['tok-1', 'pw-1', 'old-value', 'new-value', 'value-a', 'value-b', 'the-value'];
    const bindings = await kube.custom.listNamespacedCustomObject({ group: 'secrets.nosana.io', version: 'v1alpha1', plural: 'nosanasecretbindings', namespace });
    const events = await kube.events.listNamespacedEvent({ namespace });
    const visible = [JSON.stringify(bindings), JSON.stringify(events.items), operator.logs.join('\n')].join('\n');
    expect(operator.logs.length).toBeGreaterThan(0);
    for (const value of values) expect(visible).not.toContain(value);
  });

  // Last: it stops the operator. `helm uninstall` before the job namespaces are deleted does the same.
  it('goes, with its env Secret, when deleted after the operator has stopped', async () => {
    await grant(world, 'job-orphan', { 'orphan/token': 'value' });
    await createBinding(kube, bindingObject(namespace, 'orphan', bindingSpec(world, 'job-orphan', [{ key: 'orphan/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'orphan', 'True', 'SecretsResolved');
    await operator.close();
    operatorStopped = true;

    await deleteBinding(kube, namespace, 'orphan');
    await waitFor('the binding to be gone, not Terminating', async () => (await getBinding(kube, namespace, 'orphan')) === undefined);
    await waitFor('the env Secret to be gone', async () => (await getSecret(kube, namespace, 'orphan')) === undefined);
  });
});
