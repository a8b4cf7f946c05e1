// The HTTP application: Fastify with JSON schemas beside every route (validation, error messages and the OpenAPI
// document come from them), one error shape for every failure, metrics per route template, and the probes.
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { DecryptionError } from './encryption.js';
import { HttpError } from './errors.js';
import { grantRoutes } from './grants/routes.js';
import { loginRoutes } from './login.js';
import { secretRoutes } from './secrets.js';
import { StorageUnavailableError } from './storage/contract.js';

export const WELCOME = 'Nosana secret manager is running: see /v1/openapi.json for the API';

function errorBody(type: string, message: string) {
  return { type, error: message };
}

export async function buildApp(context: ServerContext): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 2 * 1024 * 1024,
    // Strict JSON: a body that is not JSON is a 400 naming the problem, never a 500.
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    routerOptions: { ignoreTrailingSlash: true },
  });

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
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    context.metrics.httpRequests.inc(labels);
    context.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof HttpError) {
      return reply.code(error.statusCode).send(errorBody(error.type, error.message));
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
    if (status !== undefined && status >= 400 && status < 500) {
      const type = status === 413 ? 'PayloadTooLargeError' : 'ValidationError';
      return reply.code(status === 415 ? 400 : status).send(errorBody(type, error.message));
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
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(context.metrics.registry.contentType).send(await context.metrics.collect()));
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  loginRoutes(app, context);
  secretRoutes(app, context);
  grantRoutes(app, context);
  return app;
}
