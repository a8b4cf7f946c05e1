// The real kube-apiserver that test/env starts, as a client-node KubeConfig; a missing one fails loudly.
import { KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../operator/api/v1alpha1.js';
import { createKubeClients } from '../../operator/kube/clients.js';

export function kubeConfig(): KubeConfig {
  const path = process.env.KUBECONFIG;
  if (!path) throw new Error('KUBECONFIG is not set: run `bash test/env up kube` (or `npm test`), which starts a kube-apiserver and exports it');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** The namespaces tests and benches create; each run makes its own, named with a random suffix. */
const TEST_NAMESPACE = /^(nsb|inj|chart|bench-injector|bench-operator)-/;
/** Older than any run of the suite: a namespace this old belongs to a run that is over. */
const LEFTOVER_AGE_MS = 15 * 60_000;

/**
 * Deletes the namespaces earlier runs left behind. Without this they pile up in test/env's etcd, and the idle
 * apiserver and controller manager work on all of them, which slows every later run and adds noise to benchmarks.
 * Some cannot finish deleting on their own here: pods bound to the CSI test's node wait for a kubelet there is none
 * of, and bindings of older operators keep their finalizer once the operator is gone. So those go first, forcibly.
 */
export async function purgeLeftoverNamespaces(kc: KubeConfig): Promise<number> {
  const kube = createKubeClients(kc); // its patches go out as JSON patches
  const { core, custom } = kube;
  const cutoff = Date.now() - LEFTOVER_AGE_MS;
  const leftovers = (await core.listNamespace()).items
    .map((ns) => ({ name: ns.metadata?.name ?? '', created: ns.metadata?.creationTimestamp?.getTime() ?? Date.now() }))
    .filter((ns) => TEST_NAMESPACE.test(ns.name) && ns.created < cutoff);
  const dropFinalizers = [{ op: 'replace', path: '/metadata/finalizers', value: [] }];
  const purge = async (namespace: string) => {
    for (const pod of (await core.listNamespacedPod({ namespace })).items) {
      await core.deleteNamespacedPod({ namespace, name: pod.metadata!.name!, gracePeriodSeconds: 0 }).catch(() => undefined);
    }
    // test/env's controller manager runs no pvc-protection controller, which would lift this finalizer.
    for (const claim of (await core.listNamespacedPersistentVolumeClaim({ namespace })).items) {
      await core.patchNamespacedPersistentVolumeClaim({ namespace, name: claim.metadata!.name!, body: dropFinalizers }).catch(() => undefined);
    }
    const bindings = await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
      .then((list: { items: { metadata: { name: string } }[] }) => list.items, () => []);
    for (const binding of bindings) {
      await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name: binding.metadata.name, body: dropFinalizers })
        .catch(() => undefined);
    }
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  };
  for (let i = 0; i < leftovers.length; i += 16) await Promise.all(leftovers.slice(i, i + 16).map((ns) => purge(ns.name)));
  kube.close();
  return leftovers.length;
}
