// What the operator tests share: the real kube-apiserver (from KUBECONFIG, which `bash test/env up kube` exports),
// the CRD applied from crds/, a namespace per file, a real secrets server with an owner, a node and a grant, and an
// operator running in-process. Waiting is polling with a deadline, never a blind sleep.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CustomObjectsApi, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import YAML from 'yaml';
import { keypairFileContent, type Keypair } from '../../common/login.js';
import {
  API_VERSION, CRD_NAME, GROUP, KIND, PLURAL, VERSION, type NosanaSecretBinding, type NosanaSecretBindingSpec,
} from '../../operator/api/v1alpha1.js';
import { createKubeClients, messageOf, statusOf, type KubeClients } from '../../operator/kube/clients.js';
import { startOperator, type RunningOperator } from '../../operator/main.js';
import { newAccount, startTestServer, type Account, type TestServer } from '../helpers/server.js';
import { kubeConfig } from '../helpers/kube.js';
import { captureLogs } from '../helpers/logs.js';

export const CRD_FILE = new URL('../../crds/nosanasecretbindings.yaml', import.meta.url);

export { kubeConfig };

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${messageOf(last)})` : ''}`);
}

/**
 * Creates or updates the CRD from crds/ and waits until the API server serves it. It goes through the untyped custom
 * objects client: the typed one would drop the `x-kubernetes-*` fields, which its model spells differently.
 */
export async function applyCrd(kc: KubeConfig): Promise<void> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const crds = { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions' };
  const crd = YAML.parse(readFileSync(CRD_FILE, 'utf8')) as { metadata: { resourceVersion?: string } };
  // Test files run side by side: a create or replace may meet another file's, so a conflict means try again.
  await waitFor('the CRD to be applied', async () => {
    try {
      const existing = await custom.getClusterCustomObject({ ...crds, name: CRD_NAME }) as { metadata: { resourceVersion: string } };
      crd.metadata.resourceVersion = existing.metadata.resourceVersion;
      await custom.replaceClusterCustomObject({ ...crds, name: CRD_NAME, body: crd });
    } catch (error) {
      if (statusOf(error) === 409) return false;
      if (statusOf(error) !== 404) throw error;
      delete crd.metadata.resourceVersion;
      await custom.createClusterCustomObject({ ...crds, body: crd });
    }
    return true;
  });
  await waitFor('the CRD to be established', async () => {
    const current = await custom.getClusterCustomObject({ ...crds, name: CRD_NAME }) as { status?: { conditions?: { type: string; status: string }[] } };
    return current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
  });
}

export async function createNamespace(kube: KubeClients, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await kube.core.createNamespace({ body: { metadata: { name, labels: { 'nosana-secrets-test': 'operator' } } } });
  return name;
}

/** A secrets server with an owner holding secrets, and a node granted a job. */
export interface SecretsWorld {
  server: TestServer;
  owner: Account;
  node: Keypair;
  close(): Promise<void>;
}

/** `tls`: a server on HTTPS (its TLS_* settings) and the CA file its test client trusts. */
export async function startSecretsWorld(tls?: { env: Record<string, string>; caFile: string }): Promise<SecretsWorld> {
  const server = await startTestServer(tls?.env, undefined, tls?.caFile);
  const owner = await newAccount(server);
  const node = (await newAccount(server)).keypair;
  return { server, owner, node, close: () => server.close() };
}

/** Stores the owner's values and grants `job` those keys for the node. */
export async function grant(world: SecretsWorld, job: string, values: Record<string, string>, extraKeys: string[] = []): Promise<void> {
  for (const [key, value] of Object.entries(values)) await world.server.client.putSecret(world.owner.token, key, value);
  await world.server.client.putGrant(world.owner.token, job, [...Object.keys(values), ...extraKeys], [world.node.address]);
}

export async function createNodeCredentials(kube: KubeClients, namespace: string, name: string, node: Keypair): Promise<void> {
  await kube.core.createNamespacedSecret({
    namespace,
    body: { metadata: { name, namespace }, type: 'Opaque', stringData: { 'keypair.json': keypairFileContent(node) } },
  });
}

export function bindingObject(namespace: string, name: string, spec: NosanaSecretBindingSpec): NosanaSecretBinding {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace } as NosanaSecretBinding['metadata'], spec };
}

export async function createBinding(kube: KubeClients, binding: NosanaSecretBinding): Promise<NosanaSecretBinding> {
  return await kube.custom.createNamespacedCustomObject({
    group: GROUP, version: VERSION, plural: PLURAL, namespace: binding.metadata.namespace, body: binding,
  }) as NosanaSecretBinding;
}

export async function getBinding(kube: KubeClients, namespace: string, name: string): Promise<NosanaSecretBinding | undefined> {
  try {
    return await kube.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name }) as NosanaSecretBinding;
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

export async function patchBinding(kube: KubeClients, namespace: string, name: string, patch: object[]): Promise<void> {
  await kube.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: patch });
}

