// A node's sessions with secrets servers, for the injector and the operator alike. A login signature is single-use
// and ed25519 signs the same second identically, so a node key signs in once per server (an owner-scope token) and
// exchanges that token for each job's read-only token (POST /v1/tokens/job), always naming the job's owner: another
// owner's grant for the same job id then neither makes the exchange ambiguous nor stands in for the owner's own.
// Tokens are kept until 80 % into their lifetime and concurrent callers share one request in flight. Keeping a job
// token is safe: the server looks the grant up again on every read, so a revoked grant stops the very next read.
// The tokens kept are bounded: the least recently used go first, so an operator with ten thousand bindings holds the
// tokens of the jobs it is reading now, not one per binding (1.1 KB each) until they expire.
import { LRUCache } from 'lru-cache';
import { ApiError, isTokenRefusal, SecretsClient, ServerUnreachableError, type SecretValue } from './client.js';
import type { Keypair } from './login.js';

/** The three calls a read may take: sign in, exchange for the job's token, read. */
export type ServerCall = 'login' | 'job_token' | 'read';
export type CallOutcome = 'success' | 'unreachable' | 'forbidden' | 'not_found' | 'error';

/**
 * A call to the secrets server failed. `call` names the step, and so the cause: a refused `login` is the node's
 * signature or clock, a refused `job_token` means the owner grants this job nothing (now), a refused `read` means the
 * grant exists but leaves out a key. `error` is the client's ApiError or ServerUnreachableError (never a value).
 */
export class ServerCallError extends Error {
  override name = 'ServerCallError';
  constructor(readonly call: ServerCall, readonly error: unknown) {
    super(error instanceof Error ? error.message : String(error));
  }

  /** The HTTP status the server answered with; undefined when it was not reached. */
  get status(): number | undefined {
    return this.error instanceof ApiError ? this.error.status : undefined;
  }

  get unreachable(): boolean {
    return this.error instanceof ServerUnreachableError;
  }
}

/** Optional counters of the caller (the injector's metrics). */
export interface SessionObserver {
  call?(call: ServerCall, outcome: CallOutcome): void;
  tokenCache?(result: 'hit' | 'miss'): void;
}

interface Held {
  token: Promise<string>;
  /** When to stop using it: 80 % into its lifetime, so a request never carries a token that expires in flight. */
  refreshAt: number;
}

/**
 * Tokens kept, owner and job tokens together: a node's pods (the kubelet runs at most 110 by default) or the bindings
 * an operator reconciles at once fit many times over. An owner token is used for every exchange, so it stays.
 */
const DEFAULT_TOKENS_KEPT = 1_024;

export class NodeSessions {
  private readonly clients = new Map<string, SecretsClient>();
  /** Owner tokens by endpoint and node; job tokens by endpoint, node, job and owner. */
  private readonly tokens: LRUCache<string, Held>;
  private readonly timeoutMs: number;
  private readonly caFile: string | undefined;
  private readonly observer: SessionObserver;

  /** `caFile`: the only CA trusted for https endpoints (NOSANA_SECRETS_CA_FILE); without it, the system's. */
  constructor(options: { timeoutMs?: number; caFile?: string; observer?: SessionObserver; tokensKept?: number } = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.caFile = options.caFile;
    this.observer = options.observer ?? {};
    this.tokens = new LRUCache({ max: options.tokensKept ?? DEFAULT_TOKENS_KEPT });
  }

