// A secrets server that throttles the node key's job token exchanges (LOGIN_RATE_LIMIT_PER_ADDRESS): one operator with
// one node key for many bindings meets that limit at scale. Throttling is no fault of a binding: it must not turn a
// binding's Ready condition False or raise Warnings, and every binding must still get its values.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClients } from '../../operator/kube/clients.js';
import {
  applyCrd, bindingObject, bindingSpec, clients, createBinding, createNamespace, createNodeCredentials, eventsFor, grant, kubeConfig,
  NODE_CREDENTIALS, sample, scrape, startTestOperator, waitForReady, type SecretsWorld, type TestOperator,
} from './cluster.js';
import { newAccount, startTestServer } from '../helpers/server.js';

const BINDINGS = 8;
let kc: KubeConfig;
let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;

beforeAll(async () => {
  kc = kubeConfig();
  await applyCrd(kc);
  kube = clients(kc);
  namespace = await createNamespace(kube, 'nsb-throttle');
  // Three logins or exchanges per node key every 2 s: eight bindings at once cannot all pass in one window.
  const server = await startTestServer({ LOGIN_RATE_LIMIT_PER_ADDRESS: '3', LOGIN_RATE_LIMIT_WINDOW_SECONDS: '2' });
  const owner = await newAccount(server);
  const node = (await newAccount(server)).keypair;
  world = { server, owner, node, close: () => server.close() };
  await createNodeCredentials(kube, namespace, NODE_CREDENTIALS, world.node);
  for (let i = 0; i < BINDINGS; i++) await grant(world, `job-${i}`, { [`throttle/${i}`]: `value-${i}` });
  await new Promise((resolve) => setTimeout(resolve, 2000)); // the node's own login above used part of a window
  operator = await startTestOperator(kc, namespace, world.server.url, { LEADER_ELECT: 'false' });
});

afterAll(async () => {
  await operator?.close();
  await world?.close();
  kube?.close();
});

describe('a secrets server that throttles the node key', () => {
  it('delays bindings without marking them not Ready or raising Warnings, and every binding gets its values', async () => {
    await Promise.all(Array.from({ length: BINDINGS }, (_, i) =>
      createBinding(kube, bindingObject(namespace, `b-${i}`, bindingSpec(world, `job-${i}`, [{ key: `throttle/${i}`, env: 'VALUE' }])))));
    for (let i = 0; i < BINDINGS; i++) await waitForReady(kube, namespace, `b-${i}`, 'True', 'SecretsResolved', 60_000);

    for (let i = 0; i < BINDINGS; i++) {
      const events = await eventsFor(kube, namespace, `b-${i}`);
      expect(events.filter((e) => e.type === 'Warning')).toEqual([]);
    }
    // The server did throttle: the test is not passing by luck.
    const text = await scrape(operator.metricsPort);
    expect(sample(text, 'nosana_secrets_operator_reconcile_errors_total', { reason: 'ServerThrottled' })).toBeGreaterThan(0);
    expect(sample(text, 'nosana_secrets_operator_server_calls_total', { call: 'job_token', outcome: 'error' })).toBeGreaterThan(0);
  }, 90_000);
});
