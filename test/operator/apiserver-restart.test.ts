// The operator outlives its API server restarting: the watches resume, a binding applied while its API server was
// down is reconciled once it is back, a change made after the restart is followed, and the bindings already Ready
// are not all reconciled again. The operator talks to a private API server on the shared etcd (restarting the shared
// one would disrupt the other test files); this test's own client talks to the shared one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  applyCrd, bindingObject, bindingSpec, clients, createBinding, createNamespace, createNodeCredentials, decoded, getSecret,
  grant, kubeConfig, NODE_CREDENTIALS, patchBinding, startSecretsWorld, startTestOperator, waitFor, waitForReady, type SecretsWorld,
  type TestOperator,
} from './cluster.js';
import { startPrivateApiServer, type PrivateApiServer } from './private-apiserver.js';

const EXISTING = 10;

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let apiserver: PrivateApiServer;
let operator: TestOperator;

beforeAll(async () => {
  const kc = kubeConfig();
  await applyCrd(kc);
  kube = clients(kc);
  namespace = await createNamespace(kube, 'nsb-restart');
  world = await startSecretsWorld();
  await createNodeCredentials(kube, namespace, NODE_CREDENTIALS, world.node);
  apiserver = await startPrivateApiServer();
  operator = await startTestOperator(apiserver.kubeConfig(), namespace, world.server.url, { LEADER_ELECT: 'false' });
});

afterAll(async () => {
  await operator?.close();
  await apiserver?.stop();
  await world?.close();
  kube?.close();
});

describe('when the API server restarts', () => {
  it('the operator resumes its watches and reconciles what was applied meanwhile, without a storm', { timeout: 180_000 }, async () => {
    await grant(world, 'job-restart', { 'restart/a': 'value-a', 'restart/b': 'value-b' });
    for (let i = 0; i < EXISTING; i++) {
      const spec = bindingSpec(world, 'job-restart', [{ key: 'restart/a', env: 'TOKEN' }]);
      await createBinding(kube, bindingObject(namespace, `before-${i}`, spec));
    }
    for (let i = 0; i < EXISTING; i++) await waitForReady(kube, namespace, `before-${i}`, 'True', 'SecretsResolved');
    // Status shows Ready a moment before the reconcile ends (its Event comes last): wait until every one has ended.
    await waitFor('every reconcile to end', async () => (await operator.reconcileCount()) >= EXISTING);
    const mark = operator.logs.length;

    await apiserver.stop();
    await createBinding(kube, bindingObject(namespace, 'during', bindingSpec(world, 'job-restart', [{ key: 'restart/b', env: 'TOKEN' }])));
    await apiserver.restart();

    await createBinding(kube, bindingObject(namespace, 'after', bindingSpec(world, 'job-restart', [{ key: 'restart/b', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'during', 'True', 'SecretsResolved', 60_000);
    await waitForReady(kube, namespace, 'after', 'True', 'SecretsResolved', 60_000);
    await patchBinding(kube, namespace, 'before-0', [{ op: 'replace', path: '/spec/secrets', value: [{ key: 'restart/b', env: 'B' }] }]);
    await waitFor('the change after the restart to be followed', async () => {
      const secret = await getSecret(kube, namespace, 'before-0');
      return secret && decoded(secret).B === 'value-b';
    }, 30_000);

    // Only the bindings that changed are reconciled; the Ready ones are not done again. The Secret is written before
    // the reconcile that wrote it ends (status and Event come after), so wait for that end before counting.
    const reconciledAfter = () => new Set(operator.logs.slice(mark).map((line) => JSON.parse(line) as { msg: string; binding?: string })
      .filter((line) => line.msg === 'reconciled').map((line) => line.binding));
    await waitFor('the reconcile of the change to end', async () => reconciledAfter().has('before-0'), 30_000);
    expect([...reconciledAfter()].sort()).toEqual(['after', 'before-0', 'during']);
    expect(operator.logs.slice(mark).some((line) => line.includes('watch resumed'))).toBe(true);
  });
});
