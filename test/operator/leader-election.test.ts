// Two operator replicas (in one process, each with its own identity, clients and metrics) share a Lease: only the
// leader acts, and when it stops, the other takes over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  applyCrd, bindingObject, bindingSpec, clients, createBinding, createNamespace, createNodeCredentials, grant, kubeConfig,
  NODE_CREDENTIALS, sample, scrape, startSecretsWorld, startTestOperator, waitFor, waitForReady, type SecretsWorld, type TestOperator,
} from './cluster.js';

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let replicas: TestOperator[] = [];
/** Set when both replicas ever said they led at the same moment. */
let bothLed = false;
let watcher: NodeJS.Timeout | undefined;

beforeAll(async () => {
  const kc = kubeConfig();
  await applyCrd(kc);
  kube = clients(kc);
  namespace = await createNamespace(kube, 'nsb-lead');
  world = await startSecretsWorld();
  await createNodeCredentials(kube, namespace, NODE_CREDENTIALS, world.node);
  replicas = [
    await startTestOperator(kubeConfig(), namespace, world.server.url, { POD_NAME: 'replica-a' }),
    await startTestOperator(kubeConfig(), namespace, world.server.url, { POD_NAME: 'replica-b' }),
  ];
  watcher = setInterval(() => {
    if (replicas.filter((r) => r.isLeader()).length > 1) bothLed = true;
  }, 20);
});

afterAll(async () => {
  clearInterval(watcher);
  await Promise.all(replicas.map((r) => r.close()));
  await world?.close();
  kube?.close();
});

describe('two operator replicas', () => {
  it('elect one leader, and only the leader reconciles', async () => {
    const leader = await waitFor('a leader', async () => replicas.find((r) => r.isLeader()));
    const standby = replicas.find((r) => r !== leader)!;
    await grant(world, 'job-one', { 'one/token': 'v1' });
    await createBinding(kube, bindingObject(namespace, 'one', bindingSpec(world, 'job-one', [{ key: 'one/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'one', 'True', 'SecretsResolved');

    // The status is written inside the reconcile, and the count goes up as it returns: wait for that.
    await waitFor('the leader\'s reconcile to end', async () => (await leader.reconcileCount()) > 0);
    expect(await standby.reconcileCount()).toBe(0);
    expect(standby.isLeader()).toBe(false);
    const lease = await kube.coordination.readNamespacedLease({ namespace, name: 'nosana-secrets-operator' });
    expect(lease.spec?.holderIdentity).toBe(leader.config.identity);
    expect(sample(await scrape(standby.metricsPort), 'nosana_secrets_operator_leader')).toBe(0);
    expect(sample(await scrape(leader.metricsPort), 'nosana_secrets_operator_leader')).toBe(1);
  });

  it('hand over when the leader stops: the other replica takes the lease and acts', async () => {
    const leader = replicas.find((r) => r.isLeader())!;
    const standby = replicas.find((r) => r !== leader)!;
    await leader.close();
    replicas = [standby];

    await waitFor('the standby to lead', async () => standby.isLeader(), 15_000);
    await grant(world, 'job-two', { 'two/token': 'v2' });
    await createBinding(kube, bindingObject(namespace, 'two', bindingSpec(world, 'job-two', [{ key: 'two/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'two', 'True', 'SecretsResolved');
    await waitFor('the new leader\'s reconcile to end', async () => (await standby.reconcileCount()) > 0);
    expect(bothLed).toBe(false);
  });
});
