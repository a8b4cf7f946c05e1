// The node's sessions with secrets servers. A login signature is single-use and ed25519 signs the same second
// identically, so a node key logs in once per server and keeps that owner token until shortly before it expires;
// each job's read-only token is then got by exchanging it, without signing again, and kept too. Keeping a job token
// is safe: the server looks the grant up again on every read, so a revoked grant stops the very next read.
// Concurrent reconciles share one login in flight.
import { decodeJwt } from 'jose';
import { isTokenRefusal, SecretsClient, type SecretValue } from '../../common/client.js';
import type { Keypair } from '../../common/login.js';

/** Get a new token when the one held has less than this left. */
const RENEW_BEFORE_MS = 60_000;

interface Token {
  token: string;
  expiresAtMs: number;
}

interface Held {
  pending: Promise<Token>;
  token?: Token;
}

/** The job is granted to the node by another owner than the binding names: nothing was read. */
export class OwnerMismatchError extends Error {
  constructor(readonly grantedBy: string) {
    super(`granted by ${grantedBy}`);
  }
}

export class NodeSessions {
  private readonly clients = new Map<string, SecretsClient>();
  /** Owner tokens by endpoint|node, job tokens by endpoint|node|job. */
  private readonly tokens = new Map<string, Held>();

  constructor(private readonly timeoutMs = 10_000) {}

  /**
   * Reads `owner`'s `keys`, and every granted key under `prefixes`, as the job's reader `keypair`. Throws OwnerMismatchError before reading when the grant
   * is another owner's, the server's ApiError (403 no grant or key not granted, 404 no such key), or
   * ServerUnreachableError.
   */
  async readJobSecrets(
    endpoint: string, keypair: Keypair, job: string, owner: string, keys: string[], prefixes: string[] = [],
  ): Promise<Record<string, SecretValue>> {
    const client = this.client(endpoint);
    for (let attempt = 1; ; attempt++) {
      const jobToken = await this.jobToken(endpoint, keypair, job);
      const grantedBy = decodeJwt(jobToken.token).owner;
      if (grantedBy !== owner) {
        if (attempt > 1) throw new OwnerMismatchError(String(grantedBy));
        this.tokens.delete(`${endpoint}|${keypair.address}|${job}`); // the grant may have moved since: ask again
        continue;
      }
      try {
        // spec.dataFrom: every granted key under each prefix, read with the named keys in one call.
        const found = await Promise.all(prefixes.map((prefix) => client.readableKeys(jobToken.token, prefix)));
        const all = [...new Set([...keys, ...found.flat()])];
        if (all.length === 0) return {};
        return (await client.readSecrets(jobToken.token, all)).secrets;
      } catch (error) {
        // The server restarted with a new signing key, or a token expired early: start afresh once.
        if (attempt > 1 || !isTokenRefusal(error)) throw error;
        this.tokens.delete(`${endpoint}|${keypair.address}`);
        this.tokens.delete(`${endpoint}|${keypair.address}|${job}`);
      }
    }
  }

  private client(endpoint: string): SecretsClient {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = new SecretsClient({ endpoint, timeoutMs: this.timeoutMs });
      this.clients.set(endpoint, client);
    }
    return client;
  }

  private async jobToken(endpoint: string, keypair: Keypair, job: string): Promise<Token> {
    const ownerId = `${endpoint}|${keypair.address}`;
    return this.held(`${ownerId}|${job}`, async () => {
      const owner = await this.held(ownerId, () => this.client(endpoint).login(keypair));
      try {
        return await this.client(endpoint).jobToken(owner.token, job);
      } catch (error) {
        if (!isTokenRefusal(error)) throw error;
        this.tokens.delete(ownerId);
        const fresh = await this.held(ownerId, () => this.client(endpoint).login(keypair));
        return this.client(endpoint).jobToken(fresh.token, job);
      }
    });
  }

  /** The token held under `id` while it has time left, else a new one from `get` (one request in flight per id). */
  private held(id: string, get: () => Promise<{ token: string; expiresAt: string }>): Promise<Token> {
    const current = this.tokens.get(id);
    if (current && (!current.token || current.token.expiresAtMs - Date.now() > RENEW_BEFORE_MS)) return current.pending;
    const entry: Held = {
      pending: get().then(({ token, expiresAt }) => {
        entry.token = { token, expiresAtMs: Date.parse(expiresAt) };
        return entry.token;
      }),
    };
    this.tokens.set(id, entry);
    entry.pending.catch(() => {
      if (this.tokens.get(id) === entry) this.tokens.delete(id);
    });
    this.prune();
    return entry.pending;
  }

  /** Drops expired tokens now and then, so jobs that ended do not pile up. */
  private prune(): void {
    if (this.tokens.size % 256 !== 0) return;
    const now = Date.now();
    for (const [id, held] of this.tokens) if (held.token && held.token.expiresAtMs <= now) this.tokens.delete(id);
  }
}
