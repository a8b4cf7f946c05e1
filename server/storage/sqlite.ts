// The embedded default backend: one SQLite file through better-sqlite3, in WAL mode with a busy timeout so several
// processes can share the file. Secrets and grants are written with full fsync, so an acknowledged write survives
// even a power loss. Used login signatures go through a second connection without the per-commit fsync: they live
// 60 s, and an fsync per login would cap logins at the disk's fsync rate. A process crash loses none of them (WAL);
// only a power loss could forget the last moments of them. The files are the owner's only (0600): SQLite creates
// the -wal and -shm files with the mode of the database file, so creating that one 0600 covers all three.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import {
  checkVersion, StorageUnavailableError,
  type GrantRecord, type GrantWrite, type SecretRecord, type SecretWrite, type Storage,
} from './contract.js';

interface SecretRow {
  owner: string; key: string; sealed: string; kek_id: string; version: number; created_at: number; updated_at: number;
}
interface GrantRow { owner: string; job: string; readers: string; keys: string; created_at: number; updated_at: number }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS secrets (
  owner TEXT NOT NULL, key TEXT NOT NULL, sealed TEXT NOT NULL, kek_id TEXT NOT NULL,
  version INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (owner, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS secrets_kek_id ON secrets (kek_id);
CREATE TABLE IF NOT EXISTS grants (
  owner TEXT NOT NULL, job TEXT NOT NULL, readers TEXT NOT NULL, keys TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (owner, job)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_job ON grants (job, owner);
CREATE TABLE IF NOT EXISTS used_signatures (
  signature TEXT PRIMARY KEY, expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS used_signatures_expiry ON used_signatures (expires_at);
`;

function toSecret(row: SecretRow): SecretRecord {
  return {
    owner: row.owner, key: row.key, sealed: row.sealed, kekId: row.kek_id, version: row.version,
    createdAt: new Date(row.created_at), updatedAt: new Date(row.updated_at),
  };
}

/** The columns the read path fetches, in the order of ReadRow: the owner is known, it is the query's. */
const READ_COLUMNS = 'key, sealed, kek_id, version, created_at, updated_at';
// Built once, here: a statement is found by its SQL text, and a text built again on every call would be hashed again
// on every call (at read rates, that cost as much as the lookup in the database).
const READ_ONE = `SELECT ${READ_COLUMNS} FROM secrets WHERE owner = ? AND key = ?`;
const READ_MANY = `SELECT ${READ_COLUMNS} FROM secrets WHERE owner = ? AND key IN (SELECT value FROM json_each(?)) ORDER BY key`;
/**
 * Where the database stands, as this connection sees it: data_version moves with every commit of another connection
 * (another worker, the replay cache's connection, `rotate-keys`), total_changes() with every row this one wrote.
 */
const DATABASE_STATE = 'SELECT data_version, total_changes() FROM pragma_data_version';
/** Answers of the job read path kept (see whileUnchanged), and at most this many characters of theirs (2-4 MB). */
const READS_KEPT = 1_024;
const READ_CHARACTERS_KEPT = 2_000_000;

/** An answer of a read, with the database state it was read in (see SqliteStorage.whileUnchanged). */
interface KeptRead<T> { state: string; answer: T }

/** A bounded store of read answers, its size in characters as `size` counts them. */
function keptReads<T>(size: (answer: T) => number): LRUCache<string, KeptRead<T>> {
  return new LRUCache({ max: READS_KEPT, maxSize: READ_CHARACTERS_KEPT, sizeCalculation: ({ answer }) => size(answer) });
}

type ReadRow = [key: string, sealed: string, kekId: string, version: number, createdAt: number, updatedAt: number];

function readRecord(owner: string, [key, sealed, kekId, version, createdAt, updatedAt]: ReadRow): SecretRecord {
  return { owner, key, sealed, kekId, version, createdAt: new Date(createdAt), updatedAt: new Date(updatedAt) };
}

function toGrant(row: GrantRow): GrantRecord {
  return {
    owner: row.owner, job: row.job, readers: JSON.parse(row.readers) as string[], keys: JSON.parse(row.keys) as string[],
    createdAt: new Date(row.created_at), updatedAt: new Date(row.updated_at),
  };
}

interface PendingSignature {
  signature: string;
  expiresAt: number;
  resolve: (accepted: boolean) => void;
  reject: (error: unknown) => void;
}

/**
 * Every connection this process opens, with the statements prepared on it, stays referenced until the process exits.
 * better-sqlite3 12 compiled against the headers of Node 24.19 or later (what `npm install` builds or downloads on
 * such a Node) aborts the process when the garbage collector frees a statement or a connection outside a JavaScript
 * context (nodejs/node#65446: `Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook); the server did,
 * at start-up. A connection and a few dozen statements per storage opened: small and bounded.
 */
const RETAINED = new Map<Database.Database, { plain: Map<string, Database.Statement>; raw: Map<string, Database.Statement> }>();

function openDatabase(path: string, pragmas: string[]): Database.Database {
  const db = new Database(path);
  RETAINED.set(db, { plain: new Map(), raw: new Map() });
  // exec, not db.pragma(): pragma() prepares a statement of its own, which would be left to the collector.
  for (const pragma of pragmas) db.exec(`PRAGMA ${pragma}`);
  return db;
}

export class SqliteStorage implements Storage {
  readonly backend = 'sqlite';
  private db: Database.Database | undefined;
  private signaturesDb: Database.Database | undefined;
  /** Logins waiting for the group commit of this event-loop turn (see rememberSignature). */
  private pendingSignatures: PendingSignature[] = [];
  /**
   * The last answers of getSecrets (several keys) and grantsForJob, each with the database state it was read in: the
   * two reads every job read makes, which cost about 75 µs of its 200. One statement (~5 µs) tells whether anything
   * was written since; if so, or if the answer is not kept, the read goes to the database as before. So a revoked
   * grant or a changed value is seen by the very next request, whichever process wrote it. Answers are shared between
   * callers, which only read them.
   */
  private readonly secretReads = keptReads<SecretRecord[]>((records) => records.reduce((sum, record) => sum + record.sealed.length + record.key.length, 1));
  private readonly grantReads = keptReads<GrantRecord[]>((grants) =>
    grants.reduce((sum, grant) => sum + [...grant.keys, ...grant.readers].reduce((n, text) => n + text.length, 0), 1));

  constructor(private readonly path: string) {}

  private get open(): Database.Database {
    if (!this.db) throw new StorageUnavailableError('sqlite storage is closed');
    return this.db;
  }

  /**
   * Prepared once per connection and SQL text: compiling SQL on every call would dominate a fast read. With `raw`,
   * rows come back as arrays, which the read path uses: a keyed object per row cost more than the lookup itself.
   */
  private prepare<Params extends unknown[], Row = unknown>(db: Database.Database, sql: string, raw = false): Database.Statement<Params, Row> {
    const statements = RETAINED.get(db)!;
    const cache = raw ? statements.raw : statements.plain;
    let statement = cache.get(sql);
    if (!statement) cache.set(sql, (statement = raw ? db.prepare(sql).raw() : db.prepare(sql)));
    return statement as unknown as Database.Statement<Params, Row>;
  }

  private get signatures(): Database.Database {
    if (!this.signaturesDb) throw new StorageUnavailableError('sqlite storage is closed');
    return this.signaturesDb;
  }

  async init(): Promise<void> {
    if (this.path !== ':memory:') {
      mkdirSync(dirname(this.path), { recursive: true });
      closeSync(openSync(this.path, 'a', 0o600));
      // Files an earlier version left readable by others (0644) are tightened too.
      for (const file of [this.path, `${this.path}-wal`, `${this.path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
    }
    const db = openDatabase(this.path, ['busy_timeout = 5000', 'journal_mode = WAL', 'synchronous = FULL']);
    db.exec(SCHEMA);
    this.db = db;
    if (this.path === ':memory:') {
      this.signaturesDb = db;
    } else {
      this.signaturesDb = openDatabase(this.path, ['busy_timeout = 5000', 'synchronous = NORMAL']);
    }
  }

  async ping(): Promise<void> {
    this.prepare(this.open, 'SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.signaturesDb !== this.db) this.signaturesDb?.close();
    this.db?.close();
    this.db = undefined;
    this.signaturesDb = undefined;
  }

  async putSecrets(owner: string, writes: SecretWrite[]): Promise<SecretRecord[]> {
    const db = this.open;
    const upsert = this.prepare<[string, string, string, string, number, number], SecretRow>(db, `
      INSERT INTO secrets (owner, key, sealed, kek_id, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)
      ON CONFLICT (owner, key) DO UPDATE SET sealed = excluded.sealed, kek_id = excluded.kek_id,
        version = secrets.version + 1, updated_at = excluded.updated_at
      RETURNING *`);
    const now = Date.now();
    // A throw inside the transaction rolls it back: a write that did not get the version it names writes nothing.
    const run = db.transaction(() => writes.map((w) => checkVersion(w, toSecret(upsert.get(owner, w.key, w.sealed, w.kekId, now, now)!))));
    return run.immediate();
  }

  async getSecret(owner: string, key: string): Promise<SecretRecord | undefined> {
    const row = this.prepare<[string, string], ReadRow>(this.open, READ_ONE, true).get(owner, key);
    return row && readRecord(owner, row);
  }

  async getSecrets(owner: string, keys: string[]): Promise<SecretRecord[]> {
    if (keys.length === 0) return [];
    if (keys.length === 1) {
      const record = await this.getSecret(owner, keys[0]!);
      return record ? [record] : [];
    }
    const keysJson = JSON.stringify(keys);
    return this.whileUnchanged(this.secretReads, `${owner}\0${keysJson}`, () =>
      this.prepare<[string, string], ReadRow>(this.open, READ_MANY, true).all(owner, keysJson).map((row) => readRecord(owner, row)));
  }

  /** The answer kept under `id` if the database is as it was when it was read, else `read()`'s, kept. */
  private whileUnchanged<T>(kept: LRUCache<string, KeptRead<T>>, id: string, read: () => T): T {
    // The state is read before the answer it tags: a write in between makes the tag older than the answer, never newer.
    const [dataVersion, totalChanges] = this.prepare<[], [number, number]>(this.open, DATABASE_STATE, true).get()!;
    const state = `${dataVersion}:${totalChanges}`;
    const hit = kept.get(id);
    if (hit?.state === state) return hit.answer;
    const answer = read();
    kept.set(id, { state, answer });
    return answer;
  }

  async listSecrets(owner: string, prefix = ''): Promise<SecretRecord[]> {
    const rows = this.prepare<[string, string, string], SecretRow>(this.open, 
      'SELECT * FROM secrets WHERE owner = ? AND substr(key, 1, length(?)) = ? ORDER BY key',
    ).all(owner, prefix, prefix);
    return rows.map(toSecret);
  }

  async deleteSecret(owner: string, key: string): Promise<boolean> {
    return this.prepare(this.open, 'DELETE FROM secrets WHERE owner = ? AND key = ?').run(owner, key).changes > 0;
  }

  async listSecretsNotWrappedBy(kekId: string, limit: number): Promise<SecretRecord[]> {
    const rows = this.prepare<[string, number], SecretRow>(this.open, 
      'SELECT * FROM secrets WHERE kek_id <> ? ORDER BY owner, key LIMIT ?',
    ).all(kekId, limit);
    return rows.map(toSecret);
  }

  async rewrapSecret(owner: string, key: string, expectedSealed: string, sealed: string, kekId: string): Promise<boolean> {
    return this.prepare(this.open, 
      'UPDATE secrets SET sealed = ?, kek_id = ? WHERE owner = ? AND key = ? AND sealed = ?',
    ).run(sealed, kekId, owner, key, expectedSealed).changes > 0;
  }

  async putGrant(grant: GrantWrite): Promise<GrantRecord> {
    const now = Date.now();
    const row = this.prepare<[string, string, string, string, number, number], GrantRow>(this.open, `
      INSERT INTO grants (owner, job, readers, keys, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (owner, job) DO UPDATE SET readers = excluded.readers, keys = excluded.keys, updated_at = excluded.updated_at
      RETURNING *`).get(grant.owner, grant.job, JSON.stringify(grant.readers), JSON.stringify(grant.keys), now, now);
    return toGrant(row!);
  }

  async deleteGrant(owner: string, job: string): Promise<boolean> {
    return this.prepare(this.open, 'DELETE FROM grants WHERE owner = ? AND job = ?').run(owner, job).changes > 0;
  }

  async listGrants(owner: string): Promise<GrantRecord[]> {
    return this.prepare<[string], GrantRow>(this.open, 'SELECT * FROM grants WHERE owner = ? ORDER BY job').all(owner).map(toGrant);
  }

  async grantsForJob(job: string): Promise<GrantRecord[]> {
    return this.whileUnchanged(this.grantReads, job, () =>
      this.prepare<[string], GrantRow>(this.open, 'SELECT * FROM grants WHERE job = ? ORDER BY owner').all(job).map(toGrant));
  }

  /**
   * Logins arriving in the same turn of the event loop are remembered in one transaction (a group commit): each
   * commit appends WAL pages, and one commit per login cost more than the insert itself. A login waits at most for
   * the rest of the current turn. Two logins with the same signature in one batch still get one acceptance.
   */
  rememberSignature(signature: string, expiresAt: Date): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.pendingSignatures.push({ signature, expiresAt: expiresAt.getTime(), resolve, reject }) === 1) {
        setImmediate(() => this.rememberPendingSignatures());
      }
    });
  }

  private rememberPendingSignatures(): void {
    const batch = this.pendingSignatures;
    this.pendingSignatures = [];
    let accepted: boolean[];
    try {
      const db = this.signatures;
      // An expired entry for the same signature may still be there before the purge runs: it no longer counts.
      const insert = this.prepare<[string, number, number]>(db, `
        INSERT INTO used_signatures (signature, expires_at) VALUES (?, ?)
        ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at WHERE used_signatures.expires_at < ?`);
      const now = Date.now();
      accepted = db.transaction(() => batch.map((entry) => insert.run(entry.signature, entry.expiresAt, now).changes > 0)).immediate();
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      return;
    }
    batch.forEach((entry, index) => entry.resolve(accepted[index]!));
  }

  async purgeExpiredSignatures(now: Date): Promise<number> {
    return this.prepare(this.signatures, 'DELETE FROM used_signatures WHERE expires_at < ?').run(now.getTime()).changes;
  }
}
