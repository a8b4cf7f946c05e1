// The server's entry: settings, storage, encryption, grant sources, the HTTP app, and a graceful shutdown.
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Env } from '../common/config.js';
import { createLogger, type Logger } from '../common/log.js';
import { buildApp } from './app.js';
import { loadServerConfig, type ServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import { Envelope } from './encryption.js';
import { unavailable } from './errors.js';
import { ApiGrantSource } from './grants/api-source.js';
import { GrantResolver } from './grants/resolver.js';
import type { GrantSource } from './grants/source.js';
import { createServerMetrics } from './metrics.js';
import { StorageUnavailableError, type Storage } from './storage/contract.js';
import { openStorage, redactConnection } from './storage/open.js';
import { Tokens } from './tokens.js';

export interface RunningServer {
  app: FastifyInstance;
  context: ServerContext;
  /** The address it listens on, e.g. http://127.0.0.1:4124. */
  url: string;
  close(): Promise<void>;
}

const PURGE_INTERVAL_MS = 60_000;

export interface StartOptions {
  /** For a cluster worker: where /metrics gets its text, given this process's registry (server/cluster.ts). */
  metricsFrom?: (registry: Registry) => () => Promise<string>;
}

export async function createContext(config: ServerConfig, storage: Storage, log: Logger): Promise<ServerContext> {
  const metrics = createServerMetrics();
  const sources: GrantSource[] = [];
  if (config.grantSources.includes('api')) sources.push(new ApiGrantSource(storage));
  if (config.nosana) {
    // Loaded only when enabled: the Solana decoding library costs start-up time and memory a self-hoster never uses.
    const { NosanaGrantSource } = await import('./grants/nosana/source.js');
    sources.push(NosanaGrantSource.fromConfig(config.nosana, log, metrics.registry));
  }
  return {
    config, storage, metrics, log,
    audit: log.child({ audit: true }),
    envelope: new Envelope(config.keyring),
    tokens: new Tokens(config.jwtSecret, config.tokenTtlSeconds),
    grants: new GrantResolver(sources),
    async timed(operation, run) {
      const end = metrics.storageDuration.startTimer({ operation, backend: storage.backend });
      try {
        return await run();
      } catch (error) {
        if (error instanceof StorageUnavailableError) throw unavailable(`storage is unreachable: ${error.message}`);
        throw error;
      } finally {
        end();
      }
    },
  };
}

export async function startServer(env: Env = process.env, log: Logger = createLogger('server'), options: StartOptions = {}): Promise<RunningServer> {
  const config = loadServerConfig(env, log);
  const storage = await openStorage(config.storageConnection);
  await storage.init();
  const context = await createContext(config, storage, log);
  if (options.metricsFrom) context.metrics.collect = options.metricsFrom(context.metrics.registry);
  const app = await buildApp(context);
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
  log.info({ url, storage: redactConnection(config.storageConnection), grantSources: config.grantSources }, 'secrets server listening');

  const purge = setInterval(() => {
    storage.purgeExpiredSignatures(new Date()).catch((error: Error) => log.warn({ err: error.message }, 'replay cache purge failed'));
  }, PURGE_INTERVAL_MS);
  purge.unref();

  return {
    app, context, url,
    async close() {
      clearInterval(purge);
      await app.close();
      await storage.close();
    },
  };
}
