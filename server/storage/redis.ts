// Redis through ioredis. Layout, under a key prefix (default "nosana-secrets:", set with `?prefix=` in the URL):
//   secrets:<owner>  hash  key -> {"sealed","kekId","version","createdAt","updatedAt"}
//   owners           set   owners that have secrets (key rotation walks it)
//   grants:<owner>   hash  job -> {"readers","keys","createdAt","updatedAt"};  job:<job>  hash  owner -> the same
//   sig:<signature>  string with an absolute expiry: Redis forgets used signatures by itself
// Every write that touches more than one field runs as one Lua script, which Redis executes atomically.
// Commands fail at once while disconnected (no offline queue) and the client keeps reconnecting in the background.
import { Redis, ReplyError } from 'ioredis';
import { VersionConflictError, type GrantRecord, type GrantWrite, type SecretRecord, type SecretWrite, type Storage } from './contract.js';
import {
  byteOrder, errorMessage, guarded, misconfigured, parseConnectionUrl, unavailable,
  UNREACHABLE_HINT, type NetworkStorageOptions, type Target,
} from './network.js';

export const DEFAULT_REDIS_PREFIX = 'nosana-secrets:';

interface StoredSecret { sealed: string; kekId: string; version: number; createdAt: number; updatedAt: number }
interface StoredGrant { readers: string[]; keys: string[]; createdAt: number; updatedAt: number }

