// One reconcile of one NosanaSecretBinding: bring the cluster to what the binding says, and make its status say what
// is true. In order: drop the finalizer older operators held, and stop if it is being deleted (garbage collection
// deletes the env Secret, whose ownerReference names the binding); clean up if the job has finished (and delete the
// binding after its TTL); check the endpoint; read the node key; get the job's token (naming spec.owner); read the granted keys; keep the env Secret;
// write the status; emit an Event when the Ready condition changes. Values pass from the secrets server to the
// Secret and nowhere else: not to logs, status, Events or errors.
import type { V1Secret } from '@kubernetes/client-node';
import type { SecretValue } from '../../common/client.js';
import { EndpointNotAllowedError, type AllowedEndpoints } from '../../common/endpoints.js';
import type { Logger } from '../../common/log.js';
import { ServerCallError, type NodeSessions } from '../../common/node-sessions.js';
import { parseKeypairFile, type Keypair } from '../../common/login.js';
import { parseDuration } from '../api/duration.js';
import {
  DEFAULT_CREDENTIALS_KEY, DEFAULT_REFRESH_INTERVAL, envSecretName, GROUP, LEGACY_FINALIZER, PLURAL, readyCondition, Reason, VERSION,
  type NosanaSecretBinding, type NosanaSecretBindingStatus, type ResolvedKey,
} from '../api/v1alpha1.js';
import type { EventRecorder } from '../events.js';
import { messageOf, statusOf, type KubeClients } from '../kube/clients.js';
import { SecretsForbiddenError, type SecretWatches } from '../kube/secret-watches.js';
import { desiredType, envData, envSecretPatch, isControlledBy, newEnvSecret, slimSecret, type CachedSecret } from './env-secret.js';
import { restartWorkloadsUsing } from './rollout.js';
import { DELETED, type OwnWrites } from './own-writes.js';
import { buildReadyCondition, isTransition, sameStatus } from './status.js';

export interface Outcome {
  result: 'success' | 'error';
  /** The Ready reason the reconcile ended with. */
  reason: string;
  /** Retry with backoff (a failure that may clear by itself). */
  retry?: boolean;
  /** Reconcile again after this long (refresh, TTL). */
  requeueAfterMs?: number;
}

export interface ReconcilerOptions {
  kube: KubeClients;
  /** The operator's own env Secrets, from its watch of each namespace it may manage Secrets in. */
  secrets: SecretWatches;
  sessions: NodeSessions;
  events: EventRecorder;
  /** The servers bindings may name; the first is the default. */
  endpoints: AllowedEndpoints;
  log: Logger;
  /** Every write to an env Secret goes through it, so its watch echo is not taken for someone else's change. */
  ownWrites: OwnWrites;
}

/** A failure with its Ready reason; the message is safe to show (names keys and objects, never values). */
class BindingProblem extends Error {
  constructor(readonly reason: Reason, message: string, readonly retry = true) {
    super(message);
  }
}

/** The secrets server answered 429: too many logins or job token exchanges by the node key in its window. */
class ServerThrottled extends Error {}

/** The reconcile error reason (metrics only, never a Ready reason) of a throttled read. */
export const THROTTLED = 'ServerThrottled';

/**
 * How long a node keypair read from its Secret is used before it is read again: many bindings share one node key,
 * and a replaced key takes effect within this time.
 */
const CREDENTIALS_CACHE_MS = 30_000;

export class Reconciler {
  private readonly credentials = new Map<string, { keypair: Keypair; readAt: number }>();

  constructor(private readonly options: ReconcilerOptions) {}

