// Errors the API answers with. Every error body is JSON `{type, error}`; the legacy type names (ValidationError,
// ForbiddenError) are the ones upstream clients already read. Messages name the problem, never a secret value.
export class HttpError extends Error {
  constructor(readonly statusCode: number, readonly type: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

export const validation = (message: string) => new HttpError(400, 'ValidationError', message);
export const forbidden = (message: string) => new HttpError(403, 'ForbiddenError', message);
export const notFound = (message: string) => new HttpError(404, 'NotFoundError', message);
export const conflict = (message: string) => new HttpError(409, 'ConflictError', message);
export const tooLarge = (message: string) => new HttpError(413, 'PayloadTooLargeError', message);
export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new HttpError(429, 'TooManyRequestsError', message, { 'retry-after': String(retryAfterSeconds) });
export const unavailable = (message: string) => new HttpError(503, 'ServiceUnavailableError', message);
/** A source the server depends on (Solana RPC, IPFS) failed or timed out. */
export const badGateway = (message: string) => new HttpError(502, 'BadGatewayError', message);
