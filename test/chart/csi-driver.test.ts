// The injector only works beside a Secrets Store CSI driver installed with the right settings. The chart ships those
// settings as csi-driver-values.yaml; these tests render the driver's own chart (the pinned version test/env builds)
// with them, and check the driver will rotate and dial the socket where the injector puts it.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART_DIR, KUBE_VERSION, find, helm, parseManifests, type KubeObject } from './helm.js';
import { apply, describeError, kubeConfig, strictClient } from './kube.js';

const PAIRING_VALUES = join(CHART_DIR, 'csi-driver-values.yaml');

/** The secrets-store-csi-driver chart from the Go module test/env builds the driver from. */
function driverChart(): string {
  const crds = process.env.NS_TEST_CSI_CRDS;
  if (!crds) throw new Error('NS_TEST_CSI_CRDS is not set: run `bash test/env up csi-driver` (or `npm test`), which fetches the driver and exports it');
  return resolve(crds, '../../../charts/secrets-store-csi-driver');
}

async function renderDriver(namespace: string): Promise<KubeObject[]> {
  const result = await helm(['template', 'csi', driverChart(), '--namespace', namespace, '--kube-version', KUBE_VERSION, '--include-crds', '-f', PAIRING_VALUES]);
  if (result.code !== 0) throw new Error(`helm template of the driver chart failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

const ours = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as { injector: { providersDir: string } };

describe('the Secrets Store CSI driver installed with csi-driver-values.yaml', () => {
  it('hands the injector no pod service account tokens, which it does not use', async () => {
    const csiDriver = find(await renderDriver('kube-system'), 'CSIDriver');
    expect((csiDriver.spec as { tokenRequests?: unknown[] }).tokenRequests ?? []).toEqual([]);
    // and the file leaves tokenRequests unset, so it does not wipe those another provider asked for
    expect(parse(readFileSync(PAIRING_VALUES, 'utf8'))).not.toHaveProperty('tokenRequests');
    // The pod info the injector does rely on (pod name, namespace, uid) is always sent.
    expect((csiDriver.spec as { podInfoOnMount?: boolean }).podInfoOnMount).toBe(true);
  });

  it('rotates mounted secrets and dials the provider socket where the injector creates it', async () => {
    const daemonSet = find(await renderDriver('kube-system'), 'DaemonSet', 'csi-secrets-store-csi-driver');
    const pod = (daemonSet.spec as { template: { spec: { containers: { name: string; args?: string[] }[]; volumes: { name: string; hostPath?: { path: string } }[] } } }).template.spec;
    const args = pod.containers.find((c) => c.name === 'secrets-store')?.args ?? [];
    expect(args).toContain('--enable-secret-rotation=true');
    expect(args).toContain(`--provider-volume=${ours.injector.providersDir}`);
    expect(pod.volumes.find((v) => v.name === 'providers-dir')?.hostPath?.path).toBe(ours.injector.providersDir);
  });

  describe('on a real kube-apiserver', () => {
    const namespace = `chart-csi-${randomBytes(3).toString('hex')}`;
    afterAll(async () => {
      await strictClient(kubeConfig()).objects.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }).catch(() => undefined);
    });

    it('is accepted by the API server, object by object (server-side dry run)', async () => {
      const client = strictClient(kubeConfig());
      await apply(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, false);
      const objects = await renderDriver(namespace);
      const refused: string[] = [];
      // CRDs first, dry run too: the driver's kinds are only checked for shape here, not served.
      for (const object of objects.filter((o) => !o.kind.startsWith('SecretProviderClass'))) {
        try {
          await apply(client, object as KubernetesObject, true);
        } catch (error) {
          refused.push(`${object.kind}/${object.metadata.name}: ${describeError(error)}`);
        }
      }
      expect(refused).toEqual([]);
    });
  });
});
