// spec.rolloutOnChange: when a binding's env Secret gets new values, restart the workloads of its namespace whose pods
// use that Secret, as `kubectl rollout restart` does (a new pod template annotation), so no pod keeps stale env vars.
// Only Deployments, StatefulSets and DaemonSets that name the Secret are touched; a bare Pod cannot be restarted.
import type { V1PodSpec } from '@kubernetes/client-node';
import { RESTARTED_AT_ANNOTATION } from '../api/v1alpha1.js';
import type { KubeClients } from '../kube/clients.js';

/** Whether a pod spec reads the Secret: envFrom, an env secretKeyRef, or a secret (or projected) volume. */
export function usesSecret(pod: V1PodSpec | undefined, secret: string): boolean {
  if (!pod) return false;
  const containers = [...pod.containers, ...(pod.initContainers ?? [])];
  const inContainers = containers.some((c) =>
    (c.envFrom ?? []).some((source) => source.secretRef?.name === secret) ||
    (c.env ?? []).some((variable) => variable.valueFrom?.secretKeyRef?.name === secret));
  const inVolumes = (pod.volumes ?? []).some((volume) => volume.secret?.secretName === secret ||
    (volume.projected?.sources ?? []).some((source) => source.secret?.name === secret));
  return inContainers || inVolumes;
}

/** Restarts every workload of the namespace that uses the Secret; returns them as `Kind/name`. */
export async function restartWorkloadsUsing(kube: KubeClients, namespace: string, secret: string, now: Date): Promise<string[]> {
  const patch = [{ op: 'add', path: '/spec/template/metadata/annotations', value: {} }];
  const restarted: string[] = [];
  const kinds = [
    { kind: 'Deployment', list: () => kube.apps.listNamespacedDeployment({ namespace }),
      patch: (name: string, body: object[]) => kube.apps.patchNamespacedDeployment({ name, namespace, body }) },
    { kind: 'StatefulSet', list: () => kube.apps.listNamespacedStatefulSet({ namespace }),
      patch: (name: string, body: object[]) => kube.apps.patchNamespacedStatefulSet({ name, namespace, body }) },
    { kind: 'DaemonSet', list: () => kube.apps.listNamespacedDaemonSet({ namespace }),
      patch: (name: string, body: object[]) => kube.apps.patchNamespacedDaemonSet({ name, namespace, body }) },
  ];
  for (const { kind, list, patch: apply } of kinds) {
    for (const workload of (await list()).items) {
      const template = workload.spec?.template;
      if (!usesSecret(template?.spec, secret)) continue;
      const name = workload.metadata!.name!;
      // JSON patch: create the annotations map if the template has none, then set ours.
      const body = [
        ...(template?.metadata?.annotations ? [] : patch),
        { op: 'add', path: `/spec/template/metadata/annotations/${RESTARTED_AT_ANNOTATION.replace('/', '~1')}`, value: now.toISOString() },
      ];
      await apply(name, body);
      restarted.push(`${kind}/${name}`);
    }
  }
  return restarted;
}
