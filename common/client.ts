// The HTTP client of the secrets API, used by the CLI, the operator and the injector. It speaks the /v1 API and
// turns every error answer into an ApiError that carries the server's type and message (never a value).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { CA_FILE_VARIABLE, ConfigError } from './config.js';
import { AUDIENCE_PATTERN, signLogin, type Keypair } from './login.js';

const audiencePattern = new RegExp(AUDIENCE_PATTERN);

// node:http with keep-alive rather than fetch: the injector answers a Mount within a few milliseconds and the
// operator reconciles thousands of bindings, and fetch costs about a millisecond more per call here.
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const systemCaAgent = new https.Agent({ keepAlive: true, maxSockets: 64 });
/** One HTTPS agent per CA file, trusting that CA only (read once: restart to trust a new CA). */
const caAgents = new Map<string, https.Agent>();

/** The HTTPS agent that trusts only the CA in `caFile` (PEM); a file that cannot be read is a ConfigError naming it. */
function agentFor(caFile: string): https.Agent {
  let agent = caAgents.get(caFile);
  if (agent === undefined) {
    let ca: Buffer;
    try {
      ca = readFileSync(caFile);
    } catch (error) {
      throw new ConfigError(`the CA file ${caFile} (${CA_FILE_VARIABLE}) cannot be read: ${(error as Error).message}`);
    }
    agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca });
    caAgents.set(caFile, agent);
  }
  return agent;
}

/** No answer within the client's timeout; the request was destroyed. */
class RequestTimeoutError extends Error {
  override name = 'RequestTimeoutError';
}

function send(url: URL, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number, tlsAgent: https.Agent): Promise<{ status: number; text: string }> {
  const transport = url.protocol === 'https:' ? https : http;
  const agent = url.protocol === 'https:' ? tlsAgent : httpAgent;
  return new Promise((resolve, reject) => {
    // A plain timer cleared on every outcome, not AbortSignal.timeout: that one keeps its signal and timer alive for
    // the whole timeout after each request, and the injector's garbage collector would carry thousands of them.
    const deadline = setTimeout(() => request.destroy(new RequestTimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(deadline);
      reject(error);
    };
    const request = transport.request(url, { method, headers, agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      response.on('error', fail);
    });
    request.on('error', fail);
    request.end(body);
  });
}

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

/** True when the server refused the token itself (expired, or signed with a JWT secret it no longer has): get a new one. */
export function isTokenRefusal(error: unknown): boolean {
  return error instanceof ApiError && error.status === 403 && /^token /.test(error.message);
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
  /** A PEM file of the CA that signed the server's certificate: https endpoints are then trusted by it alone. */
  caFile?: string;
}

export class SecretsClient {
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly tlsAgent: https.Agent;
  /** The server's login audience, asked once (GET /v1/info); undefined for a server without one (upstream's). */
  private audience?: Promise<string | undefined>;

  constructor(options: ClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.tlsAgent = options.caFile === undefined ? systemCaAgent : agentFor(options.caFile);
  }

  /**
   * Logs in with a signed message; with `job`, the token is the read-only token of that job. The message is bound to
   * the server's audience when it advertises one, so no other server that sees the login can use it here.
   */
  async login(keypair: Keypair, job?: string, owner?: string): Promise<{ token: string; expiresAt: string }> {
    const audience = await this.loginAudience();
    try {
      return await this.request('POST', '/login', undefined, signLogin(keypair, { job, owner, audience }));
    } catch (error) {
      // The server's audience changed since it was asked (LOGIN_AUDIENCE set, or JWT_SECRET replaced): ask again once.
      if (audience === undefined || !(error instanceof ApiError && error.message.startsWith('login is signed for audience'))) throw error;
      this.audience = undefined;
      return this.request('POST', '/login', undefined, signLogin(keypair, { job, owner, audience: await this.loginAudience() }));
    }
  }

  private loginAudience(): Promise<string | undefined> {
    this.audience ??= this.request<{ audience?: unknown }>('GET', '/v1/info').then(
      (info) => typeof info?.audience === 'string' && audiencePattern.test(info.audience) ? info.audience : undefined,
      (error: unknown) => {
        // A server without /v1/info (upstream's, or an older one) gets the unbound form. Another refusal gets it this
        // once and is asked again next time; an unreachable server fails the login as it would anyway.
        if (error instanceof ApiError && error.status === 404) return undefined;
        this.audience = undefined;
        if (error instanceof ApiError) return undefined;
        throw error;
      },
    );
    return this.audience;
  }

  /**
   * Exchanges an owner token for the read-only token of a job granted to that address (no new signature). With
   * `owner`, only that owner's grant counts, so another owner granting the same job id cannot make it ambiguous.
   */
  jobToken(ownerToken: string, job: string, owner?: string): Promise<{ token: string; expiresAt: string }> {
    return this.request('POST', '/v1/tokens/job', ownerToken, owner === undefined ? { job } : { job, owner });
  }

  listSecrets(token: string, prefix?: string): Promise<{ secrets: SecretMetadata[] }> {
    const query = prefix === undefined ? '' : `?prefix=${encodeURIComponent(prefix)}`;
    return this.request('GET', `/v1/secrets${query}`, token);
  }

  getSecret(token: string, key: string): Promise<SecretValue> {
    return this.request('GET', `/v1/secrets/${encodeKey(key)}`, token);
  }

  /**
   * The names of the keys under `prefix` this token may read (a job token: the granted keys that exist). The
   * compatible route answers values too; only the names are kept, and read again with their versions by readSecrets.
   */
  async readableKeys(token: string, prefix: string): Promise<string[]> {
    const values = await this.request<Record<string, string>>('GET', `/secrets?prefix=${encodeURIComponent(prefix)}`, token);
    return Object.keys(values);
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
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    let url: URL;
    try {
      url = new URL(`${this.endpoint}${path}`);
    } catch {
      throw new ServerUnreachableError(`the secrets server address ${JSON.stringify(this.endpoint)} is not a URL`);
    }
    let response: { status: number; text: string };
    try {
      response = await send(url, method, headers, payload, this.timeoutMs, this.tlsAgent);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ServerUnreachableError(`cannot reach the secrets server at ${this.endpoint}: ${reason}`);
    }
    const { status, text } = response;
    if (status < 200 || status >= 300) {
      let type = 'HttpError';
      let message = `${method} ${path} answered ${status}`;
      try {
        const parsed = JSON.parse(text) as { type?: string; error?: string };
        if (parsed.type) type = parsed.type;
        if (parsed.error) message = parsed.error;
      } catch {
        // not JSON: keep the generic message, never echo a body that could hold anything
      }
      throw new ApiError(status, type, message);
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }
}

/** Keys may hold `/`; each segment is encoded on its own so the path keeps its separators. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
