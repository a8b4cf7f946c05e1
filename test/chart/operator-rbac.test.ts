// The operator's least privilege, on a real kube-apiserver: the chart is installed for real, and its operator
// ServiceAccount (with a token the API server issued) can touch no Secret outside operator.namespaces, the server's
// keys above all, yet the operator still does its work with exactly those rights.
import { randomBytes } from 'node:crypto';
import { AuthorizationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients, statusOf, type KubeClients } from '../../operator/kube/clients.js';
import {
  applyCrd, bindingObject, bindingSpec, createBinding, createNodeCredentials, decoded, deleteBinding, getBinding, getSecret,
  grant, NODE_CREDENTIALS, startSecretsWorld, startTestOperator, waitFor, waitForReady, type SecretsWorld, type TestOperator,
} from '../operator/cluster.js';
import { CHART_DIR, helm } from './helm.js';
import { kubeConfig } from './kube.js';

const suffix = randomBytes(3).toString('hex');
const release = `rbac-${suffix}`;
const releaseNamespace = `chart-rbac-${suffix}`;
const jobsNamespace = `chart-rbac-jobs-${suffix}`;
const otherNamespace = `chart-rbac-other-${suffix}`;
const serviceAccount = `${release}-nosana-secrets-operator`;
const keysSecret = `${release}-nosana-secrets-keys`;

let admin: KubeClients;
let operatorKc: KubeConfig;
let world: SecretsWorld;
const operators: TestOperator[] = [];

/** A kubeconfig that authenticates as the chart's operator ServiceAccount, with a token from the TokenRequest API. */
async function serviceAccountKubeConfig(kc: KubeConfig): Promise<KubeConfig> {
  const request = await admin.core.createNamespacedServiceAccountToken({
    name: serviceAccount, namespace: releaseNamespace, body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = kc.getCurrentCluster()!;
  const saKc = new KubeConfig();
  saKc.loadFromOptions({
    clusters: [cluster], users: [{ name: 'operator', token: request.status!.token }],
    contexts: [{ name: 'operator', cluster: cluster.name, user: 'operator' }], currentContext: 'operator',
  });
  return saKc;
}

/** Whether the API server's authorizer lets the operator's ServiceAccount do `verb` on Secrets (SubjectAccessReview). */
async function operatorMay(verb: string, namespace: string, name?: string): Promise<boolean> {
  const review = await kubeConfig().makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: {
      spec: {
        user: `system:serviceaccount:${releaseNamespace}:${serviceAccount}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${releaseNamespace}`, 'system:authenticated'],
        resourceAttributes: { verb, resource: 'secrets', namespace, name },
      },
    },
  });
  return review.status?.allowed === true;
}

beforeAll(async () => {
  const kc = kubeConfig();
  admin = createKubeClients(kc);
  await applyCrd(kc);
  for (const name of [releaseNamespace, jobsNamespace, otherNamespace]) {
    await admin.core.createNamespace({ body: { metadata: { name } } });
  }
  // No kubelet here to run the chart's hook Job, which would create the keys Secret: helm skips hooks, and the
  // Secret the Job makes is created as the Job would, so there is a keys Secret for the operator to be kept from.
  const installed = await helm(['install', release, CHART_DIR, '--namespace', releaseNamespace,
    '--set', `operator.namespaces={${jobsNamespace}}`, '--skip-crds', '--no-hooks']);
  expect(installed.code, installed.stderr).toBe(0);
  await admin.core.createNamespacedSecret({
    namespace: releaseNamespace,
    body: { metadata: { name: keysSecret }, stringData: { JWT_SECRET: 'not-a-real-secret', ENCRYPTION_KEYS: 'not-a-real-key' } },
  });
  operatorKc = await serviceAccountKubeConfig(kc);
  world = await startSecretsWorld();
  await createNodeCredentials(admin, jobsNamespace, NODE_CREDENTIALS, world.node);
  await createNodeCredentials(admin, otherNamespace, NODE_CREDENTIALS, world.node);
}, 120_000);

afterAll(async () => {
  for (const operator of operators) await operator.close();
  await world?.close();
  await helm(['uninstall', release, '--namespace', releaseNamespace, '--no-hooks']);
  for (const name of [releaseNamespace, jobsNamespace, otherNamespace]) {
    await admin?.core.deleteNamespace({ name }).catch(() => undefined);
  }
  admin?.close();
});

