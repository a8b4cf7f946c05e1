// POST /login: the signed-message login of owners and nodes. The signature of `nosana_secret_<audience>_<timestamp>`
// (bound to this server) or of upstream's `nosana_secret_<timestamp>` (unbound; LOGIN_UNBOUND=refuse turns it off) is
// verified with node:crypto's ed25519 (native, much faster than pure JS); the timestamp must be recent; a signature
// is accepted once only (the replay cache lives in storage, so it holds across restarts and replicas).
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import bs58 from 'bs58';
import type { FastifyInstance } from 'fastify';
import { LRUCache } from 'lru-cache';
import { AUDIENCE_PATTERN, loginMessage } from '../common/login.js';
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
  /** Present when the bound form was signed: the audience inside the message, which must be this server's. */
  audience?: string;
}

// Public keys that anyone can sign for. node:crypto (OpenSSL) verifies RFC 8032 signatures cofactorless and checks
// that S < L, but accepts any point as a public key: with a small-order key A, R = identity and S = 0 satisfy
// [S]B = R + [k]A for every message whose k is a multiple of A's order (always, for the identity). So an address
// whose point has small order, or whose y coordinate is not encoded canonically (y >= p, which also covers the
// "negative zero" encodings of small-order points), is refused before any signature is checked. The 8 small-order
// points have y in {0, 1, p-1, Y8, p-Y8} (orders 4, 1, 2 and 8), the list libsodium blocks too.
const P = 2n ** 255n - 19n;
const Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y8, P - Y8]);

/** Why a 32-byte ed25519 public key cannot be trusted to prove anything, or undefined when it can. */
function weakPublicKeyProblem(raw: Uint8Array): string | undefined {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(raw[i]!);
  y &= (1n << 255n) - 1n; // the top bit is the sign of x
  if (y >= P) return 'is not a canonical ed25519 point encoding';
  if (SMALL_ORDER_Y.has(y)) return 'is a small-order ed25519 point, for which anyone can forge signatures';
  return undefined;
}

// Nodes and owners log in again and again with the same key: parsing it once saves a good part of each login.
const publicKeys = new LRUCache<string, KeyObject>({ max: 10_000 });

function publicKeyOf(address: string): KeyObject {
  let key = publicKeys.get(address);
  if (!key) {
    const raw = decodeAddress(address);
    if (!raw) throw validation('address must be a base58 ed25519 public key of 32 bytes');
    const weakness = weakPublicKeyProblem(raw);
    if (weakness) throw validation(`address ${address} ${weakness}: it cannot log in; use a key made by solana-keygen or nosana-secrets keygen`);
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
  if (body.audience === undefined && config.unboundLogin === 'refuse') {
    throw validation(`this server accepts only audience-bound logins: sign nosana_secret_${config.loginAudience}_<unix seconds> ` +
      `and send "audience": "${config.loginAudience}" (GET /v1/info names the audience)`);
  }
  if (body.audience !== undefined && body.audience !== config.loginAudience) {
    throw forbidden(`login is signed for audience "${body.audience}", not for this server ("${config.loginAudience}"): sign a fresh one for this server`);
  }
  const key = publicKeyOf(body.address);
  const signature = decodeSignature(body.signature);
  const message = loginMessage(timestamp, body.audience);
  if (!verify(null, Buffer.from(message), key, signature)) {
    throw forbidden(`signature does not match address ${body.address} for message ${message}`);
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
  const { loginAudience, unboundLogin } = context.config;
  // How to log in here: our clients read the audience once per endpoint and sign the bound form with it.
  app.get('/v1/info', {
    schema: {
      tags: ['login'],
      summary: 'This server\'s login audience and which login messages it accepts',
      security: [],
      response: {
        200: {
          type: 'object',
          properties: {
            audience: { type: 'string' },
            loginMessage: { type: 'string', description: 'the bound message to sign, with <unix seconds> in place of the timestamp' },
            unboundLogin: { type: 'string', enum: ['accept', 'refuse'], description: 'whether nosana_secret_<unix seconds> is still accepted' },
          },
        },
      },
    },
  }, async () => ({ audience: loginAudience, loginMessage: `nosana_secret_${loginAudience}_<unix seconds>`, unboundLogin }));

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
          audience: { type: 'string', pattern: AUDIENCE_PATTERN, description: 'set when the message signed is nosana_secret_<audience>_<timestamp>: this server\'s audience (GET /v1/info)' },
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
