// Job ids and node addresses are public on Nosana, and any key may grant any job id to any reader. The operator names
// spec.owner on every job login, so a stranger's grant for the same job id can neither deny a binding its owner's
// values nor stand in for them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClients } from '../../operator/kube/clients.js';
import { newAccount, type Account } from '../helpers/server.js';
import {
  bindingObject, bindingSpec, createBinding, decoded, getSecret, grant, startOperatorWorld, stopOperatorWorld,
  waitForReady, type SecretsWorld, type TestOperator,
} from './cluster.js';

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;
let stranger: Account;

beforeAll(async () => {
  ({ kube, namespace, world, operator } = await startOperatorWorld('nsb-stranger'));
  stranger = await newAccount(world.server);
  await world.server.client.putSecret(stranger.token, 'api/token', 'stranger-value');
});

afterAll(() => stopOperatorWorld({ kube, world, operator }));

/** The stranger grants its own `api/token` under job id `job` to the world's node. */
async function strangerGrants(job: string): Promise<void> {
  await world.server.client.putGrant(stranger.token, job, ['api/token'], [world.node.address]);
}

describe('a stranger\'s grant for the same job id', () => {
  it('does not deny a binding its owner\'s values', async () => {
    await grant(world, 'job-shared', { 'api/token': 'owner-value' });
    await strangerGrants('job-shared');
    await createBinding(kube, bindingObject(namespace, 'shared', bindingSpec(world, 'job-shared', [{ key: 'api/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'shared', 'True', 'SecretsResolved');
    expect(decoded((await getSecret(kube, namespace, 'shared'))!)).toEqual({ TOKEN: 'owner-value' });
  });

  it('is never read in place of the owner\'s: with only the stranger granting, the binding is AccessDenied', async () => {
    await strangerGrants('job-stranger-only');
    await createBinding(kube, bindingObject(namespace, 'stranger-only', bindingSpec(world, 'job-stranger-only', [{ key: 'api/token', env: 'TOKEN' }])));
    const binding = await waitForReady(kube, namespace, 'stranger-only', 'False', 'AccessDenied');
    expect(binding.status?.conditions?.[0]?.message).toContain(`has no grant for job job-stranger-only from owner ${world.owner.address}`);
    expect(await getSecret(kube, namespace, 'stranger-only')).toBeUndefined();
    expect(operator.logs.join('\n')).not.toContain('stranger-value');
  });
});