  client(endpoint: string): SecretsClient {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = new SecretsClient({ endpoint, timeoutMs: this.timeoutMs, caFile: this.caFile });
      this.clients.set(endpoint, client);
    }
    return client;
  }

  /**
   * Reads `owner`'s `keys` as a reader of `job` with the node key `keypair`. Throws ServerCallError naming the step
   * that failed. A refusal of a cached token is checked once with fresh tokens, so the error names today's cause
   * (a revoked grant fails the exchange, not the read) and a server restarted with a new signing key costs nothing.
   */
  async readJobSecrets(
    endpoint: string, keypair: Keypair, job: string, owner: string, keys: string[], prefixes: string[] = [],
  ): Promise<Record<string, SecretValue>> {
    const ownerId = `${endpoint}\0${keypair.address}`;
    const jobId = `${ownerId}\0${job}\0${owner}`;
    for (let attempt = 1; ; attempt++) {
      const { held, cached } = this.jobToken(endpoint, keypair, jobId, job, owner);
      const token = await held.token;
      try {
        return await this.call('read', () => this.readKeysAndPrefixes(this.client(endpoint), token, keys, prefixes));
      } catch (error) {
        if (attempt > 1 || !(error instanceof ServerCallError) || error.status !== 403) throw error;
        const tokenRefused = isTokenRefusal(error.error);
        // A fresh token refused for its grant: that is the answer. A cached one: the grant may have changed since.
        if (!cached && !tokenRefused) throw error;
        this.drop(jobId, held);
        if (tokenRefused) this.tokens.delete(ownerId);
      }
    }
  }

  /** `keys`, and every granted key under each of `prefixes` (a binding's spec.dataFrom), read in one call. */
  private async readKeysAndPrefixes(client: SecretsClient, token: string, keys: string[], prefixes: string[]): Promise<Record<string, SecretValue>> {
    const found = await Promise.all(prefixes.map((prefix) => client.readableKeys(token, prefix)));
    const all = prefixes.length === 0 ? keys : [...new Set([...keys, ...found.flat()])];
    if (all.length === 0) return {};
    return (await client.readSecrets(token, all)).secrets;
  }

  private jobToken(endpoint: string, keypair: Keypair, jobId: string, job: string, owner: string): { held: Held; cached: boolean } {
    const current = this.fresh(jobId);
    this.observer.tokenCache?.(current ? 'hit' : 'miss');
    if (current) return { held: current, cached: true };
    return { held: this.hold(jobId, () => this.exchange(endpoint, keypair, job, owner)), cached: false };
  }

  private async exchange(endpoint: string, keypair: Keypair, job: string, owner: string): Promise<{ token: string; expiresAt: string }> {
    const ownerId = `${endpoint}\0${keypair.address}`;
    const exchange = (ownerToken: string) => this.call('job_token', () => this.client(endpoint).jobToken(ownerToken, job, owner));
    const held = this.fresh(ownerId) ?? this.hold(ownerId, () => this.call('login', () => this.client(endpoint).login(keypair)));
    try {
      return await exchange(await held.token);
    } catch (error) {
      if (!(error instanceof ServerCallError && error.call === 'job_token' && isTokenRefusal(error.error))) throw error;
      // The owner token went stale (the server restarted with a new JWT secret, a clock jump): sign in once more.
      this.drop(ownerId, held);
      const again = this.fresh(ownerId) ?? this.hold(ownerId, () => this.call('login', () => this.client(endpoint).login(keypair)));
      return exchange(await again.token);
    }
  }

  private async call<T>(call: ServerCall, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.observer.call?.(call, 'success');
      return result;
    } catch (error) {
      const status = error instanceof ApiError ? error.status : undefined;
      const outcome: CallOutcome = error instanceof ServerUnreachableError ? 'unreachable'
        : status === 403 ? 'forbidden' : status === 404 ? 'not_found' : 'error';
      this.observer.call?.(call, outcome);
      throw new ServerCallError(call, error);
    }
  }

  private fresh(id: string): Held | undefined {
    const held = this.tokens.get(id);
    return held && Date.now() < held.refreshAt ? held : undefined;
  }

  /** Keeps the token `get` will answer under `id`; a failure forgets it, so the next caller asks again. */
  private hold(id: string, get: () => Promise<{ token: string; expiresAt: string }>): Held {
    const startedAt = Date.now();
    const issued = get();
    const held: Held = { token: issued.then((answer) => answer.token), refreshAt: Number.POSITIVE_INFINITY };
    this.tokens.set(id, held);
    issued.then(
      (answer) => { held.refreshAt = startedAt + 0.8 * (Date.parse(answer.expiresAt) - startedAt); },
      () => this.drop(id, held),
    );
    return held;
  }

  /** Forgets `held` unless a newer token already took its place (a concurrent caller's). */
  private drop(id: string, held: Held): void {
    if (this.tokens.peek(id) === held) this.tokens.delete(id);
  }
}