export async function deleteBinding(kube: KubeClients, namespace: string, name: string): Promise<void> {
  try {
    await kube.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name });
  } catch (error) {
    if (statusOf(error) !== 404) throw error;
  }
}

export async function getSecret(kube: KubeClients, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await kube.core.readNamespacedSecret({ namespace, name });
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

export function decoded(secret: V1Secret): Record<string, string> {
  return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

/** Waits until the binding's Ready condition has this status and reason (for its current generation). */
export async function waitForReady(
  kube: KubeClients, namespace: string, name: string, status: 'True' | 'False', reason: string, timeoutMs?: number,
): Promise<NosanaSecretBinding> {
  return waitFor(`${namespace}/${name} Ready=${status} reason ${reason}`, async () => {
    const binding = await getBinding(kube, namespace, name);
    const ready = binding?.status?.conditions?.find((c) => c.type === 'Ready');
    const current = binding?.status?.observedGeneration === binding?.metadata.generation;
    return current && ready?.status === status && ready.reason === reason ? binding : undefined;
  }, timeoutMs);
}

/** The Events about one binding, oldest first. */
export async function eventsFor(kube: KubeClients, namespace: string, name: string): Promise<{ type?: string; reason?: string; note?: string }[]> {
  const list = await kube.events.listNamespacedEvent({ namespace, fieldSelector: `regarding.name=${name}` });
  return list.items.map((e) => ({ type: e.type, reason: e.reason, note: e.note }));
}

export interface TestOperator extends RunningOperator {
  /** Every log line the operator wrote, raw JSON text. */
  logs: string[];
  reconcileCount(): Promise<number>;
}

/** An operator in this process, watching one namespace, with short leader-election and backoff times. */
export async function startTestOperator(
  kc: KubeConfig, namespace: string, endpoint: string, env: Record<string, string> = {},
): Promise<TestOperator> {
  const { logs, logger } = captureLogs();
  const operator = await startOperator({
    METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', WATCH_NAMESPACE: namespace, NOSANA_SECRETS_ENDPOINT: endpoint,
    LEADER_ELECTION_NAMESPACE: namespace, LEADER_ELECTION_LEASE_NAME: 'nosana-secrets-operator',
    LEADER_ELECTION_LEASE_DURATION: '4s', LEADER_ELECTION_RENEW_DEADLINE: '3s', LEADER_ELECTION_RETRY_PERIOD: '500ms',
    POD_NAME: `operator-${randomBytes(2).toString('hex')}`,
    ...env,
  }, { kubeConfig: kc, log: logger, backoffBaseMs: 200, backoffMaxMs: 2_000 });
  return {
    ...operator,
    isLeader: operator.isLeader,
    close: operator.close,
    logs,
    async reconcileCount() {
      const metric = await operator.metrics.reconciles.get();
      return metric.values.reduce((sum, v) => sum + v.value, 0);
    },
  };
}

export function clients(kc: KubeConfig): KubeClients {
  return createKubeClients(kc);
}

/** The value of one sample in Prometheus text, matched by name and labels in any order; undefined when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = new Map([...(match[3] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => present.get(k) === v)) return Number(match[4]);
  }
  return undefined;
}

export async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** One namespace with node credentials, a secrets server with an owner and a node, and one operator watching it. */
/** The Secret with the node's keypair that each test namespace gets, and that bindings name as their credentials. */
export const NODE_CREDENTIALS = 'node-key';

/** A binding spec of `world`'s owner for `job`, read with the namespace's node credentials. */
export function bindingSpec(
  world: SecretsWorld, job: string, secrets: NosanaSecretBindingSpec['secrets'], extra: Partial<NosanaSecretBindingSpec> = {},
): NosanaSecretBindingSpec {
  return { job, owner: world.owner.address, nodeCredentialsRef: { name: NODE_CREDENTIALS }, secrets, ...extra };
}

export interface OperatorWorld {
  kube: KubeClients;
  namespace: string;
  world: SecretsWorld;
  operator: TestOperator;
}

export async function startOperatorWorld(
  namespacePrefix: string,
  options: { kc?: KubeConfig; tls?: { env: Record<string, string>; caFile: string }; operatorEnv?: Record<string, string> } = {},
): Promise<OperatorWorld> {
  const kc = options.kc ?? kubeConfig();
  await applyCrd(kc);
  const kube = clients(kc);
  const namespace = await createNamespace(kube, namespacePrefix);
  const world = await startSecretsWorld(options.tls);
  await createNodeCredentials(kube, namespace, NODE_CREDENTIALS, world.node);
  const operator = await startTestOperator(kc, namespace, world.server.url, { LEADER_ELECT: 'false', ...options.operatorEnv });
  return { kube, namespace, world, operator };
}

export async function stopOperatorWorld(setup: Partial<OperatorWorld>): Promise<void> {
  await setup.operator?.close();
  await setup.world?.close();
  setup.kube?.close();
}
