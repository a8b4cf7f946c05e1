// The operator outlives its API server restarting: the watches resume, a binding applied after the restart is
// reconciled, a change made after it is followed, and the bindings already Ready are not all reconciled again.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NosanaSecretBindingSpec } from '../../operator/api/v1alpha1.js';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  applyCrd, bindingObject, clients, createBinding, createNamespace, createNodeCredentials, decoded, getSecret, grant,
  kubeConfig, patchBinding, startSecretsWorld, startTestOperator, waitFor, waitForReady, type SecretsWorld,
  type TestOperator,
} from './cluster.js';

const TEST_ENV = fileURLToPath(new URL('../env', import.meta.url));
const EXISTING = 10;

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;

function spec(job: string, key: string, env = 'TOKEN'): NosanaSecretBindingSpec {
  return { job, owner: world.owner.address, nodeCredentialsRef: { name: 'node-key' }, secrets: [{ key, env }] };
}

beforeAll(async () => {
  const kc = kubeConfig();
  await applyCrd(kc);
  kube = clients(kc);
  namespace = await createNamespace(kube, 'nsb-restart');
  world = await startSecretsWorld();
  await createNodeCredentials(kube, namespace, 'node-key', world.node);
  operator = await startTestOperator(kc, namespace, world.server.url, { LEADER_ELECT: 'false' });
});

afterAll(async () => {
  await operator?.close();
  await world?.close();
  kube?.close();
});

describe('when the API server restarts', () => {
  it('the operator resumes its watches and reconciles what is applied afterwards, without a storm', { timeout: 180_000 }, async () => {
    await grant(world, 'job-restart', { 'restart/a': 'value-a', 'restart/b': 'value-b' });
    for (let i = 0; i < EXISTING; i++) {
      await createBinding(kube, bindingObject(namespace, `before-${i}`, spec('job-restart', 'restart/a')));
    }
    for (let i = 0; i < EXISTING; i++) await waitForReady(kube, namespace, `before-${i}`, 'True', 'SecretsResolved');
    const mark = operator.logs.length;

    await promisify(execFile)('bash', [TEST_ENV, 'restart', 'kube-apiserver'], { timeout: 150_000 });

    await createBinding(kube, bindingObject(namespace, 'after', spec('job-restart', 'restart/b')));
    await waitForReady(kube, namespace, 'after', 'True', 'SecretsResolved', 60_000);
    await patchBinding(kube, namespace, 'before-0', [{ op: 'replace', path: '/spec/secrets', value: [{ key: 'restart/b', env: 'B' }] }]);
    await waitFor('the change after the restart to be followed', async () => {
      const secret = await getSecret(kube, namespace, 'before-0');
      return secret && decoded(secret).B === 'value-b';
    }, 30_000);

    // The new binding and the changed one are reconciled; the Ready ones are not all done again (at most one whose
    // reconcile the restart cut short is retried).
    const reconciledAfter = new Set(operator.logs.slice(mark).map((line) => JSON.parse(line) as { msg: string; binding?: string })
      .filter((line) => line.msg === 'reconciled').map((line) => line.binding));
    expect(reconciledAfter).toContain('after');
    expect(reconciledAfter).toContain('before-0');
    expect(reconciledAfter.size).toBeLessThanOrEqual(3);
    expect(operator.logs.some((line) => line.includes('watch resumed') || line.includes('watch failed'))).toBe(true);
  });
});
