// Leader election with a coordination.k8s.io Lease, as client-go does it: the leader renews the lease every retry
// period; another replica takes it over only when it has seen no renewal for a whole lease duration (measured on its
// own clock, so clocks need not agree); every write carries the lease's resourceVersion, so two replicas can never
// both win. A leader that cannot renew within the renew deadline stops acting before its lease can expire, and a
// leader that stops releases the lease so a standby takes over at once.
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../common/log.js';
import { messageOf, statusOf } from './kube/clients.js';

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
}

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;
  private leading = false;
  private lastRenewal = 0;
  /** The other holder's record as last seen, and when we saw it change (our clock). */
  private observed?: { holder: string; renewTime: string };
  private observedAt = 0;
  private timer?: NodeJS.Timeout;
  private running = false;
  private transition: Promise<void> = Promise.resolve();
  private ticking: Promise<void> = Promise.resolve();

  constructor(private readonly options: LeaderElectionOptions) {
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.retryPeriodMs < this.renewDeadlineMs && this.renewDeadlineMs < this.leaseDurationMs)) {
      throw new Error('leader election needs retry period < renew deadline < lease duration');
    }
    this.log = options.log.child({ lease: `${options.namespace}/${options.name}` });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.running = true;
    this.ticking = this.tick();
  }

  /** Stops competing; a leader steps down and releases the lease. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.ticking;
    if (this.leading) this.setLeading(false);
    await this.transition;
    await withTimeout(this.release(), this.renewDeadlineMs, 'lease release').catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    let renewed = false;
    try {
      // A hung request must not hold up the step-down: give up on it at the renew deadline.
      renewed = await withTimeout(this.tryAcquireOrRenew(), this.renewDeadlineMs, 'lease update');
    } catch (error) {
      this.log.warn({ err: messageOf(error) }, 'lease update failed');
    }
    if (!this.running) return;
    if (renewed) {
      this.lastRenewal = Date.now();
      if (!this.leading) this.setLeading(true);
    } else if (this.leading && Date.now() - this.lastRenewal >= this.renewDeadlineMs) {
      this.log.warn('could not renew the lease within the renew deadline: stepping down');
      this.setLeading(false);
    }
    if (this.running) this.timer = setTimeout(() => { this.ticking = this.tick(); }, this.retryPeriodMs);
  }

  /**
   * Runs the callback without waiting for it: renewing the lease must go on while a controller starts (its first
   * list may take long), and a step-down must be able to interrupt a start that waits for the API server.
   */
  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.log.info(leading ? 'became the leader' : 'stopped leading');
    const callback = leading ? this.options.onStartedLeading : this.options.onStoppedLeading;
    this.transition = (async () => {
      try {
        await callback();
      } catch (error) {
        this.log.error({ err: error instanceof Error ? error.message : String(error) }, 'leadership callback failed');
      }
    })();
  }

  /** True when we hold the lease after this call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.options;
    const now = new V1MicroTime();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
              acquireTime: now, renewTime: now, leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createError) {
        if (statusOf(createError) === 409) return false; // another replica created it first
        throw createError;
      }
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    if (holder !== '' && holder !== identity) {
      this.lastRenewal = 0; // if we thought we led, we do not: step down at once
      const renewTime = String(spec.renewTime ?? '');
      if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
        this.observed = { holder, renewTime };
        this.observedAt = Date.now();
      }
      const duration = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
      if (Date.now() - this.observedAt < duration) return false; // the holder is alive
      this.log.info({ previous: holder }, 'lease expired: taking over');
    }

    const renewing = holder === identity;
    lease.spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: renewing && spec.acquireTime ? new V1MicroTime(String(spec.acquireTime)) : now,
      renewTime: now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (renewing ? 0 : 1),
    };
    try {
      await api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (error) {
      if (statusOf(error) === 409) return false; // someone else wrote it since we read it
      throw error;
    }
  }

  /** Hands the lease back so a standby need not wait for it to expire. */
  private async release(): Promise<void> {
    const { api, namespace, name, identity } = this.options;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      lease.spec = { ...lease.spec, holderIdentity: '', acquireTime: undefined, renewTime: undefined, leaseDurationSeconds: 1 };
      await api.replaceNamespacedLease({ name, namespace, body: lease });
      this.log.info('released the lease');
    } catch (error) {
      this.log.warn({ err: messageOf(error) }, 'could not release the lease: a standby takes over when it expires');
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
