// The HTTP application: Fastify with JSON schemas beside every route (validation, error messages and the OpenAPI
// document come from them), one error shape for every failure, metrics per route template, and the probes. Every
// connection has a deadline (headers, whole request, idle) and their number is capped, so slow clients cannot pin
// memory.
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { JOB_MAX_LENGTH } from '../common/names.js';
import { auditRefusals } from './audit.js';
import type { ServerContext } from './context.js';
import { DecryptionError } from './encryption.js';
import { HttpError } from './errors.js';
import { grantRoutes } from './grants/routes.js';
import { DEFAULT_BODY_LIMIT } from './limits.js';
import { loginRoutes } from './login.js';
import { secretRoutes } from './secrets.js';
import { StorageUnavailableError } from './storage/contract.js';
import type { TlsPair } from './tls.js';

export const WELCOME = 'Nosana secret manager is running: see /v1/openapi.json for the API';

// Room for a job id of JOB_MAX_LENGTH even when every character is percent-encoded; a longer parameter is a 400.
const MAX_PARAM_LENGTH = 3 * JOB_MAX_LENGTH;
// How often Node looks for requests past their headers or request deadline.
const DEADLINE_CHECK_INTERVAL_MS = 1000;
/** Routes of probes and scrapes, left out of the request metrics. */
const NOT_TRAFFIC = new Set(['/health', '/healthz', '/readyz', '/metrics']);

function errorBody(type: string, message: string) {
  return { type, error: message };
}

/** What the router refuses before any route runs (bad percent-encoding, an over-long parameter), in our shape. */
function frameworkError(error: FastifyError, reply: FastifyReply): void {
  const message = error.code === 'FST_ERR_BAD_URL'
    ? 'the URL is not valid: it holds a malformed percent-encoding (% must be followed by two hex digits of UTF-8)'
    : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? `a path parameter is longer than ${MAX_PARAM_LENGTH} characters: job ids are at most ${JOB_MAX_LENGTH}`
      : error.message;
  reply.code(400).send(errorBody('ValidationError', message));
}

/** With `tls`, the app speaks HTTPS only (main.ts swaps the certificate when its files change). */
export async function buildApp(context: ServerContext, tls?: TlsPair): Promise<FastifyInstance> {
  const limits = context.config.http;
  // Node's own deadlines, for the plain and the HTTPS server alike.
  const deadlines = { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: DEADLINE_CHECK_INTERVAL_MS };
  // Fastify types an HTTPS instance apart; every route and hook below is the same for both.
  const app = Fastify({
    ...(tls === undefined ? { http: deadlines } : { https: { ...tls, ...deadlines } }),
    logger: false,
    bodyLimit: DEFAULT_BODY_LIMIT,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Strict JSON: a body that is not JSON is a 400 naming the problem, never a 500.
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: (error, _request, reply) => frameworkError(error, reply),
  }) as unknown as FastifyInstance;
  // Past the cap, Node closes new connections at once: memory for bodies in flight stays below the cap times the
  // largest body limit.
  app.server.maxConnections = limits.maxConnections;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Nosana Secrets API',
        version: '1',
        description: 'Secrets for jobs, with access proven by a Solana (ed25519) key. Log in with POST /login.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
    // Key routes are wildcards in Fastify (keys may hold "/"); the document names the parameter `key`.
    transform: ({ schema, url }) => {
      if (!url.endsWith('/*')) return { schema, url };
      const params = { type: 'object', required: ['key'], properties: { key: { type: 'string', description: 'the key; may contain /' } } };
      return { schema: { ...schema, params }, url: `${url.slice(0, -2)}/:key` };
    },
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    // Probes and scrapes arrive every few seconds from the kubelet and Prometheus: counted, they would dilute the
    // error ratio and the latency of the requests users make.
    if (NOT_TRAFFIC.has(route)) return;
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    context.metrics.httpRequests.inc(labels);
    context.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
  });

  auditRefusals(app, context);

  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof HttpError) {
      return reply.code(error.statusCode).headers(error.headers).send(errorBody(error.type, error.message));
    }
    if (error instanceof StorageUnavailableError) {
      return reply.code(503).send(errorBody('ServiceUnavailableError', 'storage is unreachable: try again shortly'));
    }
    if (error instanceof DecryptionError) {
      context.log.error({ err: error.message, route: request.routeOptions.url }, 'stored value does not decrypt');
      return reply.code(500).send(errorBody('DecryptionError', 'a stored value cannot be decrypted with the configured keys'));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      return reply.code(400).send(errorBody('ValidationError', error.message));
    }
    const status = fastifyError.statusCode;
    if (status === 413) {
      const limit = request.routeOptions.bodyLimit ?? DEFAULT_BODY_LIMIT;
      return reply.code(413).send(errorBody('PayloadTooLargeError',
        `the body is larger than the ${limit} bytes ${request.method} ${request.routeOptions.url ?? request.url} accepts: send less in one request`));
    }
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status === 415 ? 400 : status).send(errorBody('ValidationError', error.message));
    }
    context.log.error({ err: { message: error.message, stack: error.stack }, route: request.routeOptions.url }, 'request failed');
    return reply.code(500).send(errorBody('InternalError', 'internal error'));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('NotFoundError', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/plain').send(WELCOME));
  app.get('/health', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await context.storage.ping();
      context.metrics.storageUp.set({ backend: context.storage.backend }, 1);
      return { status: 'ready' };
    } catch {
      context.metrics.storageUp.set({ backend: context.storage.backend }, 0);
      return reply.code(503).send(errorBody('ServiceUnavailableError', 'storage is unreachable'));
    }
  });
  // With METRICS_PORT, /metrics is served there only (main.ts), so the API port need not admit Prometheus.
  if (context.config.metricsPort === undefined) {
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
      reply.type(context.metrics.registry.contentType).send(await context.metrics.collect()));
  }
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  loginRoutes(app, context);
  secretRoutes(app, context);
  grantRoutes(app, context);
  return app;
}
