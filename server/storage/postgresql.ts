// PostgreSQL through a pg Pool. Keys sort in byte order (COLLATE "C") like the other backends; every multi-row
// write is one transaction. The pool drops a connection that broke and opens a new one on the next call, so the
// backend recovers by itself when the database comes back.
import pg from 'pg';
import { checkVersion, VersionConflictError, type GrantRecord, type GrantWrite, type SecretRecord, type SecretWrite, type Storage } from './contract.js';
import {
  byteOrder, errorCode, errorMessage, guarded, misconfigured, parseConnectionUrl, unavailable,
  UNREACHABLE_HINT, type NetworkStorageOptions, type Target,
} from './network.js';

interface SecretRow {
  owner: string; key: string; sealed: string; kek_id: string; version: number; created_at: Date; updated_at: Date;
}
interface GrantRow { owner: string; job: string; readers: string[]; keys: string[]; created_at: Date; updated_at: Date }

/** Serialises concurrent init() calls: CREATE ... IF NOT EXISTS alone races on pg_type and pg_class. */
const SCHEMA_LOCK = 0x6e6f73616e61; // "nosana"

const SCHEMA = `
CREATE TABLE IF NOT EXISTS secrets (
  owner TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, sealed TEXT NOT NULL, kek_id TEXT NOT NULL,
  version INTEGER NOT NULL, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (owner, key)
);
CREATE INDEX IF NOT EXISTS secrets_kek_id ON secrets (kek_id);
CREATE TABLE IF NOT EXISTS grants (
  owner TEXT COLLATE "C" NOT NULL, job TEXT COLLATE "C" NOT NULL, readers TEXT[] NOT NULL, keys TEXT[] NOT NULL,
  created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (owner, job)
);
CREATE INDEX IF NOT EXISTS grants_job ON grants (job, owner);
CREATE TABLE IF NOT EXISTS used_signatures (
  signature TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS used_signatures_expiry ON used_signatures (expires_at);
`;

/** SQLSTATEs that mean "try again later": connection exceptions, shutdown, overload, lost races. */
function isTransient(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) {
    const code = error.code ?? '';
    return code.startsWith('08') || code.startsWith('53') || code.startsWith('57P') || code === '40001' || code === '40P01';
  }
  // pg reports dropped connections and its own timeouts as plain Errors without a SQLSTATE.
  return /connection|terminated|timeout|not queryable/i.test(errorMessage(error));
}

function toSecret(row: SecretRow): SecretRecord {
  return {
    owner: row.owner, key: row.key, sealed: row.sealed, kekId: row.kek_id, version: row.version,
    createdAt: row.created_at, updatedAt: row.updated_at,
  };
}

function toGrant(row: GrantRow): GrantRecord {
  return {
    owner: row.owner, job: row.job, readers: row.readers, keys: row.keys, createdAt: row.created_at, updatedAt: row.updated_at,
  };
}

export class PostgresStorage implements Storage {
  readonly backend = 'postgresql';
  private readonly pool: pg.Pool;
  private readonly target: Target;

  constructor(connection: string, options: NetworkStorageOptions = {}) {
    const { target } = parseConnectionUrl('postgresql', connection, 5432);
    this.target = target;
    const timeoutMs = options.timeoutMs ?? 5000;
    this.pool = new pg.Pool({
      connectionString: connection,
      max: 10,
      connectionTimeoutMillis: timeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      query_timeout: timeoutMs * 3,
      statement_timeout: timeoutMs * 2,
    });
    // An idle connection that the database (or the network) closes emits here; the pool already discards it, and
    // without a listener the process would crash.
    this.pool.on('error', () => {});
  }