  async reconcile(binding: NosanaSecretBinding): Promise<Outcome> {
    const log = this.options.log.child({ namespace: binding.metadata.namespace, binding: binding.metadata.name, job: binding.spec.job });
    // No finalizer: one would outlive the operator (helm uninstall before the bindings go) and keep bindings
    // Terminating for good. The env Secret's ownerReference lets the garbage collector delete it with the binding.
    if (binding.metadata.deletionTimestamp) return this.deleted(binding, log);
    await this.releaseLegacyFinalizer(binding, log);
    try {
      await this.options.secrets.ensure(binding.metadata.namespace);
    } catch (error) {
      if (!(error instanceof SecretsForbiddenError)) throw error;
      return this.fail(binding, new BindingProblem(Reason.SecretsNotPermitted,
        `${error.message}: bind the operator's Secrets ClusterRole to its ServiceAccount in this namespace (chart: list it in operator.namespaces)`), log);
    }
    if (binding.spec.jobFinished) return this.finish(binding, log);

    const now = new Date();
    let refreshMs: number;
    try {
      refreshMs = parseDuration(binding.spec.refreshInterval ?? DEFAULT_REFRESH_INTERVAL);
      if (binding.spec.ttlAfterFinished !== undefined) parseDuration(binding.spec.ttlAfterFinished);
    } catch (error) {
      return this.fail(binding, new BindingProblem(Reason.InvalidSpec, (error as Error).message, false), log);
    }

    let values: Record<string, SecretValue>;
    try {
      // The endpoint first: a server not on the allow-list gets nothing, not even a login signed with the node key.
      const endpoint = this.endpointOf(binding);
      const keypair = await this.nodeKeypair(binding);
      values = await this.readValues(binding, endpoint, keypair);
    } catch (error) {
      if (error instanceof ServerThrottled) {
        // The server's login limit, not a fault of the binding: its status stays as it is (no Ready=False, no Warning,
        // no write to undo afterwards), and it is tried again after the backoff.
        log.debug({ err: error.message }, 'secrets server throttled the job token exchange: retrying later');
        return { result: 'error', reason: THROTTLED, retry: true };
      }
      if (error instanceof BindingProblem) return this.fail(binding, error, log);
      throw error;
    }

    const name = envSecretName(binding);
    const data = envData(binding, Object.fromEntries(Object.entries(values).map(([key, v]) => [key, v.value])));
    const hasEnv = Object.keys(data).length > 0;
    let change: 'created' | 'updated' | 'unchanged' = 'unchanged';
    try {
      if (hasEnv) change = await this.applyEnvSecret(binding, name, data);
    } catch (error) {
      if (error instanceof BindingProblem) return this.fail(binding, error, log);
      throw error;
    }
    await this.deleteEnvSecrets(binding, hasEnv ? name : undefined);

    const keys: ResolvedKey[] = Object.values(values).map((v) => ({ key: v.key, version: v.version }))
      .sort((a, b) => a.key.localeCompare(b.key));
    const variables = Object.keys(data).length;
    const message = hasEnv
      ? `${keys.length} key(s) resolved; Secret ${name} holds ${variables} variable(s)`
      : `${keys.length} key(s) resolved; no env entries, so no Secret`;
    const condition = buildReadyCondition(binding, 'True', Reason.SecretsResolved, message, now);
    await this.writeStatus(binding, {
      observedGeneration: binding.metadata.generation,
      secretName: hasEnv ? name : undefined,
      lastSyncTime: now.toISOString(),
      keys,
      conditions: [condition],
    });
    if (isTransition(binding, condition)) {
      await this.options.events.record(binding, 'Normal', Reason.SecretsResolved, message);
    } else if (change === 'updated') {
      const changed = keys.filter((k) => !binding.status?.keys?.some((old) => old.key === k.key && old.version === k.version));
      await this.options.events.record(binding, 'Normal', 'SecretUpdated',
        `Secret ${name} updated: ${changed.map((k) => `${k.key} v${k.version}`).join(', ') || 'restored to the current values'}`);
    }
    if (change !== 'unchanged') log.info({ secret: name, change, versions: keys }, `env Secret ${change}`);
    if (change === 'updated' && binding.spec.rolloutOnChange) await this.rollout(binding, name, now, log);
    return { result: 'success', reason: Reason.SecretsResolved, requeueAfterMs: refreshMs };
  }

