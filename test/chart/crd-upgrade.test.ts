// `helm upgrade` never updates what is in a chart's crds/: the CRD stays as the first install made it. The documented
// path (docs/kubernetes.md, "Upgrading") is to apply the chart's CRDs server-side first, as
// `kubectl apply --server-side --force-conflicts -f charts/nosana-secrets/crds/` does, then `helm upgrade`. This test
// runs that path from the 0.1.0 CRD to this one on the real API server. So as not to disturb the other tests' CRD,
// both versions are renamed into a group of this test's own.
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeypair } from '../../common/login.js';
import { CHART_DIR, REPO_DIR, helm, parseManifests } from './helm.js';
import { apply, describeError, kubeConfig, strictClient, waitUntil, type Cluster } from './kube.js';

const suffix = randomBytes(3).toString('hex');
const GROUP = `u${suffix}.upgrade.test`;
const CRD_NAME = `nosanasecretbindings.${GROUP}`;
const namespace = `chart-crd-upgrade-${suffix}`;
const release = `crd-${suffix}`;

/** The CRD text in this test's group. */
function inTestGroup(crd: string): string {
  return crd.replaceAll('secrets.nosana.io', GROUP);
}

/** A copy of the chart whose crds/ holds the given CRD (the real chart's crds/ is a symlink to the repository's). */
function chartWith(crd: string): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'ns-crd-upgrade-')), 'nosana-secrets');
  cpSync(CHART_DIR, dir, { recursive: true, dereference: true });
  writeFileSync(join(dir, 'crds', 'nosanasecretbindings.yaml'), inTestGroup(crd));
  return dir;
}

const OLD_CRD = readFileSync(join(import.meta.dirname, 'fixtures/nosanasecretbindings-0.1.0.yaml'), 'utf8');
const NEW_CRD = readFileSync(join(REPO_DIR, 'crds/nosanasecretbindings.yaml'), 'utf8');
/** Only the CRD matters here. */
const PARTS_OFF = ['--set', 'server.enabled=false', '--set', 'operator.enabled=false', '--set', 'injector.enabled=false'];

let client: Cluster;

interface Crd { spec: { versions: { additionalPrinterColumns?: { name: string }[] }[] } }
async function servedCrd(): Promise<Crd> {
  return await client.objects.read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: CRD_NAME } }) as unknown as Crd;
}
const columns = async () => (await servedCrd()).spec.versions[0]!.additionalPrinterColumns!.map((c) => c.name);

function binding(name: string, spec: object): KubernetesObject {
  return { apiVersion: `${GROUP}/v1alpha1`, kind: 'NosanaSecretBinding', metadata: { name, namespace }, ...{ spec } } as KubernetesObject;
}
const owner = generateKeypair().address;
const base = { job: 'job-1', owner, nodeCredentialsRef: { name: 'node-key' } };

beforeAll(async () => {
  client = strictClient(kubeConfig());
  await apply(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, false);
});

afterAll(async () => {
  await helm(['uninstall', release, '--namespace', namespace]);
  await client?.objects.delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: CRD_NAME } }).catch(() => undefined);
  await client?.objects.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }).catch(() => undefined);
});

describe('upgrading the CRD from chart 0.1.0', () => {
  it('is not done by helm upgrade, and is done by the documented server-side apply of crds/, keeping the bindings', async () => {
    const installed = await helm(['install', release, chartWith(OLD_CRD), '--namespace', namespace, ...PARTS_OFF]);
    expect(installed.code, installed.stderr).toBe(0);
    await waitUntil(`${CRD_NAME} to be served`, async () => {
      await apply(client, binding('old', { ...base, secrets: [{ key: 'api/token', env: 'API_TOKEN', path: 'token', mode: 256 }] }), false);
      return true;
    });
    expect(await columns()).not.toContain('Last Sync');

    const upgraded = await helm(['upgrade', release, chartWith(NEW_CRD), '--namespace', namespace, ...PARTS_OFF]);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(await columns(), 'helm upgrade left the 0.1.0 CRD in place').not.toContain('Last Sync');
    const templated = binding('templated', { ...base, secrets: [{ key: 'a', env: 'A' }], template: { type: 'Opaque' } });
    const refused = await apply(client, templated, false).then(() => '', describeError);
    expect(refused, 'the 0.1.0 CRD does not know spec.template').toMatch(/\.spec\.template: field not declared in schema/);

    // The documented step: the chart's CRDs, applied server-side with --force-conflicts (helm created the CRD).
    for (const crd of parseManifests(inTestGroup(NEW_CRD))) await apply(client, crd as KubernetesObject, false);
    await waitUntil('the new CRD to be served', async () => (await columns()).includes('Last Sync'));
    await waitUntil('spec.template to be accepted', async () => {
      await apply(client, templated, false);
      return true;
    });

    const old = await client.objects.read({ apiVersion: `${GROUP}/v1alpha1`, kind: 'NosanaSecretBinding', metadata: { name: 'old', namespace } }) as unknown as { spec: { job: string; secrets: object[] } };
    expect(old.spec.job, 'a binding made under 0.1.0 is still there').toBe('job-1');
    expect(old.spec.secrets, 'with the fields nothing read dropped').toEqual([{ key: 'api/token', env: 'API_TOKEN' }]);
  });
});
