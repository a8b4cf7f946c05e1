// Why the injector reads the SecretProviderClass itself.
//
// The driver builds `attributes` in NodePublishVolume (pkg/secrets-store/nodeserver.go) as: start from the
// SecretProviderClass `spec.parameters`, then copy EVERY volume attribute the kubelet sent over it
// (`maps.Copy(parameters, attrib)` in v1.6; a `for k, v := range attrib` loop before). The kubelet's attributes are the pod's own `volumeAttributes`
// with the `csi.storage.k8s.io/pod.*` and `serviceAccount.*` keys merged in last (so those cannot be forged by the
// pod). So in the merged map a pod's `job: other-job` silently wins over the class's `job`, and the two cannot be
// told apart by looking at the map. Nodes hold one node key for every job they run, so a pod that could pick its job
// would read other jobs' secrets (and a pod that could pick `endpoint` would hand the node's signed login to a
// server of its choosing).
//
// The rule: the SecretProviderClass is the authority. The injector fetches it from the Kubernetes API, from the
// namespace the kubelet reported for the pod and by the name the pod gave (exactly the object the driver read), and
// refuses the mount with ParameterOverride unless every attribute, except the kubelet's `csi.storage.k8s.io/*` keys
// and the pod's `secretProviderClass`, is present in the class's parameters with the same value. A pod may still
// choose among the classes of its own namespace: that is the driver's own trust boundary.
import { ApiException, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { MountError, MountErrorCode } from './errors.js';
import { POD_INFO_PREFIX, SECRET_PROVIDER_CLASS } from './parameters.js';

export const SPC_GROUP = 'secrets-store.csi.x-k8s.io';
export const SPC_VERSION = 'v1';
export const SPC_PLURAL = 'secretproviderclasses';
export const PROVIDER_NAME = 'nosana';

export interface ClassParameters {
  provider: string;
  parameters: Record<string, string>;
}

/** Reads SecretProviderClasses, cached briefly so rotation polls and bursts of pods do not each call the API. */
export class SecretProviderClasses {
  private readonly api: CustomObjectsApi;
  private readonly cache = new Map<string, { at: number; read: Promise<ClassParameters> }>();

  constructor(kubeConfig: KubeConfig, private readonly ttlMs = 5_000) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  get(namespace: string, name: string, fresh = false): Promise<ClassParameters> {
    const id = `${namespace}/${name}`;
    const cached = this.cache.get(id);
    if (!fresh && cached && Date.now() - cached.at < this.ttlMs) return cached.read;
    const read = this.fetch(namespace, name);
    this.cache.set(id, { at: Date.now(), read });
    read.catch(() => this.cache.delete(id));
    return read;
  }

  private async fetch(namespace: string, name: string): Promise<ClassParameters> {
    let object: { spec?: { provider?: unknown; parameters?: Record<string, unknown> } };
    try {
      object = await this.api.getNamespacedCustomObject({ group: SPC_GROUP, version: SPC_VERSION, namespace, plural: SPC_PLURAL, name });
    } catch (error) {
      const status = error instanceof ApiException ? error.code : undefined;
      const reason = status === 404 ? 'does not exist'
        : status === 403 ? 'may not be read by the injector (RBAC: get secretproviderclasses)'
        : `could not be read (${status ?? (error instanceof Error ? error.message : String(error))})`;
      throw new MountError(MountErrorCode.SecretProviderClassUnavailable, `SecretProviderClass ${namespace}/${name} ${reason}`);
    }
    const parameters: Record<string, string> = {};
    for (const [key, value] of Object.entries(object.spec?.parameters ?? {})) {
      if (typeof value === 'string') parameters[key] = value;
    }
    return { provider: typeof object.spec?.provider === 'string' ? object.spec.provider : '', parameters };
  }

  /** Throws ParameterOverride (naming the attribute, never its value) unless the attributes are the class's own. */
  async check(namespace: string, attributes: Record<string, string>): Promise<void> {
    const name = attributes[SECRET_PROVIDER_CLASS] ?? '';
    let spc = await this.get(namespace, name);
    let overridden = overriddenAttribute(attributes, spc.parameters);
    // A class edited within the cache's lifetime must not look like an override: re-read once before refusing.
    if (overridden !== undefined) {
      spc = await this.get(namespace, name, true);
      overridden = overriddenAttribute(attributes, spc.parameters);
    }
    if (spc.provider !== PROVIDER_NAME) {
      throw new MountError(MountErrorCode.BadParameters, `SecretProviderClass ${namespace}/${name} has provider ${JSON.stringify(spc.provider)}, not "${PROVIDER_NAME}"`);
    }
    if (overridden !== undefined) {
      throw new MountError(MountErrorCode.ParameterOverride,
        `volume attribute "${overridden}" is not the SecretProviderClass ${namespace}/${name} parameter: pods may not set or override provider parameters`);
    }
  }
}

/** The first attribute that the class's parameters do not hold with the same value, if any. */
export function overriddenAttribute(attributes: Record<string, string>, parameters: Record<string, string>): string | undefined {
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith(POD_INFO_PREFIX) || key === SECRET_PROVIDER_CLASS) continue;
    if (!Object.hasOwn(parameters, key) || parameters[key] !== value) return key;
  }
  return undefined;
}
