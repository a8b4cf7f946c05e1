// The operator's env Secrets, watched one namespace at a time. The operator holds no cluster-wide right on Secrets
// (that would cover the server's own keys): a namespace opts in by binding the operator's Secrets ClusterRole there
// (the chart does it for operator.namespaces). A namespace's watch starts with the first binding seen in it, after a
// check that the operator may list its Secrets; without that right the binding says so in its Ready condition.
// The cache keeps a digest of each Secret's data instead of the values: the operator needs only to know whether they
// are what they should be, and ten thousand Secrets' values would otherwise sit in its heap for as long as it runs.
import type { Logger } from '../../common/log.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../api/v1alpha1.js';
import { slimSecret, type CachedSecret } from '../reconcile/env-secret.js';
import { statusOf, type KubeClients } from './clients.js';
import { ResilientInformer } from './informer.js';

/** The operator may not list or watch Secrets in this namespace (RBAC): it was not opted in. */
export class SecretsForbiddenError extends Error {
  override name = 'SecretsForbiddenError';
}

const LABEL_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export class SecretWatches {
  private readonly watches = new Map<string, { informer: ResilientInformer<CachedSecret>; started: Promise<void> }>();
  /** The cached Secrets by the uid of the binding that controls them (`namespace/name`), so a reconcile finds its own without a scan. */
  private readonly byController = new Map<string, Set<string>>();
  private readonly controllerOf = new Map<string, string>();
  private stopped = false;

  constructor(
    private readonly kube: KubeClients,
    private readonly log: Logger,
    /** Called with every add, update and delete of a watched Secret. */
    private readonly onChange: (secret: CachedSecret, deleted: boolean) => void,
  ) {}

  /** Resolves once `namespace`'s env Secrets are in the cache; throws SecretsForbiddenError without the right. */
  async ensure(namespace: string): Promise<void> {
    const existing = this.watches.get(namespace);
    if (existing) return existing.started;
    try {
      await this.kube.core.listNamespacedSecret({ namespace, labelSelector: LABEL_SELECTOR, limit: 1 });
    } catch (error) {
      if (statusOf(error) === 403) throw new SecretsForbiddenError(`the operator may not manage Secrets in namespace ${namespace}`);
      throw error;
    }
    if (this.watches.has(namespace) || this.stopped) return this.watches.get(namespace)?.started;
    const informer = new ResilientInformer<CachedSecret>({
      kubeConfig: this.kube.kubeConfig, log: this.log, labelSelector: LABEL_SELECTOR,
      path: `/api/v1/namespaces/${namespace}/secrets`,
      list: () => this.kube.core.listNamespacedSecret({ namespace, labelSelector: LABEL_SELECTOR }) as Promise<{ items: CachedSecret[] }>,
      slim: slimSecret,
    });
    for (const verb of ['add', 'update', 'delete'] as const) {
      informer.on(verb, (secret) => {
        this.index(secret, verb === 'delete');
        this.onChange(secret, verb === 'delete');
      });
    }
    const started = informer.start();
    this.watches.set(namespace, { informer, started });
    return started;
  }

  get(name: string, namespace: string): CachedSecret | undefined {
    return this.watches.get(namespace)?.informer.cache.get(name, namespace);
  }

  /** The cached Secrets of `namespace` whose controller (ownerReference with controller: true) has this uid. */
  controlledBy(namespace: string, uid: string): CachedSecret[] {
    const cache = this.watches.get(namespace)?.informer.cache;
    const names = this.byController.get(uid);
    if (!cache || !names) return [];
    return [...names].map((key) => cache.get(key.slice(key.indexOf('/') + 1), namespace)).filter((s) => s !== undefined);
  }

  private index(secret: CachedSecret, deleted: boolean): void {
    const key = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
    const controller = deleted ? undefined : secret.metadata?.ownerReferences?.find((ref) => ref.controller === true)?.uid;
    const previous = this.controllerOf.get(key);
    if (previous === controller) return;
    if (previous !== undefined) {
      const names = this.byController.get(previous);
      names?.delete(key);
      if (names?.size === 0) this.byController.delete(previous);
      this.controllerOf.delete(key);
    }
    if (controller !== undefined) {
      this.controllerOf.set(key, controller);
      const names = this.byController.get(controller) ?? new Set<string>();
      names.add(key);
      this.byController.set(controller, names);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.watches.values()].map((watch) => watch.informer.stop()));
  }
}
