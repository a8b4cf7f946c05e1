// The node's logins. A login signature is single-use and ed25519 signs the same second identically, so the node signs
// once per key and endpoint (an owner-scope token) and exchanges that token for each job's read-only token
// (POST /v1/tokens/job). Both are cached until shortly before they expire; concurrent mounts share one request.
import { ApiError, isTokenRefusal, SecretsClient, ServerUnreachableError } from '../common/client.js';
import type { Keypair } from '../common/login.js';
import { MountError, MountErrorCode } from './errors.js';
import type { InjectorMetrics } from './metrics.js';

interface CachedToken {
  token: Promise<string>;
  /** When to stop using it: 80 % into its lifetime, so a mount never carries a token that expires in flight. */
  refreshAt: number;
}

export type ServerCall = 'login' | 'job_token' | 'read';

export class NodeSessions {
  private readonly clients = new Map<string, SecretsClient>();
  private readonly ownerTokens = new Map<string, CachedToken>();
  private readonly jobTokens = new Map<string, CachedToken>();

  constructor(private readonly metrics: InjectorMetrics, private readonly timeoutMs = 5_000, private readonly caFile?: string) {}

  client(endpoint: string): SecretsClient {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = new SecretsClient({ endpoint, timeoutMs: this.timeoutMs, caFile: this.caFile });
      this.clients.set(endpoint, client);
    }
    return client;
  }

  /** The read-only token of `job` for this node key; from the cache when it is still fresh. */
  async jobToken(endpoint: string, keypair: Keypair, job: string): Promise<string> {
    const id = `${endpoint}\0${keypair.address}\0${job}`;
    const cached = this.jobTokens.get(id);
    if (cached && Date.now() < cached.refreshAt) {
      this.metrics.tokenCache.inc({ result: 'hit' });
      return cached.token;
    }
    this.metrics.tokenCache.inc({ result: 'miss' });
    const token = this.exchange(endpoint, keypair, job);
    return this.remember(this.jobTokens, id, token);
  }

  /** Forgets the tokens of this key and job, after the server refused one of them. */
  forget(endpoint: string, keypair: Keypair, job: string): void {
    this.jobTokens.delete(`${endpoint}\0${keypair.address}\0${job}`);
    this.ownerTokens.delete(`${endpoint}\0${keypair.address}`);
  }

  async call<T>(call: ServerCall, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.metrics.serverCalls.inc({ call, outcome: 'success' });
      return result;
    } catch (error) {
      const outcome = error instanceof ServerUnreachableError ? 'unreachable'
        : error instanceof ApiError ? (error.status === 403 ? 'forbidden' : error.status === 404 ? 'not_found' : 'error')
        : 'error';
      this.metrics.serverCalls.inc({ call, outcome });
      throw error;
    }
  }

  private async exchange(endpoint: string, keypair: Keypair, job: string): Promise<{ token: string; expiresAt: string }> {
    const client = this.client(endpoint);
    const ownerToken = await this.ownerToken(endpoint, keypair);
    try {
      return await this.call('job_token', () => client.jobToken(ownerToken, job));
    } catch (error) {
      if (!isTokenRefusal(error)) throw toMountError(error, 'job_token', `job token for job ${job}`);
      // The owner token went stale (server restarted with a new JWT secret, clock jump): sign in once more.
      this.ownerTokens.delete(`${endpoint}\0${keypair.address}`);
      const fresh = await this.ownerToken(endpoint, keypair);
      return this.call('job_token', () => client.jobToken(fresh, job)).catch((again: unknown) => {
        throw toMountError(again, 'job_token', `job token for job ${job}`);
      });
    }
  }

  private ownerToken(endpoint: string, keypair: Keypair): Promise<string> {
    const id = `${endpoint}\0${keypair.address}`;
    const cached = this.ownerTokens.get(id);
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    const login = this.call('login', () => this.client(endpoint).login(keypair))
      .catch((error: unknown) => { throw toMountError(error, 'login', `login of node ${keypair.address}`); });
    return this.remember(this.ownerTokens, id, login);
  }

  private remember(cache: Map<string, CachedToken>, id: string, issued: Promise<{ token: string; expiresAt: string }>): Promise<string> {
    const startedAt = Date.now();
    const entry: CachedToken = { token: issued.then((answer) => answer.token), refreshAt: Number.POSITIVE_INFINITY };
    cache.set(id, entry);
    issued.then(
      (answer) => { entry.refreshAt = startedAt + 0.8 * (Date.parse(answer.expiresAt) - startedAt); },
      () => { if (cache.get(id) === entry) cache.delete(id); },
    );
    return entry.token;
  }
}

/** Maps a client error to the Mount error code a user can act on; messages are the server's, which hold no values. */
export function toMountError(error: unknown, call: ServerCall, what: string, key?: string): MountError {
  if (error instanceof MountError) return error;
  if (error instanceof ServerUnreachableError) return new MountError(MountErrorCode.ServerUnreachable, error.message, key);
  if (error instanceof ApiError) {
    const message = `${what}: ${error.message}`;
    if (error.status === 403) {
      if (call === 'login') return new MountError(MountErrorCode.LoginRefused, message, key);
      if (call === 'job_token') return new MountError(MountErrorCode.JobNotGranted, message, key);
      return new MountError(MountErrorCode.KeyNotGranted, message, key);
    }
    if (error.status === 404) return new MountError(MountErrorCode.KeyNotFound, message, key);
    return new MountError(MountErrorCode.ServerError, `${message} (HTTP ${error.status})`, key);
  }
  return new MountError(MountErrorCode.ServerError, `${what}: ${error instanceof Error ? error.message : String(error)}`, key);
}
