// Who is calling: the token from the Authorization header, verified, and for a job token the grant looked up again,
// so a revoked grant stops access at once.
import type { FastifyRequest, RouteShorthandOptions } from 'fastify';
import { rememberPrincipal } from './audit.js';
import type { ServerContext } from './context.js';
import { forbidden } from './errors.js';
import type { JobAccess } from './grants/source.js';
import { tokenFromHeader, type Principal } from './tokens.js';

export type Caller =
  | { scope: 'owner'; address: string }
  | { scope: 'job'; address: string; job: string; access: JobAccess };

export async function authenticate(context: ServerContext, request: FastifyRequest): Promise<Caller> {
  const principal = await verifiedPrincipal(context, request);
  rememberPrincipal(request, { address: principal.address, job: principal.scope === 'job' ? principal.job : undefined });
  if (principal.scope === 'owner') return principal;
  const access = await context.grants.resolve(principal.job, principal.address, principal.owner);
  return { scope: 'job', address: principal.address, job: principal.job, access };
}

/** A token from the request's Authorization header that verifies, or a 403 saying how to get one. */
async function verifiedPrincipal(context: ServerContext, request: FastifyRequest): Promise<Principal> {
  const token = tokenFromHeader(request.headers.authorization);
  if (token === undefined) throw forbidden('missing token: log in with POST /login and send Authorization: Bearer <token>');
  return context.tokens.verify(token);
}

/**
 * Options of a route that takes a body larger than the default: its limit, and the token checked before the body
 * is read, so only a caller who logged in can make the server buffer that much. (The handler still authenticates;
 * the token is verified once, then cached.)
 */
export function largeBody(context: ServerContext, bodyLimit: number): Pick<RouteShorthandOptions, 'bodyLimit' | 'onRequest'> {
  return { bodyLimit, onRequest: async (request) => { await verifiedPrincipal(context, request); } };
}

export async function authenticateOwner(context: ServerContext, request: FastifyRequest): Promise<string> {
  const caller = await authenticate(context, request);
  if (caller.scope !== 'owner') throw forbidden('a job token is read-only: log in without job to manage secrets');
  return caller.address;
}
