// Grant routes: an owner grants a job read access to some of its keys, for the addresses that run it (nodes), or,
// for a result, for the job's owner. Also the token exchange: a node that holds its own owner token gets the job
// token without signing again (a signature is single-use, and ed25519 signs the same second identically).
import type { FastifyInstance } from 'fastify';
import {
  ADDRESS_PATTERN, JOB_MAX_LENGTH, JOB_PATTERN, KEY_MAX_LENGTH, KEY_PATTERN,
} from '../../common/names.js';
import { authenticateOwner, largeBody } from '../auth.js';
import type { ServerContext } from '../context.js';
import { notFound } from '../errors.js';
import { limitBySource, NAMES_BODY_LIMIT } from '../limits.js';
import type { GrantRecord } from '../storage/contract.js';

const jobParam = {
  type: 'object', required: ['job'],
  properties: { job: { type: 'string', minLength: 1, maxLength: JOB_MAX_LENGTH, pattern: JOB_PATTERN } },
} as const;
const grantSchema = {
  type: 'object',
  properties: {
    job: { type: 'string' },
    keys: { type: 'array', items: { type: 'string' } },
    readers: { type: 'array', items: { type: 'string' } },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

function view(grant: GrantRecord) {
  return {
    job: grant.job, keys: grant.keys, readers: grant.readers,
    createdAt: grant.createdAt.toISOString(), updatedAt: grant.updatedAt.toISOString(),
  };
}

export function grantRoutes(app: FastifyInstance, context: ServerContext): void {
  const { storage, audit } = context;

  app.put<{ Params: { job: string }; Body: { keys: string[]; readers: string[] } }>('/v1/grants/:job', {
    ...largeBody(context, NAMES_BODY_LIMIT),
    config: { audit: 'grant' },
    schema: {
      tags: ['grants'], summary: 'Grant a job read access to some of the caller\'s keys, for the given reader addresses',
      params: jobParam,
      body: {
        type: 'object', required: ['keys', 'readers'], additionalProperties: false,
        properties: {
          keys: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: { type: 'string', pattern: KEY_PATTERN, maxLength: KEY_MAX_LENGTH } },
          readers: { type: 'array', minItems: 1, maxItems: 100, uniqueItems: true, items: { type: 'string', pattern: ADDRESS_PATTERN } },
        },
      },
      response: { 200: grantSchema },
    },
  }, async (request) => {
    const owner = await authenticateOwner(context, request);
    const grant = await context.timed('put_grant', () => storage.putGrant({
      owner, job: request.params.job, keys: [...request.body.keys].sort(), readers: request.body.readers,
    }));
    audit.info({ event: 'grant', address: owner, job: grant.job, keys: grant.keys, readers: grant.readers, outcome: 'success' }, 'grant');
    return view(grant);
  });

  app.get('/v1/grants', {
    config: { audit: 'list_grants' },
    schema: {
      tags: ['grants'], summary: 'The caller\'s grants',
      response: { 200: { type: 'object', properties: { grants: { type: 'array', items: grantSchema } } } },
    },
  }, async (request) => {
    const owner = await authenticateOwner(context, request);
    const grants = await context.timed('list_grants', () => storage.listGrants(owner));
    audit.info({ event: 'list_grants', address: owner, count: grants.length, outcome: 'success' }, 'list_grants');
    return { grants: grants.map(view) };
  });

  app.delete<{ Params: { job: string } }>('/v1/grants/:job', {
    config: { audit: 'revoke' },
    schema: { tags: ['grants'], summary: 'Revoke a job\'s grant', params: jobParam, response: { 204: { type: 'null' } } },
  }, async (request, reply) => {
    const owner = await authenticateOwner(context, request);
    const deleted = await context.timed('delete_grant', () => storage.deleteGrant(owner, request.params.job));
    audit.info({ event: 'revoke', address: owner, job: request.params.job, outcome: deleted ? 'success' : 'not_found' }, 'revoke');
    if (!deleted) throw notFound(`no grant for job ${request.params.job}`);
    reply.code(204);
  });

  app.post<{ Body: { job: string; owner?: string } }>('/v1/tokens/job', {
    onRequest: limitBySource(context.loginLimits),
    config: { audit: 'login' },
    schema: {
      tags: ['login'], summary: 'Exchange an owner token for the read-only token of a job granted to that address',
      body: {
        type: 'object', required: ['job'], additionalProperties: false,
        properties: {
          job: jobParam.properties.job,
          owner: { type: 'string', pattern: ADDRESS_PATTERN, description: 'the owner whose grant to use, when several owners grant that job id' },
        },
      },
      response: { 200: { type: 'object', properties: { token: { type: 'string' }, expiresAt: { type: 'string' } } } },
    },
  }, async (request) => {
    const address = await authenticateOwner(context, request);
    context.loginLimits.perAddress.take(address);
    const access = await context.grants.resolve(request.body.job, address, request.body.owner);
    const { token, expiresAt } = context.tokens.issue({ scope: 'job', address, job: request.body.job, owner: access.owner });
    context.metrics.logins.inc({ scope: 'job', outcome: 'success' });
    audit.info({ event: 'login', address, job: request.body.job, via: 'token_exchange', outcome: 'success' }, 'login');
    return { token, expiresAt: expiresAt.toISOString() };
  });
}
