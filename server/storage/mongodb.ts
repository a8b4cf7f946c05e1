// MongoDB, AWS DocumentDB (`?tls=true`) and FerretDB through the official driver. Only features all three share are
// used: unique indexes, single-document atomic updates, anchored regexes. No TTL or partial index: the replay cache is
// a collection whose _id is the signature (unique by definition) with an expiry checked in the queries.
//
// putSecrets is all-or-none where the server has transactions (a replica set or sharded cluster: MongoDB, DocumentDB).
// Where it has none (a standalone mongod, FerretDB), each key is written atomically in key order: if the connection
// drops mid-call, the keys before the failure may be written while the caller gets StorageUnavailableError (503);
// retrying the same call converges to the same values, though versions may then have grown by more than one.
//
// FerretDB 1.x (SQLite backend) applies an update as read-then-write, so concurrent replaces of one key from several
// processes can lose version increments, and a rewrap racing a write can overwrite it. MongoDB and DocumentDB update
// a document atomically. The replay cache relies only on unique inserts and holds on all three.
import {
  MongoClient, MongoError, MongoNetworkError, MongoServerError, MongoServerSelectionError,
  type ClientSession, type Collection, type Db,
} from 'mongodb';
import { VersionConflictError, type GrantRecord, type GrantWrite, type SecretRecord, type SecretWrite, type Storage } from './contract.js';
import { byteOrder, errorMessage, guarded, misconfigured, unavailable, UNREACHABLE_HINT,
  type NetworkStorageOptions, type Target,
} from './network.js';

export const DEFAULT_MONGODB_DATABASE = 'nosana_secrets';

interface SecretDoc { owner: string; key: string; sealed: string; kekId: string; version: number; createdAt: Date; updatedAt: Date }
interface GrantDoc { owner: string; job: string; readers: string[]; keys: string[]; createdAt: Date; updatedAt: Date }
interface SignatureDoc { _id: string; expiresAt: Date }

const DUPLICATE_KEY = 11000;
/** Server error codes that mean "try again later": shutdown, step-down, network trouble seen by the server. */
const TRANSIENT_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);
const AUTH_CODES = new Set([13, 18]);

function isTransient(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoServerError) {
    return TRANSIENT_CODES.has(Number(error.code)) || error.hasErrorLabel('TransientTransactionError');
  }
  // Pool cleared, topology closed, not connected: the driver's own names for "no connection now".
  return error instanceof MongoError && /PoolCleared|TopologyClosed|NotConnected/.test(error.name);
}

const isDuplicate = (error: unknown): boolean => error instanceof MongoServerError && error.code === DUPLICATE_KEY;

