// The operator's cache of its env Secrets, against the real API server: it keeps what a reconcile needs (owner,
// labels, type, a digest of the data) and not the values, and it still tells a changed value from an unchanged one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../../operator/api/v1alpha1.js';
import type { KubeClients } from '../../operator/kube/clients.js';
import { SecretWatches } from '../../operator/kube/secret-watches.js';
import { dataDigest, type CachedSecret } from '../../operator/reconcile/env-secret.js';
import { captureLogs } from '../helpers/logs.js';
import { clients, createNamespace, kubeConfig, waitFor } from './cluster.js';

let kube: KubeClients;
let namespace: string;
let watches: SecretWatches;
const changes: CachedSecret[] = [];
const value = 'a-value-that-must-not-stay-in-the-operator-heap';

beforeAll(async () => {
  kube = clients(kubeConfig());
  namespace = await createNamespace(kube, 'nsb-cache');
  await kube.core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'env', labels: { [MANAGED_BY_LABEL]: MANAGED_BY } }, stringData: { TOKEN: value } },
  });
  watches = new SecretWatches(kube, captureLogs().logger, (secret) => changes.push(secret));
  await watches.ensure(namespace);
});

afterAll(async () => {
  await watches?.stop();
  await kube?.core.deleteNamespace({ name: namespace }).catch(() => undefined);
  kube?.close();
});

describe("the operator's cache of its env Secrets", () => {
  it('keeps a digest of the data instead of the values', () => {
    const cached = watches.get('env', namespace);
    expect(cached?.metadata?.labels?.[MANAGED_BY_LABEL]).toBe(MANAGED_BY);
    expect(cached?.dataDigest).toBe(dataDigest({ TOKEN: Buffer.from(value).toString('base64') }));
    const kept = JSON.stringify(cached);
    expect(kept).not.toContain(Buffer.from(value).toString('base64'));
    expect(kept).not.toContain(value);
  });

  it('sees a value someone else changed as a different digest, and still keeps no value', async () => {
    const before = watches.get('env', namespace)!.dataDigest;
    await kube.core.patchNamespacedSecret({ name: 'env', namespace, body: [{ op: 'replace', path: '/data/TOKEN', value: Buffer.from('edited').toString('base64') }] });
    const changed = await waitFor('the watch to report the edit', async () => changes.find((s) => s.dataDigest !== before));
    expect(changed.dataDigest).toBe(dataDigest({ TOKEN: Buffer.from('edited').toString('base64') }));
    expect(watches.get('env', namespace)?.dataDigest).toBe(changed.dataDigest);
    expect(JSON.stringify(watches.get('env', namespace))).not.toContain(Buffer.from('edited').toString('base64'));
  });
});