  private run<T>(work: () => Promise<T>): Promise<T> {
    return guarded(this.target, work, isTransient);
  }

  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.run(() => this.pool.query<R>(sql, params));
  }

  /** Runs `work` in one transaction on one connection; a connection that failed mid-way is discarded, not reused. */
  private transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.run(async () => {
      const client = await this.pool.connect();
      let failed = false;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // A version conflict is an answer, not a broken connection: keep the connection for the pool.
        failed = !(error instanceof VersionConflictError);
        await client.query('ROLLBACK').catch(() => { failed = true; });
        throw error;
      } finally {
        client.release(failed);
      }
    });
  }

  async init(): Promise<void> {
    try {
      await this.transaction(async (client) => {
        await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
        await client.query(SCHEMA);
      });
    } catch (error) {
      await this.pool.end().catch(() => {});
      const code = errorCode(error);
      if (code === '28P01' || code === '28000') throw misconfigured(this.target, `login refused: ${errorMessage(error)} (check the user and password)`);
      if (code === '3D000') throw misconfigured(this.target, `${errorMessage(error)} (create it, or name an existing database)`);
      if (code === '42501') throw misconfigured(this.target, `${errorMessage(error)} (the user needs CREATE on the database)`);
      if (error instanceof pg.DatabaseError && !isTransient(error)) throw misconfigured(this.target, errorMessage(error));
      throw unavailable(this.target, error, UNREACHABLE_HINT);
    }
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  async putSecrets(owner: string, writes: SecretWrite[]): Promise<SecretRecord[]> {
    if (writes.length === 0) return [];
    // Rows are locked in key order, so two concurrent calls over the same keys cannot deadlock.
    const order = writes.map((_, index) => index).sort((a, b) => byteOrder(writes[a]!.key, writes[b]!.key));
    const now = new Date();
    return this.transaction(async (client) => {
      const records: SecretRecord[] = new Array<SecretRecord>(writes.length);
      for (const index of order) {
        const write = writes[index]!;
        const { rows } = await client.query<SecretRow>(`
          INSERT INTO secrets (owner, key, sealed, kek_id, version, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5)
          ON CONFLICT (owner, key) DO UPDATE SET sealed = excluded.sealed, kek_id = excluded.kek_id,
            version = secrets.version + 1, updated_at = excluded.updated_at
          RETURNING *`, [owner, write.key, write.sealed, write.kekId, now]);
        records[index] = checkVersion(write, toSecret(rows[0]!));
      }
      return records;
    });
  }

  async getSecret(owner: string, key: string): Promise<SecretRecord | undefined> {
    const { rows } = await this.query<SecretRow>('SELECT * FROM secrets WHERE owner = $1 AND key = $2', [owner, key]);
    return rows[0] && toSecret(rows[0]);
  }

  async getSecrets(owner: string, keys: string[]): Promise<SecretRecord[]> {
    if (keys.length === 0) return [];
    const { rows } = await this.query<SecretRow>(
      'SELECT * FROM secrets WHERE owner = $1 AND key = ANY($2::text[]) ORDER BY key', [owner, keys]);
    return rows.map(toSecret);
  }

  async listSecrets(owner: string, prefix = ''): Promise<SecretRecord[]> {
    // A plain comparison, not LIKE, so "%" and "_" in the prefix mean themselves; `key >= $2` lets the index help.
    const { rows } = await this.query<SecretRow>(
      'SELECT * FROM secrets WHERE owner = $1 AND key >= $2 AND left(key, length($2)) = $2 ORDER BY key', [owner, prefix]);
    return rows.map(toSecret);
  }

  async deleteSecret(owner: string, key: string): Promise<boolean> {
    const { rowCount } = await this.query('DELETE FROM secrets WHERE owner = $1 AND key = $2', [owner, key]);
    return (rowCount ?? 0) > 0;
  }

  async listSecretsNotWrappedBy(kekId: string, limit: number): Promise<SecretRecord[]> {
    const { rows } = await this.query<SecretRow>(
      'SELECT * FROM secrets WHERE kek_id <> $1 ORDER BY owner, key LIMIT $2', [kekId, limit]);
    return rows.map(toSecret);
  }

  async rewrapSecret(owner: string, key: string, expectedSealed: string, sealed: string, kekId: string): Promise<boolean> {
    const { rowCount } = await this.query(
      'UPDATE secrets SET sealed = $1, kek_id = $2 WHERE owner = $3 AND key = $4 AND sealed = $5',
      [sealed, kekId, owner, key, expectedSealed]);
    return (rowCount ?? 0) > 0;
  }

  async putGrant(grant: GrantWrite): Promise<GrantRecord> {
    const { rows } = await this.query<GrantRow>(`
      INSERT INTO grants (owner, job, readers, keys, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
      ON CONFLICT (owner, job) DO UPDATE SET readers = excluded.readers, keys = excluded.keys, updated_at = excluded.updated_at
      RETURNING *`, [grant.owner, grant.job, grant.readers, grant.keys, new Date()]);
    return toGrant(rows[0]!);
  }

  async deleteGrant(owner: string, job: string): Promise<boolean> {
    const { rowCount } = await this.query('DELETE FROM grants WHERE owner = $1 AND job = $2', [owner, job]);
    return (rowCount ?? 0) > 0;
  }

  async listGrants(owner: string): Promise<GrantRecord[]> {
    const { rows } = await this.query<GrantRow>('SELECT * FROM grants WHERE owner = $1 ORDER BY job', [owner]);
    return rows.map(toGrant);
  }

  async grantsForJob(job: string): Promise<GrantRecord[]> {
    const { rows } = await this.query<GrantRow>('SELECT * FROM grants WHERE job = $1 ORDER BY owner', [job]);
    return rows.map(toGrant);
  }

  async rememberSignature(signature: string, expiresAt: Date): Promise<boolean> {
    // One statement: PostgreSQL's ON CONFLICT makes the insert-or-take-over-an-expired-entry atomic across processes.
    const { rowCount } = await this.query(`
      INSERT INTO used_signatures (signature, expires_at) VALUES ($1, $2)
      ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at WHERE used_signatures.expires_at < $3`,
      [signature, expiresAt, new Date()]);
    return (rowCount ?? 0) > 0;
  }

  async purgeExpiredSignatures(now: Date): Promise<number> {
    const { rowCount } = await this.query('DELETE FROM used_signatures WHERE expires_at < $1', [now]);
    return rowCount ?? 0;
  }
}
