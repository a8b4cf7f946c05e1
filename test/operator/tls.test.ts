// The operator against an HTTPS server: it resolves a binding when NOSANA_SECRETS_CA_FILE names the CA that signed
// the server's certificate, and reports ServerUnreachable (no env Secret) when another CA did.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClients } from '../../operator/kube/clients.js';
import { loadOperatorConfig } from '../../operator/config.js';
import { issueServerCert, makeCa, type PemFiles } from '../helpers/tls.js';
import {
  bindingObject, bindingSpec, createBinding, createNamespace, createNodeCredentials, decoded, getSecret, grant, kubeConfig,
  NODE_CREDENTIALS, startOperatorWorld, startTestOperator, stopOperatorWorld, waitForReady, type SecretsWorld, type TestOperator,
} from './cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'nsb-tls-'));
let ca: PemFiles;
let otherCa: PemFiles;
let kube: KubeClients;
let namespace: string;
let world: SecretsWorld;
let operator: TestOperator;
let distrusting: TestOperator | undefined;

beforeAll(async () => {
  ca = makeCa(dir, 'operator-ca');
  otherCa = makeCa(dir, 'operator-other-ca');
  const cert = issueServerCert(ca, dir, 'operator-server');
  ({ kube, namespace, world, operator } = await startOperatorWorld('nsb-tls', {
    tls: { env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }, caFile: ca.certFile },
    operatorEnv: { NOSANA_SECRETS_CA_FILE: ca.certFile },
  }));
});

afterAll(async () => {
  await distrusting?.close();
  await stopOperatorWorld({ kube, world, operator });
});

describe('the operator over HTTPS', () => {
  it('resolves a binding from an HTTPS server signed by the CA of NOSANA_SECRETS_CA_FILE', async () => {
    expect(world.server.url).toMatch(/^https:/);
    await grant(world, 'job-tls', { 'tls/token': 'tls-token-value' });
    await createBinding(kube, bindingObject(namespace, 'tls', bindingSpec(world, 'job-tls', [{ key: 'tls/token', env: 'TOKEN' }])));
    await waitForReady(kube, namespace, 'tls', 'True', 'SecretsResolved');
    expect(decoded((await getSecret(kube, namespace, 'tls'))!)).toEqual({ TOKEN: 'tls-token-value' });
  });

  it('reports ServerUnreachable and makes no Secret when another CA signed the server\'s certificate', async () => {
    const other = await createNamespace(kube, 'nsb-tls-other');
    await createNodeCredentials(kube, other, NODE_CREDENTIALS, world.node);
    distrusting = await startTestOperator(kubeConfig(), other, world.server.url, { LEADER_ELECT: 'false', NOSANA_SECRETS_CA_FILE: otherCa.certFile });
    await grant(world, 'job-tls-other', { 'tls/other': 'never-read-value' });
    await createBinding(kube, bindingObject(other, 'tls', bindingSpec(world, 'job-tls-other', [{ key: 'tls/other', env: 'OTHER' }])));
    const binding = await waitForReady(kube, other, 'tls', 'False', 'ServerUnreachable');
    expect(binding.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/certificate/);
    expect(await getSecret(kube, other, 'tls')).toBeUndefined();
    await kube.core.deleteNamespace({ name: other }).catch(() => undefined);
  });

  it('stops start-up when NOSANA_SECRETS_CA_FILE cannot be read', () => {
    expect(() => loadOperatorConfig({ NOSANA_SECRETS_CA_FILE: join(dir, 'missing.crt') })).toThrow(/NOSANA_SECRETS_CA_FILE="[^"]*missing\.crt" cannot be read/);
  });
});
