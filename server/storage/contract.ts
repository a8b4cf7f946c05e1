// The storage contract: every backend (sqlite, mongodb, postgresql, mysql, redis) implements exactly this, and one
// conformance suite (test/storage) proves each against a real server. Backends see only sealed (encrypted) values.

export interface SecretRecord {
  owner: string;
  key: string;
  /** The envelope-encrypted value, opaque to storage. */
  sealed: string;
  /** Id of the key-encryption key that wraps this value's data key; lets rotation find what is left to re-wrap. */
  kekId: string;
  /** Starts at 1, grows by one on every replace. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface SecretWrite {
  key: string;
  sealed: string;
  kekId: string;
  /**
   * The version this write makes, when the caller sealed the value for it: the write applies only over version - 1
   * (over no row, for 1). Otherwise the whole call fails with VersionConflictError and writes nothing (on MongoDB
   * without transactions, writes before the conflicting one stay). Without it, the version grows by one as ever.
   */
  version?: number;
}

export interface GrantWrite {
  /** The address whose secrets are granted. */
  owner: string;
  job: string;
  /** Addresses that may log in with this job and read the keys. */
  readers: string[];
  keys: string[];
}

export interface GrantRecord extends GrantWrite {
  createdAt: Date;
  updatedAt: Date;
}

export interface Storage {
  /** The URL scheme this backend serves, e.g. "sqlite". */
  readonly backend: string;
  /** Creates tables or indexes if missing. Idempotent, and safe while another process runs against the same data. */
  init(): Promise<void>;
  /** Throws StorageUnavailableError when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;

  /**
   * Creates or replaces each key atomically (all or none); versions grow by one per replace. A write that names its
   * `version` applies only over the version before it (compare-and-set). Returns in input order.
   */
  putSecrets(owner: string, writes: SecretWrite[]): Promise<SecretRecord[]>;
  getSecret(owner: string, key: string): Promise<SecretRecord | undefined>;
  /** The records that exist among `keys`, in key order. */
  getSecrets(owner: string, keys: string[]): Promise<SecretRecord[]>;
  /** All of an owner's records whose key starts with `prefix`, in key order. */
  listSecrets(owner: string, prefix?: string): Promise<SecretRecord[]>;
  deleteSecret(owner: string, key: string): Promise<boolean>;

  /** Up to `limit` records whose data key is not wrapped by `kekId`, for key rotation. */
  listSecretsNotWrappedBy(kekId: string, limit: number): Promise<SecretRecord[]>;
  /** Replaces the sealed value only if it is still `expectedSealed` (a concurrent write wins); version unchanged. */
  rewrapSecret(owner: string, key: string, expectedSealed: string, sealed: string, kekId: string): Promise<boolean>;

  /** Creates or replaces the grant of (owner, job). */
  putGrant(grant: GrantWrite): Promise<GrantRecord>;
  deleteGrant(owner: string, job: string): Promise<boolean>;
  /** An owner's grants, in job order. */
  listGrants(owner: string): Promise<GrantRecord[]>;
  /** Every owner's grant for one job, in owner order. */
  grantsForJob(job: string): Promise<GrantRecord[]>;

  /**
   * Records a login signature as used. Returns false when it was already recorded and not yet expired: that is a
   * replay. Must be atomic across processes sharing the database.
   */
  rememberSignature(signature: string, expiresAt: Date): Promise<boolean>;
  /** Forgets signatures whose expiry is before `now`; returns how many. */
  purgeExpiredSignatures(now: Date): Promise<number>;
}

/** A write named a version, and the key is not at the version before it any more: another write got there first. */
export class VersionConflictError extends Error {
  override name = 'VersionConflictError';
  constructor(readonly key: string) {
    super(`key ${JSON.stringify(key)} was written concurrently`);
  }
}

/**
 * For backends that upsert inside a transaction: throws VersionConflictError, which rolls the transaction back, when a
 * write that names its version did not get it.
 */
export function checkVersion(write: SecretWrite, record: SecretRecord): SecretRecord {
  if (write.version !== undefined && record.version !== write.version) throw new VersionConflictError(write.key);
  return record;
}

/** The database cannot be reached or answered with a transient failure; the API answers 503. */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
}

/** The connection string is malformed or names an unknown scheme; start-up fails with this message. */
export class StorageConfigError extends Error {
  override name = 'StorageConfigError';
}
