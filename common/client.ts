// The HTTP client of the secrets API, used by the CLI, the operator and the injector. It speaks the /v1 API and
// turns every error answer into an ApiError that carries the server's type and message (never a value).
import { signLogin, type Keypair } from './login.js';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(readonly status: number, readonly type: string, message: string) {
    super(message);
  }
}

/** The server could not be reached at all (connection refused, DNS, timeout). */
export class ServerUnreachableError extends Error {
  override name = 'ServerUnreachableError';
}

export interface SecretMetadata {
  key: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface SecretValue extends SecretMetadata {
  value: string;
}

export interface Grant {
  job: string;
  keys: string[];
  readers: string[];
  createdAt: string;
  updatedAt: string;
}

export interface ClientOptions {
  endpoint: string;
  timeoutMs?: number;
}

export class SecretsClient {
  private readonly endpoint: string;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Logs in with a signed message; with `job`, the token is the read-only token of that job. */
  login(keypair: Keypair, job?: string): Promise<{ token: string; expiresAt: string }> {
    return this.request('POST', '/login', undefined, signLogin(keypair, { job }));
  }

  /** Exchanges an owner token for the read-only token of a job granted to that address (no new signature). */
  jobToken(ownerToken: string, job: string): Promise<{ token: string; expiresAt: string }> {
    return this.request('POST', '/v1/tokens/job', ownerToken, { job });
  }

  listSecrets(token: string, prefix?: string): Promise<{ secrets: SecretMetadata[] }> {
    const query = prefix === undefined ? '' : `?prefix=${encodeURIComponent(prefix)}`;
    return this.request('GET', `/v1/secrets${query}`, token);
  }

  getSecret(token: string, key: string): Promise<SecretValue> {
    return this.request('GET', `/v1/secrets/${encodeKey(key)}`, token);
  }

  /** Reads several keys in one call; the answer has every key asked for, or the call fails naming the key. */
  readSecrets(token: string, keys: string[]): Promise<{ secrets: Record<string, SecretValue> }> {
    return this.request('POST', '/v1/read', token, { keys });
  }

  putSecret(token: string, key: string, value: string): Promise<SecretMetadata> {
    return this.request('PUT', `/v1/secrets/${encodeKey(key)}`, token, { value });
  }

  async deleteSecret(token: string, key: string): Promise<void> {
    await this.request('DELETE', `/v1/secrets/${encodeKey(key)}`, token);
  }

  putGrant(token: string, job: string, keys: string[], readers: string[]): Promise<Grant> {
    return this.request('PUT', `/v1/grants/${encodeURIComponent(job)}`, token, { keys, readers });
  }

  listGrants(token: string): Promise<{ grants: Grant[] }> {
    return this.request('GET', '/v1/grants', token);
  }

  async deleteGrant(token: string, job: string): Promise<void> {
    await this.request('DELETE', `/v1/grants/${encodeURIComponent(job)}`, token);
  }

  private async request<T>(method: string, path: string, token?: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.endpoint}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      throw new ServerUnreachableError(`cannot reach the secrets server at ${this.endpoint}: ${reason}`);
    }
    const text = await response.text();
    if (!response.ok) {
      let type = 'HttpError';
      let message = `${method} ${path} answered ${response.status}`;
      try {
        const parsed = JSON.parse(text) as { type?: string; error?: string };
        if (parsed.type) type = parsed.type;
        if (parsed.error) message = parsed.error;
      } catch {
        // not JSON: keep the generic message, never echo a body that could hold anything
      }
      throw new ApiError(response.status, type, message);
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }
}

/** Keys may hold `/`; each segment is encoded on its own so the path keeps its separators. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
