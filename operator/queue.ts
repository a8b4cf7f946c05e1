// The work queue between watch events and reconciles, with client-go's semantics: a key waits in the queue at most
// once however often it is added; a key is never reconciled by two workers at once (added while in progress, it is
// queued again when that reconcile ends); failed keys come back after an exponential, jittered backoff; and a
// reconcile can ask to run again later (refresh, TTL).
export interface QueueOptions {
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys added while being processed: queued again by done(). */
  private readonly dirty = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly waiting: ((key: string | undefined) => void)[] = [];
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private shuttingDown = false;

  constructor(options: QueueOptions = {}) {
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
    this.backoffMaxMs = options.backoffMaxMs ?? 5 * 60_000;
  }

  /** Keys waiting to be reconciled now (not counting those in progress or scheduled for later). */
  get depth(): number {
    return this.ready.length;
  }

  /** Queue a key now. Any later run scheduled for it is dropped: the reconcile schedules what it still needs. */
  add(key: string): void {
    if (this.shuttingDown) return;
    this.cancelDelayed(key);
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const waiter = this.waiting.shift();
    if (waiter) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.add(key);
    this.ready.push(key);
  }

  /** Queue a key after `delayMs`; when a run is already scheduled earlier, that one stands. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Queue a key again after its backoff: base · 2^failures, capped, ±20 % jitter so retries do not move in step. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** failures) * (0.8 + Math.random() * 0.4);
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded: its next failure starts the backoff from the beginning. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Drops every trace of a key (its object is gone). */
  remove(key: string): void {
    this.cancelDelayed(key);
    this.failures.delete(key);
    this.dirty.delete(key);
  }

  /** The next key to reconcile; waits for one. Undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.ready.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The reconcile of `key` ended; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.ready.length = 0;
    this.queued.clear();
    for (const waiter of this.waiting.splice(0)) waiter(undefined);
  }

  private cancelDelayed(key: string): void {
    const existing = this.delayed.get(key);
    if (existing) {
      clearTimeout(existing.timer);
      this.delayed.delete(key);
    }
  }
}
