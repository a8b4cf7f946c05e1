// Who is calling: the token from the Authorization header, verified, and for a job token the grant looked up again,
// so a revoked grant stops access at once.
import type { FastifyRequest } from 'fastify';
import { rememberPrincipal } from './audit.js';
import type { ServerContext } from './context.js';
import { forbidden } from './errors.js';
import type { JobAccess } from './grants/source.js';
import { tokenFromHeader, type Principal } from './tokens.js';

export type Caller =
  | { scope: 'owner'; address: string }
  | { scope: 'job'; address: string; job: string; access: JobAccess };

export async function authenticate(context: ServerContext, request: FastifyRequest): Promise<Caller> {
  const token = tokenFromHeader(request.headers.authorization);
  if (token === undefined) throw forbidden('missing token: log in with POST /login and send Authorization: Bearer <token>');
  const principal: Principal = await context.tokens.verify(token);
  rememberPrincipal(request, { address: principal.address, job: principal.scope === 'job' ? principal.job : undefined });
  if (principal.scope === 'owner') return principal;
  const access = await context.grants.resolve(principal.job, principal.address, principal.owner);
  return { scope: 'job', address: principal.address, job: principal.job, access };
}

export async function authenticateOwner(context: ServerContext, request: FastifyRequest): Promise<string> {
  const caller = await authenticate(context, request);
  if (caller.scope !== 'owner') throw forbidden('a job token is read-only: log in without job to manage secrets');
  return caller.address;
}
