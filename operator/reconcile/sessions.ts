// The node's sessions with secrets servers. A login signature is single-use and ed25519 signs the same second
// identically, so a node key logs in once per server and keeps that owner token until shortly before it expires;
// every binding then exchanges it for its job's read-only token, without signing again. Concurrent reconciles share
// one login in flight.
import { decodeJwt } from 'jose';
import { ApiError, SecretsClient } from '../../common/client.js';
import type { Keypair } from '../../common/login.js';

/** Log in again when the owner token has less than this left. */
const RENEW_BEFORE_MS = 60_000;

interface Session {
  token: string;
  expiresAtMs: number;
}

export interface JobSession {
  token: string;
  /** The owner whose secrets the job token reads (from the grant). */
  owner: string;
}

export class NodeSessions {
  private readonly clients = new Map<string, SecretsClient>();
  private readonly sessions = new Map<string, { login: Promise<Session>; session?: Session }>();

  constructor(private readonly timeoutMs = 10_000) {}

  client(endpoint: string): SecretsClient {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = new SecretsClient({ endpoint, timeoutMs: this.timeoutMs });
      this.clients.set(endpoint, client);
    }
    return client;
  }

  /** The read-only token of `job` for the node `keypair`; throws the server's ApiError when there is no grant. */
  async jobSession(endpoint: string, keypair: Keypair, job: string): Promise<JobSession> {
    const client = this.client(endpoint);
    let session = await this.session(endpoint, keypair);
    let answer;
    try {
      answer = await client.jobToken(session.token, job);
    } catch (error) {
      // The server may have restarted with a new signing key, or the token may have expired early: log in once more.
      if (!(error instanceof ApiError && error.status === 403 && /log in again/.test(error.message))) throw error;
      this.forget(endpoint, keypair, session);
      session = await this.session(endpoint, keypair);
      answer = await client.jobToken(session.token, job);
    }
    const owner = decodeJwt(answer.token).owner;
    return { token: answer.token, owner: typeof owner === 'string' ? owner : '' };
  }

  private session(endpoint: string, keypair: Keypair): Promise<Session> {
    const id = `${endpoint}|${keypair.address}`;
    const current = this.sessions.get(id);
    if (current?.session && current.session.expiresAtMs - Date.now() <= RENEW_BEFORE_MS) {
      this.sessions.delete(id);
    } else if (current) {
      return current.login;
    }
    const entry: { login: Promise<Session>; session?: Session } = {
      login: this.client(endpoint).login(keypair).then(({ token, expiresAt }) => {
        entry.session = { token, expiresAtMs: Date.parse(expiresAt) };
        return entry.session;
      }),
    };
    this.sessions.set(id, entry);
    entry.login.catch(() => {
      if (this.sessions.get(id) === entry) this.sessions.delete(id);
    });
    return entry.login;
  }

  private forget(endpoint: string, keypair: Keypair, session: Session): void {
    const id = `${endpoint}|${keypair.address}`;
    if (this.sessions.get(id)?.session === session) this.sessions.delete(id);
  }
}
