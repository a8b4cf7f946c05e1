// MySQL and MariaDB through a mysql2 pool. Names, values and signatures are stored as binary strings, so comparisons
// are byte-exact (no case folding, no trailing-space padding) and keys sort in byte order like the other backends.
// The pool drops a connection that broke and opens a new one on the next call.
import mysql from 'mysql2/promise';
import { checkVersion, type GrantRecord, type GrantWrite, type SecretRecord, type SecretWrite, type Storage } from './contract.js';
import {
  byteOrder, errorCode, errorMessage, guarded, misconfigured, parseConnectionUrl, unavailable,
  UNREACHABLE_HINT, type NetworkStorageOptions, type Target,
} from './network.js';

type Text = Buffer | string;
interface SecretRow {
  owner: Text; key: Text; sealed: Text; kek_id: Text; version: number; created_at: number | string; updated_at: number | string;
}
interface GrantRow { owner: Text; job: Text; readers: string; keys: string; created_at: number | string; updated_at: number | string }

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS secrets (
    owner VARBINARY(512) NOT NULL, \`key\` VARBINARY(1024) NOT NULL, sealed MEDIUMBLOB NOT NULL, kek_id VARBINARY(255) NOT NULL,
    version INT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, \`key\`), KEY secrets_kek_id (kek_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS \`grants\` (
    owner VARBINARY(512) NOT NULL, job VARBINARY(512) NOT NULL, readers MEDIUMTEXT NOT NULL, \`keys\` MEDIUMTEXT NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, job), KEY grants_job (job, owner)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS used_signatures (
    signature VARBINARY(512) NOT NULL PRIMARY KEY, expires_at BIGINT NOT NULL, KEY used_signatures_expiry (expires_at)
  ) ENGINE=InnoDB`,
];

/** Server errors that mean "try again later": lost races, overload, shutdown. */
const TRANSIENT_CODES = new Set([
  'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_QUERY_INTERRUPTED',
  'ER_NET_READ_ERROR', 'ER_NET_WRITE_INTERRUPTED', 'ER_NET_READ_INTERRUPTED', 'ER_CONNECTION_KILLED',
]);
const CONFIG_CODES = new Set([
  'ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_TABLEACCESS_DENIED_ERROR', 'ER_NOT_SUPPORTED_AUTH_MODE',
]);

function isTransient(error: unknown): boolean {
  const code = errorCode(error);
  if (code && TRANSIENT_CODES.has(code)) return true;
  if (code && CONFIG_CODES.has(code)) return false;
  // mysql2 marks errors that ended the connection as fatal, and reports use of a dead connection without a code.
  return (error as { fatal?: boolean }).fatal === true || /closed state|connection lost|timeout/i.test(errorMessage(error));
}

const text = (value: Text): string => (typeof value === 'string' ? value : value.toString('utf8'));

function toSecret(row: SecretRow): SecretRecord {
  return {
    owner: text(row.owner), key: text(row.key), sealed: text(row.sealed), kekId: text(row.kek_id), version: row.version,
    createdAt: new Date(Number(row.created_at)), updatedAt: new Date(Number(row.updated_at)),
  };
}

function toGrant(row: GrantRow): GrantRecord {
  return {
    owner: text(row.owner), job: text(row.job), readers: JSON.parse(row.readers) as string[], keys: JSON.parse(row.keys) as string[],
    createdAt: new Date(Number(row.created_at)), updatedAt: new Date(Number(row.updated_at)),
  };
}

const DEADLOCK_ATTEMPTS = 3;

export class MysqlStorage implements Storage {
  readonly backend = 'mysql';
  private readonly pool: mysql.Pool;
  private readonly target: Target;
  private closed = false;

  constructor(connection: string, options: NetworkStorageOptions = {}) {
    const { target } = parseConnectionUrl('mysql', connection, 3306);
    this.target = target;
    this.pool = mysql.createPool({
      uri: connection,
      connectionLimit: 10,
      connectTimeout: options.timeoutMs ?? 5000,
      enableKeepAlive: true,
      // Without FOUND_ROWS, affectedRows tells an insert (1) from a take-over (2) from "left alone" (0).
      flags: ['-FOUND_ROWS'],
      charset: 'utf8mb4',
    });
  }

  private async query<R>(sql: string, params: unknown[] = []): Promise<R> {
    return guarded(this.target, async () => (await this.pool.query(sql, params))[0] as R, isTransient);
  }

  /** Runs `work` in one transaction; retried when InnoDB picks it as a deadlock victim (it was rolled back whole). */
  private transaction<T>(work: (connection: mysql.PoolConnection) => Promise<T>): Promise<T> {
    return guarded(this.target, async () => {
      for (let attempt = 1; ; attempt++) {
        const connection = await this.pool.getConnection();
        try {
          await connection.beginTransaction();
          const result = await work(connection);
          await connection.commit();
          connection.release();
          return result;
        } catch (error) {
          await connection.rollback().then(() => connection.release(), () => connection.destroy());
          if (errorCode(error) !== 'ER_LOCK_DEADLOCK' || attempt >= DEADLOCK_ATTEMPTS) throw error;
        }
      }
    }, isTransient);
  }

