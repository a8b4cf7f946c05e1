// A list-watch cache (client-node's informer) that outlives API server outages. The informer stops on the first
// error; this restarts it with exponential backoff and jitter. A restart resumes the watch from the last
// resourceVersion it saw, so no event is lost and nothing is replayed (the server answers 410 Gone when that version
// is too old, and the informer then lists again, reporting only what changed).
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache, type V1ManagedFieldsEntry } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.js';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/** Any object the API serves. (Custom resources read as raw JSON, so their timestamps are strings, not Dates.) */
export interface WatchedObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; managedFields?: V1ManagedFieldsEntry[] };
}

export interface InformerOptions<T extends WatchedObject> {
  kubeConfig: KubeConfig;
  /** Watch path, e.g. /apis/secrets.nosana.io/v1alpha1/nosanasecretbindings. */
  path: string;
  list: () => Promise<{ metadata?: { resourceVersion?: string }; items: T[] }>;
  labelSelector?: string;
  log: Logger;
  /** Trims each object before the cache keeps it and before any callback sees it (managedFields always goes). */
  slim?: (object: T) => void;
}

export class ResilientInformer<T extends WatchedObject> {
  readonly cache: ObjectCache<T>;
  private readonly informer: Informer<T> & ObjectCache<T>;
  private readonly log: Logger;
  private stopped = true;
  private connecting = false;
  private failure: unknown;
  private retries = 0;
  private retryTimer?: NodeJS.Timeout;
  /** Ends the wait between first-connect attempts early, when stopping. */
  private wakeUp?: () => void;

  constructor(options: InformerOptions<T>) {
    // client-node types the informer by its generated models; it only ever reads metadata name, namespace and
    // resourceVersion, which every WatchedObject has.
    this.informer = makeInformer<KubernetesObject>(options.kubeConfig, options.path,
      options.list as () => Promise<{ items: KubernetesObject[] }>, options.labelSelector) as unknown as Informer<T> & ObjectCache<T>;
    this.cache = this.informer;
    this.log = options.log.child({ watch: options.path });
    this.informer.on('error', (error: unknown) => this.onError(error));
    // The cache holds the very objects the callbacks get. managedFields is often the larger part of an object and the
    // operator never reads it: dropping it (first, before other callbacks) keeps thousands of objects small.
    const slim = (object: T) => {
      if (object.metadata) delete object.metadata.managedFields;
      options.slim?.(object);
    };
    this.informer.on('add', slim);
    this.informer.on('update', slim);
  }

  on(verb: 'add' | 'update' | 'delete', callback: (object: T) => void): void {
    this.informer.on(verb, callback);
  }

  /** Lists and starts watching; resolves once the cache holds the first list (retrying until then). */
  async start(): Promise<void> {
    this.stopped = false;
    while (!this.stopped && !(await this.connect())) {
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
        this.retryTimer = setTimeout(resolve, this.nextDelay());
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.wakeUp?.();
    await this.informer.stop();
  }

  private async connect(): Promise<boolean> {
    this.connecting = true;
    this.failure = undefined;
    try {
      await this.informer.start();
    } catch (error) {
      this.failure = error;
    } finally {
      this.connecting = false;
    }
    if (this.failure === undefined) {
      if (this.retries > 0) this.log.info({ retries: this.retries }, 'watch resumed');
      this.retries = 0;
      return true;
    }
    return false;
  }

  private onError(error: unknown): void {
    if (this.stopped) return; // stopping aborts the watch, which reports an error
    this.failure = error;
    if (this.connecting) return; // connect() sees it and start() or the retry loop retries
    this.log.warn({ err: describe(error) }, 'watch failed: reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(async () => {
      if (this.stopped) return;
      if (!(await this.connect()) && !this.stopped) {
        this.log.warn({ err: describe(this.failure), retries: this.retries }, 'watch still failing: retrying');
        this.scheduleReconnect();
      }
    }, this.nextDelay());
  }

  private nextDelay(): number {
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.retries);
    this.retries += 1;
    return base * (0.8 + Math.random() * 0.4);
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error && typeof error === 'object' && 'message' in error) return String(error.message);
  return String(error);
}