/** Escapes every ASCII punctuation character, which PCRE (MongoDB) and RE2 (FerretDB) both read as a literal. */
function literalPrefix(prefix: string): RegExp {
  return new RegExp('^' + prefix.replace(/[!-/:-@[-`{-~]/g, '\\$&'));
}

function toSecret(doc: SecretDoc): SecretRecord {
  return {
    owner: doc.owner, key: doc.key, sealed: doc.sealed, kekId: doc.kekId, version: doc.version,
    createdAt: doc.createdAt, updatedAt: doc.updatedAt,
  };
}

function toGrant(doc: GrantDoc): GrantRecord {
  return { owner: doc.owner, job: doc.job, readers: doc.readers, keys: doc.keys, createdAt: doc.createdAt, updatedAt: doc.updatedAt };
}

/** Host list, password and database name of a mongodb:// string (which may list several hosts, so not `new URL`). */
function describe(connection: string): { target: Target; database: string } {
  const match = /^(mongodb(?:\+srv)?):\/\/(?:([^@/]*)@)?([^/?]*)(?:\/([^?]*))?/i.exec(connection);
  const scheme = match?.[1]?.toLowerCase() ?? 'mongodb';
  const credentials = match?.[2] ?? '';
  const colon = credentials.indexOf(':');
  const password = colon >= 0 ? credentials.slice(colon + 1) : undefined;
  const target = { scheme, where: match?.[3] || '(no host)', password };
  let database = DEFAULT_MONGODB_DATABASE;
  try {
    database = decodeURIComponent(match?.[4] ?? '') || DEFAULT_MONGODB_DATABASE;
  } catch {
    throw misconfigured(target, 'the database name is not valid percent-encoding');
  }
  return { target, database };
}

export class MongoStorage implements Storage {
  readonly backend = 'mongodb';
  private readonly client: MongoClient;
  private readonly target: Target;
  private readonly db: Db;
  private readonly secrets: Collection<SecretDoc>;
  private readonly grants: Collection<GrantDoc>;
  private readonly signatures: Collection<SignatureDoc>;
  private hasTransactions = false;

  constructor(connection: string, options: NetworkStorageOptions = {}) {
    const { target, database } = describe(connection);
    this.target = target;
    const timeoutMs = options.timeoutMs ?? 5000;
    try {
      // Defaults only: timeouts and pool size written in the connection string win.
      const given = (option: string): boolean => new RegExp(`[?&]${option}=`, 'i').test(connection);
      this.client = new MongoClient(connection, {
        ...(given('serverSelectionTimeoutMS') ? {} : { serverSelectionTimeoutMS: timeoutMs }),
        ...(given('connectTimeoutMS') ? {} : { connectTimeoutMS: timeoutMs }),
        ...(given('maxPoolSize') ? {} : { maxPoolSize: 10 }),
      });
    } catch (error) {
      throw misconfigured(target, `the connection string is not valid: ${errorMessage(error)}`);
    }
    this.db = this.client.db(database);
    this.secrets = this.db.collection<SecretDoc>('secrets');
    this.grants = this.db.collection<GrantDoc>('grants');
    this.signatures = this.db.collection<SignatureDoc>('used_signatures');
  }

  private run<T>(work: () => Promise<T>): Promise<T> {
    return guarded(this.target, work, isTransient);
  }

  async init(): Promise<void> {
    try {
      await this.client.connect();
      const hello = await this.db.admin().command({ hello: 1 });
      this.hasTransactions = typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
      // createIndex is idempotent; two processes creating the same index at once both succeed (or one is retried).
      await this.createIndexes().catch(() => this.createIndexes());
    } catch (error) {
      await this.client.close().catch(() => {});
      if (error instanceof MongoServerError && AUTH_CODES.has(Number(error.code))) {
        throw misconfigured(this.target, `login refused: ${errorMessage(error)} (check the user, password and authSource)`);
      }
      if (isTransient(error)) throw unavailable(this.target, error, UNREACHABLE_HINT);
      throw misconfigured(this.target, errorMessage(error));
    }
  }

  private async createIndexes(): Promise<void> {
    await this.secrets.createIndex({ owner: 1, key: 1 }, { unique: true, name: 'owner_key' });
    await this.secrets.createIndex({ kekId: 1 }, { name: 'kek_id' });
    await this.grants.createIndex({ owner: 1, job: 1 }, { unique: true, name: 'owner_job' });
    await this.grants.createIndex({ job: 1, owner: 1 }, { name: 'job_owner' });
    await this.signatures.createIndex({ expiresAt: 1 }, { name: 'expires_at' });
  }

  async ping(): Promise<void> {
    await this.run(() => this.db.command({ ping: 1 }));
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** One upsert; a concurrent first insert of the same key loses on the unique index and is simply retried. */
  private async upsertSecret(owner: string, write: SecretWrite, now: Date, session?: ClientSession): Promise<SecretRecord> {
    if (write.version !== undefined) return this.writeVersion(owner, write, write.version, now, session);
    for (let attempt = 1; ; attempt++) {
      try {
        const doc = await this.secrets.findOneAndUpdate(
          { owner, key: write.key },
          { $set: { sealed: write.sealed, kekId: write.kekId, updatedAt: now }, $inc: { version: 1 }, $setOnInsert: { createdAt: now } },
          { upsert: true, returnDocument: 'after', session }, // no projection: FerretDB's findAndModify has none
        );
        return toSecret(doc!);
      } catch (error) {
        if (!isDuplicate(error) || attempt >= 3 || session) throw error;
      }
    }
  }

  /** A compare-and-set write: version 1 is an insert (the unique index refuses a second), later ones need version - 1. */
  private async writeVersion(owner: string, write: SecretWrite, version: number, now: Date, session?: ClientSession): Promise<SecretRecord> {
    const fields = { sealed: write.sealed, kekId: write.kekId, updatedAt: now };
    if (version === 1) {
      const doc: SecretDoc = { owner, key: write.key, ...fields, version: 1, createdAt: now };
      try {
        await this.secrets.insertOne({ ...doc }, { session });
      } catch (error) {
        throw isDuplicate(error) ? new VersionConflictError(write.key) : error;
      }
      return toSecret(doc);
    }
    const doc = await this.secrets.findOneAndUpdate(
      { owner, key: write.key, version: version - 1 },
      { $set: fields, $inc: { version: 1 } },
      { returnDocument: 'after', session },
    );
    if (!doc) throw new VersionConflictError(write.key);
    return toSecret(doc);
  }

  async putSecrets(owner: string, writes: SecretWrite[]): Promise<SecretRecord[]> {
    if (writes.length === 0) return [];
    const order = writes.map((_, index) => index).sort((a, b) => byteOrder(writes[a]!.key, writes[b]!.key));
    const now = new Date();
    const writeAll = async (session?: ClientSession): Promise<SecretRecord[]> => {
      const records: SecretRecord[] = new Array<SecretRecord>(writes.length);
      for (const index of order) records[index] = await this.upsertSecret(owner, writes[index]!, now, session);
      return records;
    };
    if (!this.hasTransactions) return this.run(() => writeAll());
    return this.run(() => this.client.withSession((session) => session.withTransaction(() => writeAll(session))));
  }

  async getSecret(owner: string, key: string): Promise<SecretRecord | undefined> {
    const doc = await this.run(() => this.secrets.findOne({ owner, key }, { projection: { _id: 0 } }));
    return doc ? toSecret(doc) : undefined;
  }

  async getSecrets(owner: string, keys: string[]): Promise<SecretRecord[]> {
    if (keys.length === 0) return [];
    const docs = await this.run(() =>
      this.secrets.find({ owner, key: { $in: keys } }, { projection: { _id: 0 } }).sort({ key: 1 }).toArray());
    return docs.map(toSecret);
  }

  async listSecrets(owner: string, prefix = ''): Promise<SecretRecord[]> {
    const filter = prefix === '' ? { owner } : { owner, key: { $regex: literalPrefix(prefix) } };
    const docs = await this.run(() => this.secrets.find(filter, { projection: { _id: 0 } }).sort({ key: 1 }).toArray());
    return docs.map(toSecret);
  }

  async deleteSecret(owner: string, key: string): Promise<boolean> {
    const result = await this.run(() => this.secrets.deleteOne({ owner, key }));
    return result.deletedCount > 0;
  }

  async listSecretsNotWrappedBy(kekId: string, limit: number): Promise<SecretRecord[]> {
    const docs = await this.run(() => this.secrets.find({ kekId: { $ne: kekId } }, { projection: { _id: 0 } })
      .sort({ owner: 1, key: 1 }).limit(limit).toArray());
    return docs.map(toSecret);
  }

  async rewrapSecret(owner: string, key: string, expectedSealed: string, sealed: string, kekId: string): Promise<boolean> {
    const result = await this.run(() =>
      this.secrets.updateOne({ owner, key, sealed: expectedSealed }, { $set: { sealed, kekId } }));
    return result.modifiedCount > 0;
  }

  async putGrant(grant: GrantWrite): Promise<GrantRecord> {
    const now = new Date();
    const update = async (): Promise<GrantDoc | null> => this.grants.findOneAndUpdate(
      { owner: grant.owner, job: grant.job },
      { $set: { readers: grant.readers, keys: grant.keys, updatedAt: now }, $setOnInsert: { createdAt: now } },
      { upsert: true, returnDocument: 'after' },
    );
    // A concurrent first grant of the same (owner, job) loses on the unique index; the retry updates it instead.
    const doc = await this.run(() => update().catch((error: unknown) => (isDuplicate(error) ? update() : Promise.reject(error))));
    return toGrant(doc!);
  }

  async deleteGrant(owner: string, job: string): Promise<boolean> {
    return (await this.run(() => this.grants.deleteOne({ owner, job }))).deletedCount > 0;
  }

  async listGrants(owner: string): Promise<GrantRecord[]> {
    const docs = await this.run(() => this.grants.find({ owner }, { projection: { _id: 0 } }).sort({ job: 1 }).toArray());
    return docs.map(toGrant);
  }

  async grantsForJob(job: string): Promise<GrantRecord[]> {
    const docs = await this.run(() => this.grants.find({ job }, { projection: { _id: 0 } }).sort({ owner: 1 }).toArray());
    return docs.map(toGrant);
  }

  async rememberSignature(signature: string, expiresAt: Date): Promise<boolean> {
    // Only the unique _id decides, since FerretDB's updates and deletes are read-then-write, not atomic: of any number
    // of concurrent inserts of one _id exactly one succeeds. Taking over an expired entry inserts a claim ticket named
    // after the entry's expiry, so of the processes that saw that same expired entry exactly one wins the ticket.
    const claim = async (id: string): Promise<boolean> => {
      try {
        await this.signatures.insertOne({ _id: id, expiresAt });
        return true;
      } catch (error) {
        if (isDuplicate(error)) return false;
        throw error;
      }
    };
    return this.run(async () => {
      if (await claim(signature)) return true;
      const existing = await this.signatures.findOne({ _id: signature });
      if (!existing) return claim(signature); // purged in between: the insert decides again
      if (existing.expiresAt.getTime() >= Date.now()) return false;
      if (!(await claim(`${signature}@${existing.expiresAt.getTime()}`))) return false;
      await this.signatures.updateOne({ _id: signature, expiresAt: existing.expiresAt }, { $set: { expiresAt } });
      return true;
    });
  }

  async purgeExpiredSignatures(now: Date): Promise<number> {
    return (await this.run(() => this.signatures.deleteMany({ expiresAt: { $lt: now } }))).deletedCount;
  }
}
