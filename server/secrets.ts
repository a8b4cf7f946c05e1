// Secret routes: the upstream-compatible ones (/secrets) and the richer /v1 ones. Owners create, replace, list,
// read and delete their own keys; a job token reads exactly the keys granted to its job, nothing else.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { KEY_MAX_LENGTH, KEY_PATTERN, keyProblem } from '../common/names.js';
import { authenticate, authenticateOwner, largeBody, type Caller } from './auth.js';
import type { ServerContext } from './context.js';
import { conflict, forbidden, notFound, validation } from './errors.js';
import { BATCH_MAX_KEYS, batchBodyLimit, NAMES_BODY_LIMIT, valueBodyLimit } from './limits.js';
import { VersionConflictError, type SecretRecord } from './storage/contract.js';

/** How often a write is sealed again and retried when other writes of the same key keep getting there first. */
const WRITE_ATTEMPTS = 10;

const metadataSchema = {
  type: 'object',
  properties: {
    key: { type: 'string' }, version: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' }, updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;
const valueSchema = { ...metadataSchema, properties: { ...metadataSchema.properties, value: { type: 'string' } } } as const;
const keyParam = { type: 'object', properties: { '*': { type: 'string', description: 'the key; may contain /' } } } as const;
const prefixQuery = {
  type: 'object', properties: { prefix: { type: 'string', maxLength: KEY_MAX_LENGTH } }, additionalProperties: false,
} as const;

// With the u flag, a surrogate pair is one code point, so only unpaired surrogates match.
const LONE_SURROGATE = /\p{Surrogate}/u;

function metadata(record: SecretRecord) {
  return {
    key: record.key, version: record.version,
    createdAt: record.createdAt.toISOString(), updatedAt: record.updatedAt.toISOString(),
  };
}

function checkedKey(key: string, field = 'key'): string {
  const problem = keyProblem(key);
  if (problem) throw validation(`${field} ${JSON.stringify(key.slice(0, KEY_MAX_LENGTH + 1))} ${problem}`);
  return key;
}

export function secretRoutes(app: FastifyInstance, context: ServerContext): void {
  const { storage, envelope, metrics, audit, config } = context;

  function checkedValue(value: string, field: string): string {
    if (value.length === 0) throw validation(`${field} must not be empty`);
    if (Buffer.byteLength(value) > config.maxValueBytes) throw validation(`${field} must be at most ${config.maxValueBytes} bytes`);
    // UTF-8 cannot hold a lone surrogate: stored, it would come back as U+FFFD, so refuse it rather than change it.
    if (LONE_SURROGATE.test(value)) throw validation(`${field} holds a lone UTF-16 surrogate (an unpaired \\uD800-\\uDFFF): send valid Unicode`);
    return value;
  }

  /** The records a caller may read among `keys`; a job token asking for a key outside its grant gets a 403. */
  async function readable(caller: Caller, keys: string[]): Promise<{ owner: string; records: SecretRecord[] }> {
    if (caller.scope === 'job') {
      const outside = keys.find((key) => !caller.access.keys.includes(key));
      if (outside !== undefined) throw forbidden(`key ${JSON.stringify(outside)} is not granted to job ${caller.job}`);
    }
    const owner = caller.scope === 'owner' ? caller.address : caller.access.owner;
    return { owner, records: await context.timed('get_secrets', () => storage.getSecrets(owner, keys)) };
  }

  /** Every record a caller may read (under `prefix`): all of an owner's, or the granted ones of a job. */
  async function allReadable(caller: Caller, prefix: string): Promise<{ owner: string; records: SecretRecord[] }> {
    if (caller.scope === 'owner') {
      return { owner: caller.address, records: await context.timed('list_secrets', () => storage.listSecrets(caller.address, prefix)) };
    }
    return readable(caller, caller.access.keys.filter((key) => key.startsWith(prefix)));
  }

  function reveal(caller: Caller, owner: string, records: SecretRecord[]): Map<string, { record: SecretRecord; value: string }> {
    const values = new Map(records.map((r) => [r.key, { record: r, value: envelope.open(owner, r.key, r.version, r.sealed) }]));
    metrics.secretReads.inc({ scope: caller.scope }, values.size);
    audit.info({
      event: 'read', address: caller.address, owner, job: caller.scope === 'job' ? caller.job : undefined,
      keys: [...values.keys()], outcome: 'success',
    }, 'read');
    return values;
  }

  async function readOne(caller: Caller, key: string) {
    const { owner, records } = await readable(caller, [checkedKey(key)]);
    const found = reveal(caller, owner, records).get(key);
    if (!found) throw notFound(`key ${JSON.stringify(key)} does not exist`);
    return found;
  }

  /**
   * Each value is sealed for the version it is about to get (one more than now; 1 for a new key), since the version
   * is bound into the seal, and storage writes it only over the version before (compare-and-set). When another write
   * of the same key got there first, nothing was written: read the versions again, seal again, retry.
   */
  async function store(owner: string, entries: [string, string][]): Promise<SecretRecord[]> {
    for (let attempt = 1; ; attempt++) {
      const current = await context.timed('get_secrets', () => storage.getSecrets(owner, entries.map(([key]) => key)));
      const versions = new Map(current.map((record) => [record.key, record.version]));
      const writes = entries.map(([key, value]) => {
        const version = (versions.get(key) ?? 0) + 1;
        return { key, version, ...envelope.seal(owner, key, version, value) };
      });
      try {
        return written(owner, await context.timed('put_secrets', () => storage.putSecrets(owner, writes)));
      } catch (error) {
        if (!(error instanceof VersionConflictError)) throw error;
        if (attempt >= WRITE_ATTEMPTS) throw conflict(`key ${JSON.stringify(error.key)} kept being written by other requests at the same moment: try again`);
        await sleep(Math.random() * 5 * attempt); // spread the writers out, so one of them wins the next round
      }
    }
  }

  function written(owner: string, records: SecretRecord[]): SecretRecord[] {
    metrics.secretWrites.inc({ operation: 'put' }, records.length);
    audit.info({ event: 'write', address: owner, keys: records.map((r) => r.key), outcome: 'success' }, 'write');
    return records;
  }

  async function remove(owner: string, key: string, reply?: FastifyReply): Promise<void> {
    const deleted = await context.timed('delete_secret', () => storage.deleteSecret(owner, key));
    audit.info({ event: 'delete', address: owner, key, outcome: deleted ? 'success' : 'not_found' }, 'delete');
    if (!deleted) throw notFound(`key ${JSON.stringify(key)} does not exist`);
    metrics.secretWrites.inc({ operation: 'delete' });
    reply?.code(204);
  }

  // ---- upstream-compatible routes ----

  app.get<{ Querystring: { prefix?: string } }>('/secrets', {
    config: { audit: 'read' },
    schema: {
      tags: ['compatible'], summary: 'All readable secrets as {key: value}', querystring: prefixQuery,
      response: { 200: { type: 'object', additionalProperties: { type: 'string' } } },
    },
  }, async (request) => {
    const caller = await authenticate(context, request);
    const { owner, records } = await allReadable(caller, request.query.prefix ?? '');
    return Object.fromEntries([...reveal(caller, owner, records)].map(([key, { value }]) => [key, value]));
  });

  app.get<{ Params: { '*': string } }>('/secrets/*', {
    config: { audit: 'read' },
    schema: {
      tags: ['compatible'], summary: 'One secret as {key: value}', params: keyParam,
      response: { 200: { type: 'object', additionalProperties: { type: 'string' } } },
    },
  }, async (request) => {
    const { record, value } = await readOne(await authenticate(context, request), request.params['*']);
    return { [record.key]: value };
  });

  app.post<{ Body: { secrets: Record<string, string>; prefix?: string } }>('/secrets', {
    ...largeBody(context, batchBodyLimit(config.maxValueBytes)),
    config: { audit: 'write' },
    schema: {
      tags: ['compatible'], summary: 'Store secrets under the caller\'s address (as prefix + key)',
      body: {
        type: 'object', required: ['secrets'], additionalProperties: false,
        properties: {
          secrets: { type: 'object', minProperties: 1, maxProperties: BATCH_MAX_KEYS, additionalProperties: { type: 'string' } },
          prefix: { type: 'string', maxLength: KEY_MAX_LENGTH },
        },
      },
      response: { 200: { type: 'object', properties: { keys: { type: 'array', items: { type: 'string' } } } } },
    },
  }, async (request) => {
    const owner = await authenticateOwner(context, request);
    const prefix = request.body.prefix ?? '';
    const entries = Object.entries(request.body.secrets).map(([key, value]): [string, string] => [
      checkedKey(prefix + key, `secrets key`), checkedValue(value, `secrets.${key}`),
    ]);
    const records = await store(owner, entries);
    return { keys: records.map((r) => r.key) };
  });

  app.delete<{ Body: { key: string } }>('/secrets', {
    config: { audit: 'delete' },
    schema: {
      tags: ['compatible'], summary: 'Delete one of the caller\'s secrets',
      body: { type: 'object', required: ['key'], properties: { key: { type: 'string' } } },
      response: { 200: { type: 'object', properties: { deleted: { type: 'string' } } } },
    },
  }, async (request) => {
    const owner = await authenticateOwner(context, request);
    await remove(owner, checkedKey(request.body.key));
    return { deleted: request.body.key };
  });

  // ---- /v1 ----

  app.get<{ Querystring: { prefix?: string } }>('/v1/secrets', {
    config: { audit: 'list' },
    schema: {
      tags: ['secrets'], summary: 'List the caller\'s secret names and metadata, never values', querystring: prefixQuery,
      response: { 200: { type: 'object', properties: { secrets: { type: 'array', items: metadataSchema } } } },
    },
  }, async (request) => {
    const owner = await authenticateOwner(context, request);
    const records = await context.timed('list_secrets', () => storage.listSecrets(owner, request.query.prefix ?? ''));
    audit.info({ event: 'list', address: owner, prefix: request.query.prefix, count: records.length, outcome: 'success' }, 'list');
    return { secrets: records.map(metadata) };
  });

  app.get<{ Params: { '*': string } }>('/v1/secrets/*', {
    config: { audit: 'read' },
    schema: { tags: ['secrets'], summary: 'Read one secret with its metadata', params: keyParam, response: { 200: valueSchema } },
  }, async (request) => {
    const { record, value } = await readOne(await authenticate(context, request), request.params['*']);
    return { ...metadata(record), value };
  });

  app.put<{ Params: { '*': string }; Body: { value: string } }>('/v1/secrets/*', {
    ...largeBody(context, valueBodyLimit(config.maxValueBytes)),
    config: { audit: 'write' },
    schema: {
      tags: ['secrets'], summary: 'Create or replace one secret', params: keyParam,
      body: { type: 'object', required: ['value'], additionalProperties: false, properties: { value: { type: 'string' } } },
      response: { 200: metadataSchema },
    },
  }, async (request) => {
    const owner = await authenticateOwner(context, request);
    const key = checkedKey(request.params['*']);
    const [record] = await store(owner, [[key, checkedValue(request.body.value, 'value')]]);
    return metadata(record!);
  });

  app.delete<{ Params: { '*': string } }>('/v1/secrets/*', {
    config: { audit: 'delete' },
    schema: { tags: ['secrets'], summary: 'Delete one secret', params: keyParam, response: { 204: { type: 'null' } } },
  }, async (request, reply) => {
    const owner = await authenticateOwner(context, request);
    await remove(owner, checkedKey(request.params['*']), reply);
  });

  app.post<{ Body: { keys: string[] } }>('/v1/read', {
    ...largeBody(context, NAMES_BODY_LIMIT),
    config: { audit: 'read' },
    schema: {
      tags: ['secrets'], summary: 'Read several secrets at once; fails naming the first key that cannot be read',
      body: {
        type: 'object', required: ['keys'], additionalProperties: false,
        properties: { keys: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: { type: 'string', pattern: KEY_PATTERN, maxLength: KEY_MAX_LENGTH } } },
      },
      response: { 200: { type: 'object', properties: { secrets: { type: 'object', additionalProperties: valueSchema } } } },
    },
  }, async (request) => {
    const caller = await authenticate(context, request);
    const { owner, records } = await readable(caller, request.body.keys);
    const values = reveal(caller, owner, records);
    const missing = request.body.keys.find((key) => !values.has(key));
    if (missing !== undefined) throw notFound(`key ${JSON.stringify(missing)} does not exist`);
    return { secrets: Object.fromEntries([...values].map(([key, { record, value }]) => [key, { ...metadata(record), value }])) };
  });
}
