// Short-lived JWTs (HS256: signed with node:crypto, verified with jose). Every verification checks issuer, audience,
// algorithm, subject, scope and expiry. A job token names the job and the owner whose secrets it reads; which keys it
// may read is looked up again on every request, so a revoked grant takes effect at once rather than when the token
// expires.
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import { forbidden } from './errors.js';

const ISSUER = 'nosana-secrets';
const AUDIENCE = 'nosana-secrets-api';

export type Principal =
  | { scope: 'owner'; address: string }
  | { scope: 'job'; address: string; job: string; owner: string };

// Verified tokens are remembered (by their exact text) until they expire, so a client that reuses its token skips
// the signature check; the cache is bounded, and expiry is still enforced by each entry's TTL.
const VERIFIED_CACHE_ENTRIES = 10_000;

// The protected header of every token this server issues, encoded once.
const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export class Tokens {
  private readonly verified = new LRUCache<string, Principal>({ max: VERIFIED_CACHE_ENTRIES });
  // Signing is on every login, so it uses node:crypto's synchronous HMAC over the standard JWS compact form: jose's
  // SignJWT goes through WebCrypto's thread pool and cost about 90 µs of the server's CPU per login. Verification,
  // where parsing untrusted input matters, stays with jose (and its result is cached).
  private readonly signingKey: KeyObject;
  // A WebCrypto key imported once: given raw bytes or a KeyObject, jose converts it again on every verify.
  private readonly verifyingKey: Promise<CryptoKey>;

  constructor(secret: Uint8Array, readonly ttlSeconds: number) {
    this.signingKey = createSecretKey(secret);
    this.verifyingKey = crypto.subtle.importKey('raw', new Uint8Array(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  }

  issue(principal: Principal): { token: string; expiresAt: Date } {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      scope: principal.scope,
      ...(principal.scope === 'job' ? { job: principal.job, owner: principal.owner } : {}),
      iss: ISSUER, aud: AUDIENCE, sub: principal.address, iat: now, exp: now + this.ttlSeconds,
    };
    const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const signature = createHmac('sha256', this.signingKey).update(signingInput).digest('base64url');
    return { token: `${signingInput}.${signature}`, expiresAt: new Date((now + this.ttlSeconds) * 1000) };
  }

  async verify(token: string): Promise<Principal> {
    return this.verified.get(token) ?? this.verifySignature(token);
  }

  private async verifySignature(token: string): Promise<Principal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, await this.verifyingKey, {
        issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'], requiredClaims: ['sub', 'exp', 'iat'],
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw forbidden('token expired: log in again');
      throw forbidden('token is not valid: log in again');
    }
    const address = payload.sub!;
    let principal: Principal;
    if (payload.scope === 'owner') {
      principal = { scope: 'owner', address };
    } else if (payload.scope === 'job' && typeof payload.job === 'string' && typeof payload.owner === 'string') {
      principal = { scope: 'job', address, job: payload.job, owner: payload.owner };
    } else {
      throw forbidden('token has no valid scope: log in again');
    }
    const ttl = payload.exp! * 1000 - Date.now();
    if (ttl > 0) this.verified.set(token, principal, { ttl });
    return principal;
  }
}

/** Reads the token from `Authorization: Bearer <jwt>` or, as the Nosana node sends it, `Authorization: <jwt>`. */
export function tokenFromHeader(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '' || value === 'null' || value === 'undefined') return undefined;
  const bearer = /^Bearer\s+(.+)$/i.exec(value);
  return bearer ? bearer[1]!.trim() : value;
}
