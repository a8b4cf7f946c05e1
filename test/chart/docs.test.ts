// The walk-through in docs/kubernetes.md is what users copy. Every manifest it applies (the heredocs piped to
// `kubectl apply`) is sent to a real API server, with the CRDs it needs, as a strict server-side dry run, so the
// example cannot drift from the NosanaSecretBinding CRD or the driver's SecretProviderClass.
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_DIR, parseManifests, type KubeObject } from './helm.js';
import { describeError, establishCrds, kubeConfig, strictClient } from './kube.js';

const DOC = readFileSync(join(REPO_DIR, 'docs/kubernetes.md'), 'utf8');

/** The bodies of `cat <<EOF | kubectl apply -f -` heredocs, with the shell variables the guide exports. */
function appliedManifests(variables: Record<string, string>): string[] {
  const bodies = [...DOC.matchAll(/cat <<EOF \| kubectl apply -f -\n([\s\S]*?)\nEOF\n/g)].map((m) => m[1]!);
  return bodies.map((body) => body.replace(/\$\{(\w+)\}/g, (whole, name: string) => {
    const value = variables[name];
    if (value === undefined) throw new Error(`docs/kubernetes.md uses \${${name}} in a manifest, but the test does not know it`);
    return value;
  }));
}

function secretProviderClassCrd(): KubeObject[] {
  const dir = process.env.NS_TEST_CSI_CRDS;
  if (!dir) throw new Error('NS_TEST_CSI_CRDS is not set: run `bash test/env up csi-driver` (or `npm test`), which fetches the driver and exports it');
  const file = readdirSync(dir).find((f) => f.includes('secretproviderclasses.yaml'));
  if (!file) throw new Error(`no SecretProviderClass CRD in ${dir}`);
  return parseManifests(readFileSync(join(dir, file), 'utf8'));
}

describe('the Kubernetes guide (docs/kubernetes.md)', () => {
  const namespace = `chart-docs-${randomBytes(3).toString('hex')}`;
  afterAll(async () => {
    await strictClient(kubeConfig()).objects.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }).catch(() => undefined);
  });

  it('applies a binding, a SecretProviderClass and a job pod that the API server accepts', async () => {
    const cluster = strictClient(kubeConfig());
    const bindingCrd = parseManifests(readFileSync(join(REPO_DIR, 'crds/nosanasecretbindings.yaml'), 'utf8'));
    await establishCrds(cluster, [...bindingCrd, ...secretProviderClassCrd()] as KubernetesObject[]);
    await cluster.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, false);

    const manifests = appliedManifests({ JOB: 'demo-job-1', OWNER: '4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T' });
    const objects = manifests.flatMap((text) => parseManifests(text)).map((object) => {
      expect(object.metadata.namespace, `${object.kind} in the guide`).toBe('jobs');
      return { ...object, metadata: { ...object.metadata, namespace } };
    });
    expect(objects.map((o) => o.kind)).toEqual(['NosanaSecretBinding', 'SecretProviderClass', 'Pod']);

    const refused: string[] = [];
    for (const object of objects) {
      try {
        await cluster.apply(object as KubernetesObject, true);
      } catch (error) {
        refused.push(`${object.kind}/${object.metadata.name}: ${describeError(error)}`);
      }
    }
    expect(refused).toEqual([]);
  });

  it('reads the env var from the Secret the binding makes, and the file from the class the pod mounts', () => {
    const [binding, providerClass, pod] = appliedManifests({ JOB: 'demo-job-1', OWNER: 'owner' }).map((text) => parseManifests(text)[0]!) as
      [KubeObject, KubeObject, KubeObject];
    const podSpec = pod.spec as {
      containers: { env?: { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[] }[];
      volumes: { csi?: { driver: string; volumeAttributes: Record<string, string> } }[];
    };
    const env = podSpec.containers[0]!.env?.find((e) => e.name === 'OPENAI_KEY')?.valueFrom?.secretKeyRef;
    // The operator names the env Secret after the binding unless spec.secretName says otherwise.
    const bindingSpec = binding.spec as { secretName?: string; secrets: { key: string; env?: string }[] };
    expect(env).toEqual({ name: bindingSpec.secretName ?? binding.metadata.name, key: 'OPENAI_KEY' });
    expect(bindingSpec.secrets.some((s) => s.env === 'OPENAI_KEY')).toBe(true);

    const csi = podSpec.volumes.find((v) => v.csi)?.csi;
    expect(csi?.driver).toBe('secrets-store.csi.k8s.io');
    expect(csi?.volumeAttributes.secretProviderClass).toBe(providerClass.metadata.name);
    expect((providerClass.spec as { provider: string }).provider).toBe('nosana');
  });
});
