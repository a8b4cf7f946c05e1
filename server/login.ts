// POST /login: the signed-message login of owners and nodes. The signature of `nosana_secret_<timestamp>` is
// verified with node:crypto's ed25519 (native, much faster than pure JS); the timestamp must be recent; a signature
// is accepted once only (the replay cache lives in storage, so it holds across restarts and replicas).
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import bs58 from 'bs58';
import type { FastifyInstance } from 'fastify';
import { LRUCache } from 'lru-cache';
import { loginMessage } from '../common/login.js';
import { ADDRESS_PATTERN, decodeAddress, JOB_MAX_LENGTH, JOB_PATTERN } from '../common/names.js';
import type { ServerContext } from './context.js';
import { forbidden, HttpError, validation } from './errors.js';
import { limitBySource } from './limits.js';
import type { Principal } from './tokens.js';

// DER prefix of an ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface LoginBody {
  address: string;
  signature: string;
  timestamp: number | string;
  job?: string;
  /** With `job`: the owner whose grant to use, when several owners grant that job id to this address. */
  owner?: string;
}

// Nodes and owners log in again and again with the same key: parsing it once saves a good part of each login.
const publicKeys = new LRUCache<string, KeyObject>({ max: 10_000 });

function publicKeyOf(address: string): KeyObject {
  let key = publicKeys.get(address);
  if (!key) {
    const raw = decodeAddress(address);
    if (!raw) throw validation('address must be a base58 ed25519 public key of 32 bytes');
    key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    publicKeys.set(address, key);
  }
  return key;
}

function decodeSignature(signature: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = bs58.decode(signature);
  } catch {
    throw validation('signature must be base58');
  }
  if (bytes.length !== 64) throw validation('signature must be 64 bytes of base58');
  return bytes;
}

/** Checks a login and returns who it proves; throws 400 or 403 naming the reason. */
export async function checkLogin(context: ServerContext, body: LoginBody): Promise<Principal> {
  const { config, storage } = context;
  const timestamp = Number(body.timestamp);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw validation('timestamp must be a whole number of seconds');
  const now = Date.now() / 1000;
  if (timestamp < now - config.loginMaxAgeSeconds) {
    throw forbidden(`timestamp is more than ${config.loginMaxAgeSeconds} s old: sign a fresh nosana_secret_<unix seconds>`);
  }
  if (timestamp > now + config.loginMaxFutureSeconds) {
    throw forbidden(`timestamp is more than ${config.loginMaxFutureSeconds} s in the future: check the client's clock`);
  }
  const key = publicKeyOf(body.address);
  const signature = decodeSignature(body.signature);
  if (!verify(null, Buffer.from(loginMessage(timestamp)), key, signature)) {
    throw forbidden(`signature does not match address ${body.address} for message ${loginMessage(timestamp)}`);
  }
  // Counted only once the signature holds, so nobody can use up the logins of an address that is not theirs.
  context.loginLimits.perAddress.take(body.address);
  // Only a valid signature is remembered, so nobody can fill the replay cache with garbage.
  const fingerprint = createHash('sha256').update(signature).digest('base64url');
  const expiresAt = new Date((timestamp + config.loginMaxAgeSeconds + 1) * 1000);
  if (!(await context.timed('remember_signature', () => storage.rememberSignature(fingerprint, expiresAt)))) {
    throw forbidden('signature was already used: sign a fresh message for every login');
  }
  if (body.job === undefined) return { scope: 'owner', address: body.address };
  const access = await context.grants.resolve(body.job, body.address, body.owner);
  return { scope: 'job', address: body.address, job: body.job, owner: access.owner };
}

export function loginRoutes(app: FastifyInstance, context: ServerContext): void {
  app.post<{ Body: LoginBody }>('/login', {
    onRequest: limitBySource(context.loginLimits),
    schema: {
      tags: ['login'],
      summary: 'Log in with a signed message; with `job`, get the read-only token of that job',
      body: {
        type: 'object',
        required: ['address', 'signature', 'timestamp'],
        properties: {
          address: { type: 'string', pattern: ADDRESS_PATTERN, description: 'base58 ed25519 public key' },
          signature: { type: 'string', minLength: 1, maxLength: 128, description: 'base58 signature of nosana_secret_<timestamp>' },
          timestamp: {
            anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[0-9]{1,15}$' }],
            description: 'unix seconds, the one signed',
          },
          job: { type: 'string', minLength: 1, maxLength: JOB_MAX_LENGTH, pattern: JOB_PATTERN },
          owner: { type: 'string', pattern: ADDRESS_PATTERN, description: 'with job: the owner whose grant to use, when several owners grant that job id' },
        },
        dependencies: { owner: ['job'] },
      },
      response: { 200: { type: 'object', properties: { token: { type: 'string' }, expiresAt: { type: 'string' } } } },
    },
  }, async (request) => {
    const scope = request.body.job === undefined ? 'owner' : 'job';
    try {
      const principal = await checkLogin(context, request.body);
      const { token, expiresAt } = context.tokens.issue(principal);
      context.metrics.logins.inc({ scope, outcome: 'success' });
      context.audit.info({ event: 'login', address: principal.address, job: request.body.job, outcome: 'success' }, 'login');
      return { token, expiresAt: expiresAt.toISOString() };
    } catch (error) {
      const outcome = error instanceof HttpError ? error.type : 'error';
      context.metrics.logins.inc({ scope, outcome });
      context.audit.info({ event: 'login', address: request.body.address, job: request.body.job, outcome }, 'login refused');
      throw error;
    }
  });
}