  /** The binding is being deleted: nothing to do but let go of an older operator's finalizer. */
  private async deleted(binding: NosanaSecretBinding, log: Logger): Promise<Outcome> {
    await this.releaseLegacyFinalizer(binding, log);
    return { result: 'success', reason: 'Deleted' };
  }

  /** Removes the finalizer an older operator put on the binding, if it is there. */
  private async releaseLegacyFinalizer(binding: NosanaSecretBinding, log: Logger): Promise<void> {
    const index = (binding.metadata.finalizers ?? []).indexOf(LEGACY_FINALIZER);
    if (index < 0) return;
    await this.patchBinding(binding, [
      { op: 'test', path: `/metadata/finalizers/${index}`, value: LEGACY_FINALIZER },
      { op: 'remove', path: `/metadata/finalizers/${index}` },
    ]);
    log.info('finalizer of an older operator removed');
  }

  /** The job has ended: no more values in the cluster; after the TTL, the binding goes too. */
  private async finish(binding: NosanaSecretBinding, log: Logger): Promise<Outcome> {
    const now = new Date();
    const deleted = await this.deleteEnvSecrets(binding, undefined);
    const finishedAt = binding.status?.finishedAt ?? now.toISOString();
    const previous = readyCondition(binding);
    const message = previous?.reason === Reason.JobFinished
      ? previous.message
      : deleted.length > 0 ? `the job has finished: deleted Secret ${deleted.join(', ')}` : 'the job has finished';
    const condition = buildReadyCondition(binding, 'False', Reason.JobFinished, message, now);
    await this.writeStatus(binding, {
      observedGeneration: binding.metadata.generation, finishedAt, keys: binding.status?.keys, lastSyncTime: binding.status?.lastSyncTime,
      conditions: [condition],
    });
    if (isTransition(binding, condition)) {
      await this.options.events.record(binding, 'Normal', Reason.JobFinished, message);
      log.info({ deleted }, 'job finished: env Secret deleted');
    }
    if (binding.spec.ttlAfterFinished === undefined) return { result: 'success', reason: Reason.JobFinished };
    let ttlMs: number;
    try {
      ttlMs = parseDuration(binding.spec.ttlAfterFinished);
    } catch (error) {
      return this.fail(binding, new BindingProblem(Reason.InvalidSpec, (error as Error).message, false), log);
    }
    const remaining = Date.parse(finishedAt) + ttlMs - now.getTime();
    if (remaining > 0) return { result: 'success', reason: Reason.JobFinished, requeueAfterMs: remaining };
    const { name, namespace } = binding.metadata;
    try {
      await this.options.kube.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name });
      log.info('ttlAfterFinished passed: binding deleted');
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
    return { result: 'success', reason: Reason.JobFinished };
  }

  private async fail(binding: NosanaSecretBinding, problem: BindingProblem, log: Logger): Promise<Outcome> {
    const now = new Date();
    // Access revoked: the values must leave the cluster too. Other failures keep the last good values in place.
    const secretGone = problem.reason === Reason.AccessDenied;
    if (secretGone) await this.deleteEnvSecrets(binding, undefined);
    const condition = buildReadyCondition(binding, 'False', problem.reason, problem.message, now);
    const previous = binding.status ?? {};
    await this.writeStatus(binding, {
      observedGeneration: binding.metadata.generation,
      secretName: secretGone ? undefined : previous.secretName,
      lastSyncTime: previous.lastSyncTime,
      keys: secretGone ? undefined : previous.keys,
      conditions: [condition],
    });
    if (isTransition(binding, condition)) {
      await this.options.events.record(binding, 'Warning', problem.reason, problem.message);
      log.warn({ reason: problem.reason, err: problem.message }, 'binding not ready');
    }
    return { result: 'error', reason: problem.reason, retry: problem.retry };
  }

  private async nodeKeypair(binding: NosanaSecretBinding): Promise<Keypair> {
    const { name, key = DEFAULT_CREDENTIALS_KEY } = binding.spec.nodeCredentialsRef;
    const namespace = binding.metadata.namespace;
    const id = `${namespace}/${name}/${key}`;
    const cached = this.credentials.get(id);
    if (cached && Date.now() - cached.readAt < CREDENTIALS_CACHE_MS) return cached.keypair;
    let secret: V1Secret;
    try {
      secret = await this.options.kube.core.readNamespacedSecret({ name, namespace });
    } catch (error) {
      if (statusOf(error) === 404) {
        throw new BindingProblem(Reason.CredentialsNotFound, `node credentials Secret ${namespace}/${name} does not exist: create it with the node's keypair under key ${key}`);
      }
      throw error;
    }
    const encoded = secret.data?.[key];
    if (encoded === undefined) {
      throw new BindingProblem(Reason.CredentialsNotFound, `node credentials Secret ${namespace}/${name} has no key ${key}: put the node's keypair there or set nodeCredentialsRef.key`);
    }
    let keypair: Keypair;
    try {
      keypair = parseKeypairFile(Buffer.from(encoded, 'base64').toString('utf8'), `node credentials Secret ${namespace}/${name} key ${key}`);
    } catch (error) {
      throw new BindingProblem(Reason.InvalidCredentials, (error as Error).message);
    }
    this.credentials.set(id, { keypair, readAt: Date.now() });
    return keypair;
  }

  private endpointOf(binding: NosanaSecretBinding): string {
    try {
      return this.options.endpoints.choose(binding.spec.endpoint);
    } catch (error) {
      // Only a change of the spec (or of the operator's settings) can clear it: no retry.
      if (error instanceof EndpointNotAllowedError) throw new BindingProblem(Reason.EndpointNotAllowed, `spec.${error.message}`, false);
      throw error;
    }
  }

  /** Every key of the binding, read with the job's token. */
  private async readValues(binding: NosanaSecretBinding, endpoint: string, keypair: Keypair): Promise<Record<string, SecretValue>> {
    const { job, owner } = binding.spec;
    try {
      const keys = [...new Set((binding.spec.secrets ?? []).map((s) => s.key))];
      const prefixes = (binding.spec.dataFrom ?? []).map((from) => from.prefix);
      return await this.options.sessions.readJobSecrets(endpoint, keypair, job, owner, keys, prefixes);
    } catch (error) {
      if (!(error instanceof ServerCallError)) throw error;
      if (error.unreachable) throw new BindingProblem(Reason.ServerUnreachable, error.message);
      if (error.status === 429) throw new ServerThrottled(`${endpoint}: ${error.message}`);
      // A refused login, no grant from spec.owner for this job, or a key the grant leaves out.
      if (error.status === 403) throw new BindingProblem(Reason.AccessDenied, `${endpoint}: ${error.message}`);
      if (error.status === 404) throw new BindingProblem(Reason.SecretNotFound, `${endpoint}: ${error.message}`);
      throw new BindingProblem(Reason.ServerUnreachable, `${endpoint} answered ${error.status ?? '?'}: ${error.message}`);
    }
  }

  private async applyEnvSecret(binding: NosanaSecretBinding, name: string, data: Record<string, string>): Promise<'created' | 'updated' | 'unchanged'> {
    const { core } = this.options.kube;
    const namespace = binding.metadata.namespace;
    let existing = this.options.secrets.get(name, namespace);
    if (!existing) {
      try {
        await this.createEnvSecret(binding, name, data);
        return 'created';
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
        // Not in our watch: someone else's Secret, or ours before the watch saw it.
        const read: V1Secret | CachedSecret = await core.readNamespacedSecret({ name, namespace });
        slimSecret(read);
        existing = read;
      }
    }
    if (!isControlledBy(existing, binding)) {
      throw new BindingProblem(Reason.SecretConflict, `Secret ${namespace}/${name} exists and does not belong to this binding: delete it or set spec.secretName to another name`);
    }
    if ((existing.type ?? 'Opaque') !== desiredType(binding)) {
      // spec.template.type changed, and a Secret's type is immutable: replace the Secret.
      await this.deleteEnvSecrets(binding, undefined);
      await this.createEnvSecret(binding, name, data);
      return 'updated';
    }
    const patch = envSecretPatch(existing, binding, data);
    if (!patch) return 'unchanged';
    await this.trackWrite(binding, name, () => core.patchNamespacedSecret({ name, namespace, body: patch }));
    return 'updated';
  }

  /** spec.rolloutOnChange: restart the workloads that use the env Secret; the values are synced either way. */
  private async rollout(binding: NosanaSecretBinding, name: string, now: Date, log: Logger): Promise<void> {
    try {
      const restarted = await restartWorkloadsUsing(this.options.kube, binding.metadata.namespace, name, now);
      if (restarted.length === 0) return;
      await this.options.events.record(binding, 'Normal', 'RolloutRestarted', `restarted ${restarted.join(', ')}: Secret ${name} changed`);
      log.info({ secret: name, restarted }, 'workloads restarted');
    } catch (error) {
      if (statusOf(error) !== 403) throw error;
      await this.options.events.record(binding, 'Warning', 'RolloutForbidden',
        `Secret ${name} changed but the operator may not restart workloads: install the chart with operator.rolloutOnChange=true`);
    }
  }

  private async createEnvSecret(binding: NosanaSecretBinding, name: string, data: Record<string, string>): Promise<void> {
    const namespace = binding.metadata.namespace;
    try {
      await this.trackWrite(binding, name, () => this.options.kube.core.createNamespacedSecret({ namespace, body: newEnvSecret(binding, name, data) }));
    } catch (error) {
      // The API server checks a typed Secret's keys (kubernetes.io/basic-auth wants username or password, ...).
      if (statusOf(error) === 422) {
        throw new BindingProblem(Reason.InvalidSpec, `Secret ${namespace}/${name} of type ${desiredType(binding)} is refused: ${messageOf(error)}`, false);
      }
      throw error;
    }
  }

  /** Deletes the env Secrets this binding controls, except `keep`; returns the names deleted. */
  private async deleteEnvSecrets(binding: NosanaSecretBinding, keep: string | undefined): Promise<string[]> {
    const namespace = binding.metadata.namespace;
    const owned = this.options.secrets.controlledBy(namespace, binding.metadata.uid).filter((s) => s.metadata?.name !== keep);
    const deleted: string[] = [];
    for (const secret of owned) {
      const name = secret.metadata!.name!;
      try {
        await this.options.ownWrites.track(`${namespace}/${name}`, `${namespace}/${binding.metadata.name}`,
          () => this.options.kube.core.deleteNamespacedSecret({ name, namespace, body: { preconditions: { uid: secret.metadata?.uid } } }),
          () => DELETED);
        deleted.push(name);
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
    }
    return deleted;
  }

  private trackWrite(binding: NosanaSecretBinding, name: string, write: () => Promise<V1Secret>): Promise<V1Secret> {
    const namespace = binding.metadata.namespace;
    return this.options.ownWrites.track(`${namespace}/${name}`, `${namespace}/${binding.metadata.name}`, write,
      (secret) => secret.metadata?.resourceVersion);
  }

  private async patchBinding(binding: NosanaSecretBinding, patch: object[]): Promise<void> {
    const { name, namespace } = binding.metadata;
    await this.options.kube.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: patch });
  }

  private async writeStatus(binding: NosanaSecretBinding, status: NosanaSecretBindingStatus): Promise<void> {
    if (sameStatus(binding.status, status)) return;
    const { name, namespace } = binding.metadata;
    const clean = JSON.parse(JSON.stringify(status)) as NosanaSecretBindingStatus; // drops undefined fields
    try {
      await this.options.kube.custom.patchNamespacedCustomObjectStatus({
        group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: [{ op: 'add', path: '/status', value: clean }],
      });
    } catch (error) {
      if (statusOf(error) === 404) return; // deleted meanwhile
      throw new Error(`cannot write the status of ${namespace}/${name}: ${messageOf(error)}`);
    }
  }
}
