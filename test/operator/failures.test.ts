// Bindings that cannot be satisfied say why in their Ready condition and an Event, and leave no values behind.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeypair } from '../../common/login.js';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  bindingObject, bindingSpec, createBinding, decoded, eventsFor, getBinding, getSecret, grant, patchBinding, sample, scrape, startOperatorWorld,
  stopOperatorWorld, waitFor, waitForReady, type SecretsWorld, type TestOperator
} from './cluster.js';

let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;

/** A server that no request may reach: the operator is not allowed to sign in there. */
const UNREACHABLE = 'http://127.0.0.1:1';

beforeAll(async () => {
  ({ kube, namespace, world, operator } = await startOperatorWorld('nsb-fail', { operatorEnv: { NOSANA_OPERATOR_ALLOWED_ENDPOINTS: UNREACHABLE } }));
});

afterAll(() => stopOperatorWorld({ kube, world, operator }));

describe('a NosanaSecretBinding that cannot be satisfied', () => {
  it('for a key that was not granted gets Ready=False reason AccessDenied and no Secret', async () => {
    await grant(world, 'job-denied', { 'granted/token': 'granted-value' });
    await world.server.client.putSecret(world.owner.token, 'other/token', 'not-granted-value');
    await createBinding(kube, bindingObject(namespace, 'denied', bindingSpec(world, 'job-denied', [
      { key: 'granted/token', env: 'GRANTED' }, { key: 'other/token', env: 'OTHER' },
    ])));

    const binding = await waitForReady(kube, namespace, 'denied', 'False', 'AccessDenied');
    expect(binding.status?.conditions?.[0]?.message).toMatch(/key "other\/token" is not granted to job job-denied/);
    expect(await getSecret(kube, namespace, 'denied')).toBeUndefined();
    const event = await waitFor('a Warning event', async () =>
      (await eventsFor(kube, namespace, 'denied')).find((e) => e.type === 'Warning' && e.reason === 'AccessDenied'));
    expect(event.note).not.toContain('granted-value');
  });

  it('for a job the node has no grant for gets AccessDenied, and becomes Ready once the grant exists', async () => {
    await createBinding(kube, bindingObject(namespace, 'later', bindingSpec(world, 'job-later', [{ key: 'later/token', env: 'TOKEN' }])));
    const denied = await waitForReady(kube, namespace, 'later', 'False', 'AccessDenied');
    expect(denied.status?.conditions?.[0]?.message).toMatch(/has no grant for job job-later/);

    await grant(world, 'job-later', { 'later/token': 'later-value' });
    await waitForReady(kube, namespace, 'later', 'True', 'SecretsResolved');
    expect(decoded((await getSecret(kube, namespace, 'later'))!)).toEqual({ TOKEN: 'later-value' });
  });

  it('whose grant comes from another owner than spec.owner gets AccessDenied', async () => {
    await grant(world, 'job-owner', { 'owner/token': 'owner-value' });
    const stranger = generateKeypair().address;
    await createBinding(kube, bindingObject(namespace, 'owner', bindingSpec(world, 'job-owner', [{ key: 'owner/token', env: 'TOKEN' }], { owner: stranger })));
    const binding = await waitForReady(kube, namespace, 'owner', 'False', 'AccessDenied');
    expect(binding.status?.conditions?.[0]?.message).toContain(`has no grant for job job-owner from owner ${stranger}`);
    expect(await getSecret(kube, namespace, 'owner')).toBeUndefined();
  });

  it('for a granted key that does not exist gets SecretNotFound', async () => {
    await grant(world, 'job-missing', { 'missing/present': 'present-value' }, ['missing/absent']);
    await createBinding(kube, bindingObject(namespace, 'missing', bindingSpec(world, 'job-missing', [{ key: 'missing/absent', env: 'ABSENT' }])));
    const binding = await waitForReady(kube, namespace, 'missing', 'False', 'SecretNotFound');
    expect(binding.status?.conditions?.[0]?.message).toMatch(/key "missing\/absent" does not exist/);
  });

  it('whose secrets server cannot be reached gets ServerUnreachable', async () => {
    await createBinding(kube, bindingObject(namespace, 'unreachable',
      bindingSpec(world, 'job-x', [{ key: 'x', env: 'X' }], { endpoint: UNREACHABLE })));
    const binding = await waitForReady(kube, namespace, 'unreachable', 'False', 'ServerUnreachable');
    expect(binding.status?.conditions?.[0]?.message).toMatch(/cannot reach the secrets server at http:\/\/127\.0\.0\.1:1/);
  });

  it('naming an endpoint outside the allow-list gets EndpointNotAllowed, and that server receives no request', async () => {
    const received: string[] = [];
    const capture = createServer((request, response) => {
      received.push(`${request.method} ${request.url}`);
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(capture.address() as AddressInfo).port}`;
    try {
      await grant(world, 'job-capture', { 'capture/token': 'capture-value' });
      await createBinding(kube, bindingObject(namespace, 'capture',
        bindingSpec(world, 'job-capture', [{ key: 'capture/token', env: 'TOKEN' }], { endpoint })));
      const binding = await waitForReady(kube, namespace, 'capture', 'False', 'EndpointNotAllowed');
      expect(binding.status?.conditions?.[0]?.message).toContain(`endpoint "${endpoint}" is not one of the allowed secrets servers`);
      expect(binding.status?.conditions?.[0]?.message).toContain('NOSANA_OPERATOR_ALLOWED_ENDPOINTS');
      await waitFor('a Warning event', async () =>
        (await eventsFor(kube, namespace, 'capture')).find((e) => e.type === 'Warning' && e.reason === 'EndpointNotAllowed'));
      // The same endpoint with a trailing slash or other spelling is the same refusal, not a way round it.
      await patchBinding(kube, namespace, 'capture', [{ op: 'replace', path: '/spec/endpoint', value: `${endpoint}/` }]);
      await waitFor('the edited binding to be reconciled', async () => {
        const edited = await getBinding(kube, namespace, 'capture');
        const ready = edited?.status?.conditions?.[0];
        return edited?.status?.observedGeneration === edited?.metadata.generation && ready?.reason === 'EndpointNotAllowed' ? true : undefined;
      });
      expect(received, 'requests that reached the refused endpoint').toEqual([]);
      expect(await getSecret(kube, namespace, 'capture')).toBeUndefined();
    } finally {
      capture.close();
    }
  });

  it('without its node credentials Secret gets CredentialsNotFound naming the Secret', async () => {
    await createBinding(kube, bindingObject(namespace, 'nocreds', bindingSpec(world, 'job-x', [{ key: 'x', env: 'X' }], { nodeCredentialsRef: { name: 'nowhere' } })));
    const binding = await waitForReady(kube, namespace, 'nocreds', 'False', 'CredentialsNotFound');
    expect(binding.status?.conditions?.[0]?.message).toContain(`node credentials Secret ${namespace}/nowhere does not exist`);
  });

  it('whose target name is taken by another Secret gets SecretConflict and leaves that Secret alone', async () => {
    await grant(world, 'job-conflict', { 'conflict/token': 'conflict-value' });
    await kube.core.createNamespacedSecret({ namespace, body: { metadata: { name: 'taken' }, stringData: { MINE: 'keep me' } } });
    await createBinding(kube, bindingObject(namespace, 'conflict',
      bindingSpec(world, 'job-conflict', [{ key: 'conflict/token', env: 'TOKEN' }], { secretName: 'taken' })));
    await waitForReady(kube, namespace, 'conflict', 'False', 'SecretConflict');
    expect(decoded((await getSecret(kube, namespace, 'taken'))!)).toEqual({ MINE: 'keep me' });
  });

  it('counts its failures by reason on /metrics', async () => {
    const text = await scrape(operator.metricsPort);
    expect(sample(text, 'nosana_secrets_operator_reconcile_errors_total', { reason: 'AccessDenied' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_reconcile_errors_total', { reason: 'ServerUnreachable' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_bindings', { condition: 'False', reason: 'ServerUnreachable' })).toBe(1);
  });

  it('never writes a secret value into a status, an Event or its log', async () => {
    const bindings = await kube.custom.listNamespacedCustomObject({ group: 'secrets.nosana.io', version: 'v1alpha1', plural: 'nosanasecretbindings', namespace });
    const events = await kube.events.listNamespacedEvent({ namespace });
    const visible = [JSON.stringify(bindings), JSON.stringify(events.items), operator.logs.join('\n')].join('\n');
    for (const value of ['granted-value', 'not-granted-value', 'later-value', 'owner-value', 'present-value', 'conflict-value']) {
      expect(visible).not.toContain(value);
    }
  });
});