const SCRIPTS = {
  /**
   * KEYS: secrets hash, owners set. ARGV: owner, now, JSON [{key, sealed, kekId, version?}]. Returns the stored JSON
   * per write, or the error VERSION_CONFLICT <key> before writing anything when a write's version is not the next one.
   */
  putSecrets: {
    numberOfKeys: 2,
    lua: `
      local now = tonumber(ARGV[2])
      local writes = cjson.decode(ARGV[3])
      for _, write in ipairs(writes) do
        if write.version then
          local old = redis.call('HGET', KEYS[1], write.key)
          local current = old and cjson.decode(old).version or 0
          if write.version ~= current + 1 then return redis.error_reply('VERSION_CONFLICT ' .. write.key) end
        end
      end
      local out = {}
      for i, write in ipairs(writes) do
        local old = redis.call('HGET', KEYS[1], write.key)
        local record
        if old then
          record = cjson.decode(old)
          record.version = record.version + 1
        else
          record = { version = 1, createdAt = now }
        end
        record.sealed = write.sealed
        record.kekId = write.kekId
        record.updatedAt = now
        out[i] = cjson.encode(record)
        redis.call('HSET', KEYS[1], write.key, out[i])
      end
      redis.call('SADD', KEYS[2], ARGV[1])
      return out`,
  },
  /** KEYS: secrets hash, owners set. ARGV: key, owner. Forgets the owner once its last secret is gone. */
  deleteSecret: {
    numberOfKeys: 2,
    lua: `
      local removed = redis.call('HDEL', KEYS[1], ARGV[1])
      if removed == 1 and redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
      return removed`,
  },
  /** KEYS: secrets hash. ARGV: key, expected sealed, new sealed, new kekId. Compare-and-set; version unchanged. */
  rewrapSecret: {
    numberOfKeys: 1,
    lua: `
      local old = redis.call('HGET', KEYS[1], ARGV[1])
      if not old then return 0 end
      local record = cjson.decode(old)
      if record.sealed ~= ARGV[2] then return 0 end
      record.sealed = ARGV[3]
      record.kekId = ARGV[4]
      redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
      return 1`,
  },
  /**
   * KEYS: grants:<owner>, job:<job>. ARGV: owner, job, now, readers JSON, keys JSON. The lists are spliced in as
   * text because cjson would turn an empty list into an object.
   */
  putGrant: {
    numberOfKeys: 2,
    lua: `
      local createdAt = ARGV[3]
      local old = redis.call('HGET', KEYS[1], ARGV[2])
      if old then createdAt = string.format('%d', cjson.decode(old).createdAt) end
      local record = '{"readers":' .. ARGV[4] .. ',"keys":' .. ARGV[5] .. ',"createdAt":' .. createdAt .. ',"updatedAt":' .. ARGV[3] .. '}'
      redis.call('HSET', KEYS[1], ARGV[2], record)
      redis.call('HSET', KEYS[2], ARGV[1], record)
      return record`,
  },
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;

/** Server replies that mean "try again later". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY)/;

function isTransient(error: unknown): boolean {
  if (error instanceof ReplyError) return TRANSIENT_REPLY.test(errorMessage(error));
  // ioredis reports a missing connection with plain Errors: no offline queue, closed, retries exhausted, timeouts.
  return /writeable|connection is closed|max retries|timed out|connect/i.test(errorMessage(error));
}

export class RedisStorage implements Storage {
  readonly backend = 'redis';
  private readonly redis: Redis;
  private readonly target: Target;
  private readonly prefix: string;
  private lastError: Error | undefined;

  constructor(connection: string, options: NetworkStorageOptions = {}) {
    const { url, target } = parseConnectionUrl(connection.startsWith('rediss:') ? 'rediss' : 'redis', connection, 6379);
    this.target = target;
    this.prefix = url.searchParams.get('prefix') ?? DEFAULT_REDIS_PREFIX;
    const db = url.pathname.replace(/^\//, '');
    if (db !== '' && !/^\d+$/.test(db)) {
      throw misconfigured(target, `"/${db}" is not a database number: use redis://user:password@host:6379/0`);
    }
    const timeoutMs = options.timeoutMs ?? 5000;
    this.redis = new Redis({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 6379),
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: target.password,
      db: db === '' ? 0 : Number(db),
      tls: url.protocol === 'rediss:' ? {} : undefined,
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      // Fail fast while disconnected (the API answers 503) instead of queueing requests until the database returns.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // The ready check (INFO) would wait out several timeouts against a server that never answers; init() pings.
      enableReadyCheck: false,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    });
    for (const [name, script] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, script);
    // Without a listener ioredis prints every reconnect failure; the latest one goes into start-up errors.
    this.redis.on('error', (error: Error) => { this.lastError = error; });
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  private run<T>(work: () => Promise<T>): Promise<T> {
    return guarded(this.target, work, isTransient);
  }

  private script(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    // defineCommand adds methods at run time, which ioredis's types cannot know about.
    const call = (this.redis as unknown as Record<ScriptName, ScriptCall>)[name];
    return this.run(() => call.apply(this.redis, args));
  }

  async init(): Promise<void> {
    try {
      await this.redis.connect();
      await this.redis.ping();
    } catch (error) {
      this.redis.disconnect();
      const cause = this.lastError ?? error;
      if (/WRONGPASS|NOAUTH|NOPERM/.test(errorMessage(cause))) {
        throw misconfigured(this.target, `login refused: ${errorMessage(cause)} (check the user and password)`);
      }
      throw unavailable(this.target, cause, UNREACHABLE_HINT);
    }
  }

  async ping(): Promise<void> {
    await this.run(() => this.redis.ping());
  }

  async close(): Promise<void> {
    if (this.redis.status === 'end') return;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private toSecret(owner: string, key: string, json: string): SecretRecord {
    const stored = JSON.parse(json) as StoredSecret;
    return {
      owner, key, sealed: stored.sealed, kekId: stored.kekId, version: stored.version,
      createdAt: new Date(stored.createdAt), updatedAt: new Date(stored.updatedAt),
    };
  }

  private toGrant(owner: string, job: string, json: string): GrantRecord {
    const stored = JSON.parse(json) as StoredGrant;
    return {
      owner, job, readers: stored.readers, keys: stored.keys,
      createdAt: new Date(stored.createdAt), updatedAt: new Date(stored.updatedAt),
    };
  }

  async putSecrets(owner: string, writes: SecretWrite[]): Promise<SecretRecord[]> {
    if (writes.length === 0) return [];
    const stored = await this.script('putSecrets', this.key('secrets', owner), this.key('owners'), owner, Date.now(),
      JSON.stringify(writes.map(({ key, sealed, kekId, version }) => ({ key, sealed, kekId, version }))),
    ).catch((error: unknown) => {
      const conflict = error instanceof ReplyError && /VERSION_CONFLICT (.*)$/s.exec(errorMessage(error));
      throw conflict ? new VersionConflictError(conflict[1]!) : error;
    }) as string[];
    return writes.map((write, index) => this.toSecret(owner, write.key, stored[index]!));
  }

  async getSecret(owner: string, key: string): Promise<SecretRecord | undefined> {
    const json = await this.run(() => this.redis.hget(this.key('secrets', owner), key));
    return json === null ? undefined : this.toSecret(owner, key, json);
  }

  async getSecrets(owner: string, keys: string[]): Promise<SecretRecord[]> {
    const unique = [...new Set(keys)].sort(byteOrder);
    if (unique.length === 0) return [];
    const values = await this.run(() => this.redis.hmget(this.key('secrets', owner), ...unique));
    return unique.flatMap((key, index) => (values[index] ? [this.toSecret(owner, key, values[index])] : []));
  }

  private async allSecrets(owner: string): Promise<SecretRecord[]> {
    const fields = await this.run(() => this.redis.hgetall(this.key('secrets', owner)));
    return Object.keys(fields).sort(byteOrder).map((key) => this.toSecret(owner, key, fields[key]!));
  }

  async listSecrets(owner: string, prefix = ''): Promise<SecretRecord[]> {
    // Filtered here rather than with HSCAN MATCH, so glob characters in the prefix mean themselves.
    return (await this.allSecrets(owner)).filter((record) => record.key.startsWith(prefix));
  }

  async deleteSecret(owner: string, key: string): Promise<boolean> {
    return (await this.script('deleteSecret', this.key('secrets', owner), this.key('owners'), key, owner)) === 1;
  }

  async listSecretsNotWrappedBy(kekId: string, limit: number): Promise<SecretRecord[]> {
    // Rotation is a rare batch job, so it walks every owner instead of keeping an index per key-encryption key.
    const owners = (await this.run(() => this.redis.smembers(this.key('owners')))).sort(byteOrder);
    const found: SecretRecord[] = [];
    for (const owner of owners) {
      if (found.length >= limit) break;
      for (const record of await this.allSecrets(owner)) {
        if (record.kekId !== kekId && found.length < limit) found.push(record);
      }
    }
    return found;
  }

  async rewrapSecret(owner: string, key: string, expectedSealed: string, sealed: string, kekId: string): Promise<boolean> {
    return (await this.script('rewrapSecret', this.key('secrets', owner), key, expectedSealed, sealed, kekId)) === 1;
  }

  async putGrant(grant: GrantWrite): Promise<GrantRecord> {
    const json = await this.script('putGrant', this.key('grants', grant.owner), this.key('job', grant.job),
      grant.owner, grant.job, Date.now(), JSON.stringify(grant.readers), JSON.stringify(grant.keys)) as string;
    return this.toGrant(grant.owner, grant.job, json);
  }

  async deleteGrant(owner: string, job: string): Promise<boolean> {
    const results = await this.run(() =>
      this.redis.multi().hdel(this.key('grants', owner), job).hdel(this.key('job', job), owner).exec());
    const [error, removed] = results?.[0] ?? [new Error('transaction discarded'), 0];
    if (error) throw error;
    return removed === 1;
  }

  async listGrants(owner: string): Promise<GrantRecord[]> {
    const fields = await this.run(() => this.redis.hgetall(this.key('grants', owner)));
    return Object.keys(fields).sort(byteOrder).map((job) => this.toGrant(owner, job, fields[job]!));
  }

  async grantsForJob(job: string): Promise<GrantRecord[]> {
    const fields = await this.run(() => this.redis.hgetall(this.key('job', job)));
    return Object.keys(fields).sort(byteOrder).map((owner) => this.toGrant(owner, job, fields[owner]!));
  }

  async rememberSignature(signature: string, expiresAt: Date): Promise<boolean> {
    // SET NX is atomic on the server; PXAT makes Redis drop the entry at its expiry, so an expired one is free again.
    const reply = await this.run(() => this.redis.set(this.key('sig', signature), '1', 'PXAT', expiresAt.getTime(), 'NX'));
    return reply === 'OK';
  }

  async purgeExpiredSignatures(_now: Date): Promise<number> {
    // Redis removes expired signatures itself (PXAT), so there is never anything left to purge here.
    return 0;
  }
}