  async init(): Promise<void> {
    try {
      for (const statement of SCHEMA) await this.query(statement);
    } catch (error) {
      this.closed = true;
      await this.pool.end().catch(() => {});
      const code = errorCode(error);
      if (code === 'ER_ACCESS_DENIED_ERROR') throw misconfigured(this.target, `login refused: ${errorMessage(error)} (check the user and password)`);
      if (code === 'ER_BAD_DB_ERROR') throw misconfigured(this.target, `${errorMessage(error)} (create it, or name an existing database)`);
      if (code && CONFIG_CODES.has(code)) throw misconfigured(this.target, `${errorMessage(error)} (the user needs CREATE on the database)`);
      throw unavailable(this.target, error, UNREACHABLE_HINT);
    }
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async putSecrets(owner: string, writes: SecretWrite[]): Promise<SecretRecord[]> {
    if (writes.length === 0) return [];
    // Rows are written in key order, which keeps the lock order of concurrent calls the same.
    const order = writes.map((_, index) => index).sort((a, b) => byteOrder(writes[a]!.key, writes[b]!.key));
    return this.transaction(async (connection) => {
      const now = Date.now();
      const records: SecretRecord[] = new Array<SecretRecord>(writes.length);
      for (const index of order) {
        const write = writes[index]!;
        await connection.query(`
          INSERT INTO secrets (owner, \`key\`, sealed, kek_id, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)
          ON DUPLICATE KEY UPDATE sealed = VALUES(sealed), kek_id = VALUES(kek_id), version = version + 1, updated_at = VALUES(updated_at)`,
        [owner, write.key, write.sealed, write.kekId, now, now]);
        const [rows] = await connection.query('SELECT * FROM secrets WHERE owner = ? AND `key` = ?', [owner, write.key]);
        records[index] = checkVersion(write, toSecret((rows as SecretRow[])[0]!));
      }
      return records;
    });
  }

  async getSecret(owner: string, key: string): Promise<SecretRecord | undefined> {
    const rows = await this.query<SecretRow[]>('SELECT * FROM secrets WHERE owner = ? AND `key` = ?', [owner, key]);
    return rows[0] && toSecret(rows[0]);
  }

  async getSecrets(owner: string, keys: string[]): Promise<SecretRecord[]> {
    if (keys.length === 0) return [];
    const rows = await this.query<SecretRow[]>('SELECT * FROM secrets WHERE owner = ? AND `key` IN (?) ORDER BY `key`', [owner, keys]);
    return rows.map(toSecret);
  }

  async listSecrets(owner: string, prefix = ''): Promise<SecretRecord[]> {
    // A byte comparison of the key's head, not LIKE, so "%", "_" and "\" in the prefix mean themselves.
    const rows = await this.query<SecretRow[]>(
      'SELECT * FROM secrets WHERE owner = ? AND `key` >= ? AND LEFT(`key`, LENGTH(?)) = ? ORDER BY `key`',
      [owner, prefix, prefix, prefix]);
    return rows.map(toSecret);
  }

  async deleteSecret(owner: string, key: string): Promise<boolean> {
    const result = await this.query<mysql.ResultSetHeader>('DELETE FROM secrets WHERE owner = ? AND `key` = ?', [owner, key]);
    return result.affectedRows > 0;
  }

  async listSecretsNotWrappedBy(kekId: string, limit: number): Promise<SecretRecord[]> {
    const rows = await this.query<SecretRow[]>(
      'SELECT * FROM secrets WHERE kek_id <> ? ORDER BY owner, `key` LIMIT ?', [kekId, limit]);
    return rows.map(toSecret);
  }

  async rewrapSecret(owner: string, key: string, expectedSealed: string, sealed: string, kekId: string): Promise<boolean> {
    const result = await this.query<mysql.ResultSetHeader>(
      'UPDATE secrets SET sealed = ?, kek_id = ? WHERE owner = ? AND `key` = ? AND sealed = ?',
      [sealed, kekId, owner, key, expectedSealed]);
    return result.affectedRows > 0;
  }

  async putGrant(grant: GrantWrite): Promise<GrantRecord> {
    return this.transaction(async (connection) => {
      const now = Date.now();
      await connection.query(`
        INSERT INTO \`grants\` (owner, job, readers, \`keys\`, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
        ON DUPLICATE KEY UPDATE readers = VALUES(readers), \`keys\` = VALUES(\`keys\`), updated_at = VALUES(updated_at)`,
      [grant.owner, grant.job, JSON.stringify(grant.readers), JSON.stringify(grant.keys), now, now]);
      const [rows] = await connection.query('SELECT * FROM `grants` WHERE owner = ? AND job = ?', [grant.owner, grant.job]);
      return toGrant((rows as GrantRow[])[0]!);
    });
  }

  async deleteGrant(owner: string, job: string): Promise<boolean> {
    const result = await this.query<mysql.ResultSetHeader>('DELETE FROM `grants` WHERE owner = ? AND job = ?', [owner, job]);
    return result.affectedRows > 0;
  }

  async listGrants(owner: string): Promise<GrantRecord[]> {
    return (await this.query<GrantRow[]>('SELECT * FROM `grants` WHERE owner = ? ORDER BY job', [owner])).map(toGrant);
  }

  async grantsForJob(job: string): Promise<GrantRecord[]> {
    return (await this.query<GrantRow[]>('SELECT * FROM `grants` WHERE job = ? ORDER BY owner', [job])).map(toGrant);
  }

  async rememberSignature(signature: string, expiresAt: Date): Promise<boolean> {
    // One statement, atomic per row across processes: inserted (1) or took over an expired entry (2) wins; 0 is a replay.
    const result = await this.query<mysql.ResultSetHeader>(`
      INSERT INTO used_signatures (signature, expires_at) VALUES (?, ?)
      ON DUPLICATE KEY UPDATE expires_at = IF(expires_at < ?, VALUES(expires_at), expires_at)`,
    [signature, expiresAt.getTime(), Date.now()]);
    return result.affectedRows > 0;
  }

  async purgeExpiredSignatures(now: Date): Promise<number> {
    const result = await this.query<mysql.ResultSetHeader>('DELETE FROM used_signatures WHERE expires_at < ?', [now.getTime()]);
    return result.affectedRows;
  }
}