describe('the operator under the chart\'s RBAC', () => {
  it('cannot get, list, watch, change or delete the server\'s keys Secret, nor any Secret outside operator.namespaces', async () => {
    for (const verb of ['get', 'patch', 'update', 'delete']) {
      expect(await operatorMay(verb, releaseNamespace, keysSecret), `${verb} the server's keys Secret`).toBe(false);
    }
    for (const verb of ['list', 'watch', 'create']) {
      expect(await operatorMay(verb, releaseNamespace), `${verb} Secrets in the release namespace`).toBe(false);
      expect(await operatorMay(verb, otherNamespace), `${verb} Secrets in a namespace not listed`).toBe(false);
      expect(await operatorMay(verb, ''), `${verb} Secrets of every namespace`).toBe(false);
    }
    expect(await operatorMay('get', otherNamespace, NODE_CREDENTIALS), 'get a Secret in a namespace not listed').toBe(false);
    // and for real, with the ServiceAccount's own token
    const asOperator = createKubeClients(operatorKc);
    try {
      const read = await asOperator.core.readNamespacedSecret({ name: keysSecret, namespace: releaseNamespace }).then(() => 200, statusOf);
      expect(read, 'reading the keys Secret as the operator').toBe(403);
      const listed = await asOperator.core.listSecretForAllNamespaces().then(() => 200, statusOf);
      expect(listed, 'listing every Secret as the operator').toBe(403);
      const deleted = await asOperator.core.deleteNamespacedSecret({ name: keysSecret, namespace: releaseNamespace }).then(() => 200, statusOf);
      expect(deleted, 'deleting the keys Secret as the operator').toBe(403);
      expect(await getSecret(admin, releaseNamespace, keysSecret), 'the keys Secret is still there').toBeDefined();
    } finally {
      asOperator.close();
    }
    // What it needs, in the listed namespace
    for (const verb of ['get', 'list', 'watch', 'create', 'patch', 'delete']) {
      expect(await operatorMay(verb, jobsNamespace), `${verb} Secrets in operator.namespaces`).toBe(true);
    }
  });

  it('keeps, then deletes, the env Secret of a binding in a listed namespace with exactly those rights', async () => {
    const operator = await startTestOperator(operatorKc, jobsNamespace, world.server.url, {
      LEADER_ELECTION_NAMESPACE: releaseNamespace, LEADER_ELECTION_LEASE_NAME: `${serviceAccount}-jobs`,
    });
    operators.push(operator);
    await grant(world, 'job-rbac', { 'rbac/token': 'rbac-value' });
    await createBinding(admin, bindingObject(jobsNamespace, 'rbac', bindingSpec(world, 'job-rbac', [{ key: 'rbac/token', env: 'TOKEN' }])));
    await waitForReady(admin, jobsNamespace, 'rbac', 'True', 'SecretsResolved');
    expect(decoded((await getSecret(admin, jobsNamespace, 'rbac'))!)).toEqual({ TOKEN: 'rbac-value' });

    await deleteBinding(admin, jobsNamespace, 'rbac');
    await waitFor('the binding and its env Secret to be gone', async () =>
      (await getBinding(admin, jobsNamespace, 'rbac')) === undefined && (await getSecret(admin, jobsNamespace, 'rbac')) === undefined);
  });

  it('answers a binding in a namespace not listed with Ready=False SecretsNotPermitted, and lets it be deleted', async () => {
    const operator = await startTestOperator(operatorKc, otherNamespace, world.server.url, {
      LEADER_ELECTION_NAMESPACE: releaseNamespace, LEADER_ELECTION_LEASE_NAME: `${serviceAccount}-other`,
    });
    operators.push(operator);
    await grant(world, 'job-elsewhere', { 'elsewhere/token': 'elsewhere-value' });
    await createBinding(admin, bindingObject(otherNamespace, 'elsewhere', bindingSpec(world, 'job-elsewhere', [{ key: 'elsewhere/token', env: 'TOKEN' }])));
    const binding = await waitForReady(admin, otherNamespace, 'elsewhere', 'False', 'SecretsNotPermitted');
    expect(binding.status?.conditions?.[0]?.message).toContain(`may not manage Secrets in namespace ${otherNamespace}`);
    expect(binding.status?.conditions?.[0]?.message).toContain('operator.namespaces');
    await deleteBinding(admin, otherNamespace, 'elsewhere');
    await waitFor('the binding to be gone', async () => (await getBinding(admin, otherNamespace, 'elsewhere')) === undefined);
  });
});
