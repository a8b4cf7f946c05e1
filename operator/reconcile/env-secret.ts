// The env Secret of a binding: what it should hold, and whether the one in the cluster already does. It is owned by
// the binding (ownerReferences, for garbage collection where a controller-manager runs) and labelled, so the
// operator's watch sees it and nobody mistakes it for a hand-made Secret.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import {
  API_VERSION, BINDING_LABEL, envNameFor, JOB_ANNOTATION, KIND, MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION,
  type NosanaSecretBinding,
} from '../api/v1alpha1.js';

/**
 * `data` of the env Secret, base64 as the Secret API wants it: each secrets entry under its env name, then each key
 * found by a dataFrom prefix under its transformed name (explicit entries, then earlier dataFrom entries, win a name).
 */
export function envData(binding: NosanaSecretBinding, values: Record<string, string>): Record<string, string> {
  const data: Record<string, string> = {};
  const encode = (value: string | undefined) => Buffer.from(value ?? '', 'utf8').toString('base64');
  for (const entry of binding.spec.secrets ?? []) data[entry.env] = encode(values[entry.key]);
  for (const from of binding.spec.dataFrom ?? []) {
    for (const key of Object.keys(values).filter((k) => k.startsWith(from.prefix)).sort()) {
      const name = envNameFor(key, from);
      if (!(name in data)) data[name] = encode(values[key]);
    }
  }
  return data;
}

export function desiredLabels(binding: NosanaSecretBinding): Record<string, string> {
  return { ...binding.spec.template?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY, [BINDING_LABEL]: labelValue(binding.metadata.name) };
}

export function desiredAnnotations(binding: NosanaSecretBinding): Record<string, string> {
  return { ...binding.spec.template?.metadata?.annotations, [JOB_ANNOTATION]: binding.spec.job, [OWNER_ANNOTATION]: binding.spec.owner };
}

/** spec.template.type, default Opaque. A Secret's type cannot change: a different one means a new Secret. */
export function desiredType(binding: NosanaSecretBinding): string {
  return binding.spec.template?.type ?? 'Opaque';
}

export function newEnvSecret(binding: NosanaSecretBinding, name: string, data: Record<string, string>): V1Secret {
  const { namespace, uid } = binding.metadata;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: desiredType(binding),
    metadata: {
      name, namespace,
      labels: desiredLabels(binding),
      annotations: desiredAnnotations(binding),
      ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: binding.metadata.name, uid, controller: true, blockOwnerDeletion: true }],
    },
    data,
  };
}

/** An env Secret as the operator keeps it: `data` replaced by its digest (see slimSecret). */
export type CachedSecret = Omit<V1Secret, 'data'> & { data?: undefined; dataDigest: string };

/** SHA-256 of a Secret's data map, the same whatever the order of its keys. */
export function dataDigest(data: Record<string, string> | undefined): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(data ?? {}).sort()) hash.update(`${key.length}:${key}${data![key]!.length}:${data![key]}`);
  return hash.digest('base64');
}

/** Turns a Secret into its cached form in place: the values go, their digest stays. */
export function slimSecret(secret: V1Secret | CachedSecret): asserts secret is CachedSecret {
  if (secret.data !== undefined || !('dataDigest' in secret)) {
    (secret as CachedSecret).dataDigest = dataDigest(secret.data);
    delete secret.data;
  }
}

/** Whether `secret` is controlled by this binding (and so the operator's to change or delete). */
export function isControlledBy(secret: V1Secret | CachedSecret, binding: NosanaSecretBinding): boolean {
  return (secret.metadata?.ownerReferences ?? []).some((ref) => ref.controller === true && ref.uid === binding.metadata.uid);
}

/** JSON patch that brings a controlled Secret to the desired data, labels and annotations; undefined when it is. */
export function envSecretPatch(secret: CachedSecret, binding: NosanaSecretBinding, data: Record<string, string>): object[] | undefined {
  const labels = { ...secret.metadata?.labels, ...desiredLabels(binding) };
  const annotations = { ...secret.metadata?.annotations, ...desiredAnnotations(binding) };
  const same = secret.dataDigest === dataDigest(data) && sameMap(secret.metadata?.labels ?? {}, labels) &&
    sameMap(secret.metadata?.annotations ?? {}, annotations);
  if (same) return undefined;
  return [
    { op: 'test', path: '/metadata/uid', value: secret.metadata?.uid },
    { op: 'add', path: '/data', value: data },
    { op: 'add', path: '/metadata/labels', value: labels },
    { op: 'add', path: '/metadata/annotations', value: annotations },
  ];
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/** A binding name as a label value (names longer than a label value allows are cut; the annotation keeps the job). */
function labelValue(name: string): string {
  return name.length <= 63 ? name : name.slice(0, 63).replace(/[^A-Za-z0-9]+$/, '');
}
