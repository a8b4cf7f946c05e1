// The audit trail: one line per access decision, allowed or refused, never a value. Routes log what they allowed
// (they know the keys and the outcome); the refusals (401/403), which are thrown from many places (no token, a bad
// token, a job token writing, a key outside the grant, a job not granted), are logged here, once, by the route's
// `config.audit` event name.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerContext } from './context.js';
import { HttpError } from './errors.js';

export type AuditEvent = 'read' | 'list' | 'write' | 'delete' | 'grant' | 'list_grants' | 'revoke' | 'login';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The audit event of this route; a refusal on it gets one audit line. Routes without it audit themselves. */
    audit?: AuditEvent;
  }
}

/** Who a request's token named, once verified: kept for the refusal line of a request refused after that. */
const principals = new WeakMap<FastifyRequest, { address: string; job?: string }>();

export function rememberPrincipal(request: FastifyRequest, principal: { address: string; job?: string }): void {
  principals.set(request, principal);
}

export function auditRefusals(app: FastifyInstance, context: ServerContext): void {
  app.addHook('onError', async (request, _reply, error) => {
    const event = request.routeOptions.config.audit;
    if (event === undefined || !(error instanceof HttpError) || (error.statusCode !== 401 && error.statusCode !== 403)) return;
    const principal = principals.get(request);
    const params = request.params as { '*'?: string; job?: string };
    const body = request.body as { job?: unknown } | undefined;
    const bodyJob = typeof body?.job === 'string' ? body.job : undefined;
    context.audit.info({
      event, address: principal?.address, job: principal?.job ?? params.job ?? bodyJob, key: params['*'],
      outcome: error.type, reason: error.message,
    }, `${event} refused`);
  });
}
