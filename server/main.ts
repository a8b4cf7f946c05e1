// The server's entry: settings, storage, encryption, grant sources, the HTTP app, and a graceful shutdown.
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Env } from '../common/config.js';
import { auditLogger, createLogger, type Logger } from '../common/log.js';
import { startProbeServer } from '../common/metrics.js';
import { buildApp } from './app.js';
import { loadServerConfig, type ServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import { Envelope } from './encryption.js';
import { unavailable } from './errors.js';
import { ApiGrantSource } from './grants/api-source.js';
import { GrantResolver } from './grants/resolver.js';
import { createLoginLimits } from './limits.js';
import type { GrantSource } from './grants/source.js';
import { createServerMetrics } from './metrics.js';
import { StorageUnavailableError, type Storage } from './storage/contract.js';
import { openStorage, redactConnection } from './storage/open.js';
import { reloadTlsOnChange, readTlsPair } from './tls.js';
import { Tokens } from './tokens.js';

export interface RunningServer {
  app: FastifyInstance;
  context: ServerContext;
  /** A URL that reaches it from this machine, e.g. http://127.0.0.1:4124 (https:// with TLS_CERT_FILE). */
  url: string;
  /** Where it listens, for people: "0.0.0.0:4124 (every IPv4 interface)". */
  listening: string;
  /** With METRICS_PORT: the address of /metrics, e.g. http://127.0.0.1:9090. */
  metricsUrl?: string;
  close(): Promise<void>;
}

const PURGE_INTERVAL_MS = 60_000;

/** The bound address in words, and a URL that reaches it from this machine (loopback for a wildcard address). */
export function describeListen(host: string, port: number, scheme: 'http' | 'https' = 'http'): { listening: string; url: string } {
  const wildcard = host === '0.0.0.0' ? 'every IPv4 interface' : host === '::' ? 'every interface' : undefined;
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return {
    listening: `${bracketed}:${port} (${wildcard ?? 'this address only'})`,
    url: `${scheme}://${wildcard ? '127.0.0.1' : bracketed}:${port}`,
  };
}

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
    audit: auditLogger(log),
    envelope: new Envelope(config.keyring),
    tokens: new Tokens(config.jwtSecret, config.tokenTtlSeconds),
    grants: new GrantResolver(sources),
    loginLimits: createLoginLimits(config.loginRateLimit),
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
  const tlsPair = config.tls === undefined ? undefined : readTlsPair(config.tls);
  const app = await buildApp(context, tlsPair);
  await app.listen({ port: config.port, host: config.host });
  const stopTlsReload = config.tls && tlsPair
    ? reloadTlsOnChange(app.server as unknown as TlsServer, config.tls, tlsPair, log)
    : () => undefined;
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const { listening, url } = describeListen(config.host, port, tlsPair === undefined ? 'http' : 'https');
  const metricsServer = config.metricsPort === undefined ? undefined : await startProbeServer({
    port: config.metricsPort, host: config.host, registry: context.metrics.registry, collect: context.metrics.collect,
    ready: () => storage.ping().then(() => true, () => false),
  });
  const metricsAddress = metricsServer?.address();
  const metricsUrl = typeof metricsAddress === 'object' && metricsAddress
    ? describeListen(config.host, metricsAddress.port, 'http').url : undefined;
  log.info({ host: config.host, port, url, metricsUrl, storage: redactConnection(config.storageConnection), grantSources: config.grantSources }, 'secrets server listening');

  const purge = setInterval(() => {
    storage.purgeExpiredSignatures(new Date()).catch((error: Error) => log.warn({ err: error.message }, 'replay cache purge failed'));
  }, PURGE_INTERVAL_MS);
  purge.unref();

  return {
    app, context, url, listening, metricsUrl,
    async close() {
      clearInterval(purge);
      stopTlsReload();
      await new Promise((resolve) => (metricsServer ? metricsServer.close(resolve) : resolve(undefined)));
      await app.close();
      await storage.close();
    },
  };
}
