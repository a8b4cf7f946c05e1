// The controller loop: watches with local caches (the bindings, and per namespace the env Secrets it keeps), a work
// queue fed by their events, and workers that reconcile one binding at a time each. A controller runs only while its
// replica leads; it is built anew on every gain of leadership.
import type { AllowedEndpoints } from '../common/endpoints.js';
import type { Logger } from '../common/log.js';
import {
  FORCE_SYNC_ANNOTATION, GROUP, MANAGED_BY, MANAGED_BY_LABEL, PLURAL, readyCondition, Reason, VERSION, type NosanaSecretBinding,
} from './api/v1alpha1.js';
import type { EventRecorder } from './events.js';
import { messageOf, type KubeClients } from './kube/clients.js';
import { ResilientInformer } from './kube/informer.js';
import { SecretWatches } from './kube/secret-watches.js';
import type { BindingCondition, OperatorMetrics } from './metrics.js';
import { WorkQueue } from './queue.js';
import { Reconciler } from './reconcile/binding.js';
import type { CachedSecret } from './reconcile/env-secret.js';
import { DELETED, OwnWrites } from './reconcile/own-writes.js';
import type { NodeSessions } from '../common/node-sessions.js';

export interface ControllerOptions {
  kube: KubeClients;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  workers: number;
  /** The servers bindings may name; the first is the default. */
  endpoints: AllowedEndpoints;
  sessions: NodeSessions;
  events: EventRecorder;
  metrics: OperatorMetrics;
  log: Logger;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

const keyOf = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;

export class Controller {
  readonly queue: WorkQueue;
  readonly bindings: ResilientInformer<NosanaSecretBinding>;
  private readonly secrets: SecretWatches;
  private readonly reconciler: Reconciler;
  /** What of each binding, when it changes, calls for a reconcile (status-only updates do not). */
  private readonly seen = new Map<string, string>();
  private readonly ownWrites = new OwnWrites((bindingKey) => this.queue.add(bindingKey));
  private workers: Promise<void>[] = [];

  constructor(private readonly options: ControllerOptions) {
    const { kube, namespace, log } = options;
    this.queue = new WorkQueue({ backoffBaseMs: options.backoffBaseMs, backoffMaxMs: options.backoffMaxMs });
    const scope = namespace === undefined ? '' : `/namespaces/${namespace}`;

    this.bindings = new ResilientInformer<NosanaSecretBinding>({
      kubeConfig: kube.kubeConfig, log,
      path: `/apis/${GROUP}/${VERSION}${scope}/${PLURAL}`,
      // The custom objects API answers untyped JSON: the list of this CRD's objects.
      list: async () => (namespace === undefined
        ? kube.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : kube.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace })
      ) as Promise<{ items: NosanaSecretBinding[] }>,
      // `kubectl apply` keeps a whole copy of the object in this annotation; the operator never reads it.
      slim: (binding) => { delete binding.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']; },
    });
    this.secrets = new SecretWatches(kube, log, (secret, deleted) => this.onSecret(secret, deleted));

    this.reconciler = new Reconciler({
      kube, secrets: this.secrets, sessions: options.sessions, events: options.events,
      endpoints: options.endpoints, log,
      ownWrites: this.ownWrites,
    });

    this.bindings.on('add', (binding) => this.onBinding(binding));
    this.bindings.on('update', (binding) => this.onBinding(binding));
    this.bindings.on('delete', (binding) => {
      const key = keyOf(binding.metadata.namespace, binding.metadata.name);
      this.seen.delete(key);
      this.queue.remove(key);
    });
  }

  /** Fills the bindings cache, then starts the workers; the initial list queues every binding once. */
  async start(): Promise<void> {
    await this.bindings.start();
    this.workers = Array.from({ length: this.options.workers }, () => this.work());
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all([this.bindings.stop(), this.secrets.stop()]);
    await Promise.all(this.workers);
  }

  /** Ready status and reason of every cached binding, for the bindings gauges. */
  *conditions(): Iterable<BindingCondition> {
    for (const binding of this.bindings.cache.list()) {
      const ready = readyCondition(binding);
      const { namespace, name } = binding.metadata;
      yield ready ? { namespace, name, status: ready.status, reason: ready.reason } : { namespace, name, status: 'Unknown', reason: Reason.Pending };
    }
  }

  private onBinding(binding: NosanaSecretBinding): void {
    const { metadata } = binding;
    const key = keyOf(metadata.namespace, metadata.name);
    // Our own status and finalizer writes leave the generation alone, so they cause no reconcile. A new force-sync
    // annotation value does (annotations do not move the generation either): the values are read again at once.
    const fingerprint = `${metadata.generation}|${metadata.deletionTimestamp ?? ''}|${metadata.annotations?.[FORCE_SYNC_ANNOTATION] ?? ''}`;
    if (this.seen.get(key) === fingerprint) return;
    this.seen.set(key, fingerprint);
    this.queue.add(key);
  }

  /** An env Secret changed: unless it was our own write, reconcile its binding (someone edited or deleted it). */
  private onSecret(secret: CachedSecret, deleted: boolean): void {
    const { namespace, name, resourceVersion, ownerReferences } = secret.metadata ?? {};
    if (this.ownWrites.isOwn(keyOf(namespace, name), deleted ? DELETED : resourceVersion ?? '')) return;
    const owner = ownerReferences?.find((ref) => ref.controller === true && ref.kind === 'NosanaSecretBinding');
    if (owner) this.queue.add(keyOf(namespace, owner.name));
  }

  private async work(): Promise<void> {
    const { metrics, log } = this.options;
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      const [namespace, name] = key.split('/') as [string, string];
      const binding = this.bindings.cache.get(name, namespace);
      if (!binding) {
        this.queue.forget(key);
        this.queue.done(key);
        continue;
      }
      const started = process.hrtime.bigint();
      let result: 'success' | 'error' = 'error';
      try {
        const outcome = await this.reconciler.reconcile(binding);
        result = outcome.result;
        if (outcome.result === 'error') metrics.reconcileErrors.inc({ reason: outcome.reason });
        if (outcome.retry) {
          this.queue.addRateLimited(key);
        } else {
          this.queue.forget(key);
          if (outcome.requeueAfterMs !== undefined) this.queue.addAfter(key, outcome.requeueAfterMs);
        }
      } catch (error) {
        // The Kubernetes API failed under us (restarting, conflict, stale cache): try again after a backoff.
        metrics.reconcileErrors.inc({ reason: 'KubernetesApiError' });
        const delay = this.queue.addRateLimited(key);
        log.warn({ namespace, binding: name, err: messageOf(error), retryInMs: Math.round(delay) }, 'reconcile failed');
      } finally {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        log.debug({ namespace, binding: name, result, ms: Math.round(seconds * 1000) }, 'reconciled');
        metrics.reconciles.inc({ result });
        metrics.reconcileDuration.observe({ result }, seconds);
        this.queue.done(key);
      }
    }
  }
}
