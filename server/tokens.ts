// Short-lived JWTs (HS256, jose). Every verification checks issuer, audience, algorithm, subject, scope and expiry.
// A job token names the job and the owner whose secrets it reads; which keys it may read is looked up again on every
// request, so a revoked grant takes effect at once rather than when the token expires.
import { errors, jwtVerify, SignJWT } from 'jose';
import { forbidden } from './errors.js';

const ISSUER = 'nosana-secrets';
const AUDIENCE = 'nosana-secrets-api';

export type Principal =
  | { scope: 'owner'; address: string }
  | { scope: 'job'; address: string; job: string; owner: string };

export class Tokens {
  constructor(private readonly secret: Uint8Array, readonly ttlSeconds: number) {}

  async issue(principal: Principal): Promise<{ token: string; expiresAt: Date }> {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, string> = { scope: principal.scope };
    if (principal.scope === 'job') {
      claims.job = principal.job;
      claims.owner = principal.owner;
    }
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(principal.address)
      .setIssuedAt(now)
      .setExpirationTime(now + this.ttlSeconds)
      .sign(this.secret);
    return { token, expiresAt: new Date((now + this.ttlSeconds) * 1000) };
  }

  async verify(token: string): Promise<Principal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.secret, {
        issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'], requiredClaims: ['sub', 'exp', 'iat'],
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw forbidden('token expired: log in again');
      throw forbidden('token is not valid: log in again');
    }
    const address = payload.sub!;
    if (payload.scope === 'owner') return { scope: 'owner', address };
    if (payload.scope === 'job' && typeof payload.job === 'string' && typeof payload.owner === 'string') {
      return { scope: 'job', address, job: payload.job, owner: payload.owner };
    }
    throw forbidden('token has no valid scope: log in again');
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
