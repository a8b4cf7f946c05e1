// The server on every core: SERVER_WORKERS node:cluster workers share one port (the primary accepts connections and
// hands them round robin to the workers). The primary does what must happen once: it reads the settings (creating
// the generated key files), creates the storage schema, then forks the workers, restarts one that crashes, gathers
// /metrics from all of them, and stops them all on SIGTERM.
//
// What stays exact across workers: every worker has its own storage connection, and a login signature is remembered
// by the storage itself (for SQLite, an IMMEDIATE transaction on the shared WAL file; for the others, a unique insert),
// so a signature sent ten times at once is accepted once whichever workers it reaches. What is per worker: the caches
// (verified tokens, parsed public keys, opened values), which only ever hold what the worker could compute again.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { ConfigError, envInt, type Env } from '../common/config.js';
import type { Logger } from '../common/log.js';
import { loadServerConfig } from './config.js';
import { startServer } from './main.js';
import { openStorage } from './storage/open.js';

/** How a running server (one process, or the primary of several) is stopped. */
export interface Serving {
  url: string;
  /** Where it listens, for people: "0.0.0.0:4124 (every IPv4 interface)". */
  listening: string;
  close(): Promise<void>;
}

interface ListeningMessage { type: 'nosana:listening'; url: string; listening: string }
interface MetricsRequest { type: 'nosana:metrics'; id: number }
interface MetricsAnswer { type: 'nosana:metrics'; id: number; text?: string; error?: string }

/** A worker that crashes is replaced, but not faster than this: a crash loop must not eat the CPU. */
const RESTART_DELAY_MS = 1_000;

/** SERVER_WORKERS, default one per available core; SQLite in memory cannot be shared, so it runs one process. */
export function serverWorkers(env: Env): number {
  const inMemory = /^sqlite:\/\/:memory:$/i.test(env.STORAGE_CONNECTION ?? '');
  const workers = envInt(env, 'SERVER_WORKERS', inMemory ? 1 : availableParallelism(), { min: 1, max: 256 });
  if (inMemory && workers > 1) {
    throw new ConfigError('SERVER_WORKERS > 1 needs storage that processes can share: sqlite://:memory: lives in one process; use a file (sqlite://db.sqlite) or SERVER_WORKERS=1');
  }
  return workers;
}

/** Starts the server: in this process when SERVER_WORKERS is 1, else as the primary of that many workers. */
export async function startServing(env: Env, log: Logger): Promise<Serving> {
  const workers = serverWorkers(env);
  if (workers === 1) return startServer(env, log);
  return startPrimary(env, log, workers);
}

async function startPrimary(env: Env, log: Logger, count: number): Promise<Serving> {
  // Once, before any worker: generated key files are created here, and the schema exists before workers race to it.
  const config = loadServerConfig(env, log);
  const storage = await openStorage(config.storageConnection);
  await storage.init();
  await storage.close();

  const aggregator = new AggregatorRegistry();
  let stopping = false;
  let started = false;
  const exited = new Set<Promise<void>>();

  cluster.on('message', (worker: Worker, message: MetricsRequest) => {
    if (message?.type !== 'nosana:metrics') return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: 'nosana:metrics', id: message.id, text } satisfies MetricsAnswer),
      (error: Error) => worker.send({ type: 'nosana:metrics', id: message.id, error: error.message } satisfies MetricsAnswer),
    );
  });

  const fork = (): Promise<ListeningMessage> => new Promise((listening, failed) => {
    const worker = cluster.fork();
    exited.add(new Promise((done) => worker.once('exit', () => done())));
    worker.on('message', (message: ListeningMessage) => {
      if (message?.type === 'nosana:listening') listening(message);
    });
    worker.once('exit', (code, signal) => {
      failed(new Error(`a server worker exited while starting (${signal ?? `code ${code}`}): its error is above`));
      if (stopping || !started) return;
      log.error({ worker: worker.id, code, signal }, 'server worker exited: starting another');
      setTimeout(() => {
        if (!stopping) fork().catch((error: Error) => log.error({ err: error.message }, 'server worker did not start'));
      }, RESTART_DELAY_MS).unref();
    });
  });

  let listeners: ListeningMessage[];
  try {
    listeners = await Promise.all(Array.from({ length: count }, fork));
  } catch (error) {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    throw error;
  }
  started = true;
  const { url, listening } = listeners[0]!;
  log.info({ workers: count, url }, 'secrets server workers listening');
  return {
    url, listening,
    async close() {
      stopping = true;
      // Each worker finishes its requests in flight and closes its storage (common/shutdown.ts), then exits.
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      await Promise.all(exited);
    },
  };
}

/** In a worker: this worker's registry answers the primary, and /metrics asks the primary for every worker's sum. */
function clusterMetrics(registry: Registry): () => Promise<string> {
  new AggregatorRegistry(); // registers the worker's answer to the primary's collection request
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  process.on('message', (message: MetricsAnswer) => {
    if (message?.type !== 'nosana:metrics') return;
    const request = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.text !== undefined) request?.resolve(message.text);
    else request?.reject(new Error(message.error ?? 'no metrics'));
  });
  return () => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(id, { resolve, reject });
    process.send!({ type: 'nosana:metrics', id } satisfies MetricsRequest);
  });
}

/** The body of a worker process: one server on the shared port, reporting to the primary when it listens. */
export async function startWorker(env: Env, log: Logger): Promise<Serving> {
  const server = await startServer(env, log.child({ worker: cluster.worker!.id }), { metricsFrom: clusterMetrics });
  process.send!({ type: 'nosana:listening', url: server.url, listening: server.listening } satisfies ListeningMessage);
  return server;
}
