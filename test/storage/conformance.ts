// The one conformance suite of server/storage/contract.ts. Every backend's test file calls `storageConformance` with
// how to make an empty database and how to open a Storage on it; the same tests then run against a real server.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageUnavailableError, VersionConflictError, type SecretWrite, type Storage } from '../../server/storage/contract.js';
import type { Provisioned } from '../helpers/servers.js';
import { TcpProxy } from './tcp-proxy.js';

export interface Backend {
  /** The scheme, as in test names: "postgresql". */
  name: string;
  /** A new empty database (or key prefix) for this suite. */
  provision(): Promise<Provisioned>;
  /** A new Storage on `connection`, not yet initialised: each call stands for another server process. */
  open(connection: string): Storage;
  /** False for the embedded file: there is no server to cut off. */
  networked: boolean;
  /** False where the server expires used signatures by itself (Redis), so purge never has anything to count. */
  purgeCounts: boolean;
  /** False where the server has no transactions (FerretDB): a concurrent reader may see half of a batch. */
  atomicBatches: boolean;
  /** False where concurrent updates of one record are read-then-write (FerretDB 1.x): increments can be lost. */
  atomicUpdates: boolean;
}

const PASSWORD_HINT = 'nosana:nosana@';

/** A unique owner per test, so tests in one database never see each other's rows. */
const owner = (): string => `owner-${randomBytes(6).toString('hex')}`;
const sealed = (label: string): string => `sealed:${label}:${randomBytes(8).toString('base64')}`;
const write = (key: string, label = key, kekId = 'kek-1'): SecretWrite => ({ key, sealed: sealed(label), kekId });

/** Waits until `check` passes (the database came back), failing after `timeoutMs`. */
async function eventually(check: () => Promise<unknown>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export function storageConformance(backend: Backend): void {
  describe(`${backend.name} storage`, () => {
    let database: Provisioned;
    let storage: Storage;
    const opened: Storage[] = [];
    const open = async (connection = database.connection): Promise<Storage> => {
      const instance = backend.open(connection);
      opened.push(instance);
      await instance.init();
      return instance;
    };

    beforeAll(async () => {
      database = await backend.provision();
      storage = await open();
    });
    afterAll(async () => {
      await Promise.allSettled(opened.map((instance) => instance.close()));
      await database?.drop();
    });

    describe('secrets', () => {
      it('a new secret starts at version 1 and every replace adds one, keeping when it was created', async () => {
        const me = owner();
        const [first] = await storage.putSecrets(me, [write('api-key', 'v1')]);
        expect(first).toMatchObject({ owner: me, key: 'api-key', version: 1, kekId: 'kek-1' });
        expect(first!.createdAt.getTime()).toBe(first!.updatedAt.getTime());
        const second = (await storage.putSecrets(me, [write('api-key', 'v2', 'kek-2')]))[0]!;
        const third = (await storage.putSecrets(me, [write('api-key', 'v3')]))[0]!;
        expect([second.version, third.version]).toEqual([2, 3]);
        expect(third.createdAt.getTime()).toBe(first!.createdAt.getTime());
        expect(third.updatedAt.getTime()).toBeGreaterThanOrEqual(first!.updatedAt.getTime());
        const stored = await storage.getSecret(me, 'api-key');
        expect(stored).toEqual(third);
        expect(stored!.sealed).toMatch(/^sealed:v3:/);
      });

      it('a write that names its version is stored only over the version before it, else it fails and writes nothing', async () => {
        const me = owner();
        const at = (key: string, version: number, label = `${key}@${version}`): SecretWrite => ({ ...write(key, label), version });
        expect((await storage.putSecrets(me, [at('cas', 1)]))[0]).toMatchObject({ key: 'cas', version: 1 });
        await expect(storage.putSecrets(me, [at('cas', 1, 'second first')])).rejects.toThrow(VersionConflictError);
        expect((await storage.putSecrets(me, [at('cas', 2)]))[0]).toMatchObject({ key: 'cas', version: 2 });
        for (const stale of [2, 4]) {
          const refused = await storage.putSecrets(me, [at('cas', stale, 'stale')]).catch((error: unknown) => error);
          expect(refused).toBeInstanceOf(VersionConflictError);
          expect((refused as VersionConflictError).key).toBe('cas');
        }
        await expect(storage.putSecrets(me, [at('absent', 2)])).rejects.toThrow(VersionConflictError);
        expect(await storage.getSecret(me, 'absent')).toBeUndefined();
        const stored = await storage.getSecret(me, 'cas');
        expect(stored).toMatchObject({ version: 2, sealed: expect.stringMatching(/^sealed:cas@2:/) });
        // A write without a version still just adds one.
        expect((await storage.putSecrets(me, [write('cas')]))[0]!.version).toBe(3);
      });

      if (backend.atomicBatches) it('a batch with one write at a stale version writes none of its keys', async () => {
        const me = owner();
        await storage.putSecrets(me, [{ ...write('taken'), version: 1 }]);
        const batch = [{ ...write('fresh-a'), version: 1 }, { ...write('taken', 'again'), version: 1 }, { ...write('fresh-b'), version: 1 }];
        await expect(storage.putSecrets(me, batch)).rejects.toThrow(VersionConflictError);
        expect((await storage.listSecrets(me)).map((record) => record.key)).toEqual(['taken']);
      });

      it('an owner holds each key once, and keys differing only in case or a trailing space are different keys', async () => {
        const me = owner();
        await storage.putSecrets(me, [write('token'), write('Token'), write('token ')]);
        await storage.putSecrets(me, [write('token', 'again')]);
        const listed = await storage.listSecrets(me);
        expect(listed.map((r) => [r.key, r.version])).toEqual([['Token', 1], ['token', 2], ['token ', 1]]);
      });

      it('the same key under two owners is two separate secrets', async () => {
        const alice = owner();
        const bob = owner();
        await storage.putSecrets(alice, [write('shared', 'alice')]);
        await storage.putSecrets(bob, [write('shared', 'bob')]);
        expect((await storage.getSecret(alice, 'shared'))!.sealed).toMatch(/^sealed:alice:/);
        expect((await storage.getSecret(bob, 'shared'))!.sealed).toMatch(/^sealed:bob:/);
        expect(await storage.deleteSecret(alice, 'shared')).toBe(true);
        expect(await storage.getSecret(alice, 'shared')).toBeUndefined();
        expect(await storage.getSecret(bob, 'shared')).toBeDefined();
      });

      it('a batch comes back in the order it was given, with each key at its own version', async () => {
        const me = owner();
        await storage.putSecrets(me, [write('b')]);
        const records = await storage.putSecrets(me, [write('c'), write('a'), write('b')]);
        expect(records.map((r) => [r.key, r.version])).toEqual([['c', 1], ['a', 1], ['b', 2]]);
        expect(await storage.putSecrets(me, [])).toEqual([]);
      });

      // Only where the contract's all-or-none can hold; FerretDB's documented limit is in server/storage/mongodb.ts.
      if (backend.atomicBatches) it('a reader never sees half of a batch: every key of one write has the same version', async () => {
        const me = owner();
        const keys = ['one', 'two', 'three'];
        let writing = true;
        const writer = (async () => {
          for (let round = 0; round < 30; round++) await storage.putSecrets(me, keys.map((key) => write(key)));
          writing = false;
        })();
        const seen = new Set<string>();
        while (writing) {
          const records = await storage.getSecrets(me, keys);
          if (records.length > 0) seen.add(records.map((r) => r.version).join(','));
        }
        await writer;
        const torn = [...seen].filter((versions) => new Set(versions.split(',')).size > 1 || versions.split(',').length !== 3);
        expect(torn).toEqual([]);
        expect((await storage.getSecrets(me, keys)).map((r) => r.version)).toEqual([30, 30, 30]);
      });

      it('reading several keys returns those that exist, in key order', async () => {
        const me = owner();
        await storage.putSecrets(me, [write('zeta'), write('alpha'), write('mid')]);
        const found = await storage.getSecrets(me, ['zeta', 'missing', 'alpha', 'zeta']);
        expect(found.map((r) => r.key)).toEqual(['alpha', 'zeta']);
        expect(await storage.getSecrets(me, [])).toEqual([]);
        expect(await storage.getSecret(me, 'missing')).toBeUndefined();
      });

      it("an owner's secrets list in byte order of their keys", async () => {
        const me = owner();
        const keys = ['b', 'a/z', 'B', 'a-1', 'a.b', 'a_c', '0', 'a', 'ab', 'A', 'a/b/c', 'é'];
        await storage.putSecrets(me, keys.map((key) => write(key)));
        await storage.putSecrets(owner(), [write('a/other-owner')]);
        const expected = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        expect((await storage.listSecrets(me)).map((r) => r.key)).toEqual(expected);
        expect((await storage.listSecrets(me, '')).map((r) => r.key)).toEqual(expected);
      });

      it('a prefix lists only the keys that start with it, and %, _, *, ?, [, \\ and . in it mean themselves', async () => {
        const me = owner();
        const keys = ['a%b', 'axb', 'a_c', 'abc', 'a*', 'a?', 'a[1]', 'a\\b', 'a.b', 'aXb', 'job/1/result', 'job/10/result', 'jobs'];
        await storage.putSecrets(me, keys.map((key) => write(key)));
        const list = async (prefix: string): Promise<string[]> => (await storage.listSecrets(me, prefix)).map((r) => r.key);
        expect(await list('a%')).toEqual(['a%b']);
        expect(await list('a_')).toEqual(['a_c']);
        expect(await list('a*')).toEqual(['a*']);
        expect(await list('a?')).toEqual(['a?']);
        expect(await list('a[')).toEqual(['a[1]']);
        expect(await list('a\\')).toEqual(['a\\b']);
        expect(await list('a.')).toEqual(['a.b']);
        expect(await list('A')).toEqual([]);
        expect(await list('job/1/')).toEqual(['job/1/result']);
        expect(await list('job/1')).toEqual(['job/1/result', 'job/10/result']);
        expect(await list('zzz')).toEqual([]);
      });

      it('deleting a secret removes it and says whether there was one', async () => {
        const me = owner();
        await storage.putSecrets(me, [write('gone'), write('kept')]);
        expect(await storage.deleteSecret(me, 'gone')).toBe(true);
        expect(await storage.deleteSecret(me, 'gone')).toBe(false);
        expect((await storage.listSecrets(me)).map((r) => r.key)).toEqual(['kept']);
        const [again] = await storage.putSecrets(me, [write('gone')]);
        expect(again!.version).toBe(1);
      });
    });

    describe('key rotation', () => {
      it('finds the records not wrapped by a key-encryption key, up to a limit, in owner and key order', async () => {
        const kek = `kek-${randomBytes(4).toString('hex')}`;
        const [first, second] = [owner(), owner()].sort();
        await storage.putSecrets(first!, [write('y', 'y', kek), write('x', 'x', 'old-kek')]);
        await storage.putSecrets(second!, [write('w', 'w', 'old-kek')]);
        const all = await storage.listSecretsNotWrappedBy(kek, 100_000);
        const mine = all.filter((r) => r.owner === first || r.owner === second);
        expect(mine.map((r) => [r.owner, r.key])).toEqual([[first, 'x'], [second, 'w']]);
        expect(all.every((r) => r.kekId !== kek)).toBe(true);
        expect(await storage.listSecretsNotWrappedBy(kek, 1)).toHaveLength(1);
      });

      it('a rewrap replaces the sealed value only while it is unchanged, and keeps the version', async () => {
        const me = owner();
        const [original] = await storage.putSecrets(me, [write('db-password', 'old', 'old-kek')]);
        expect(await storage.rewrapSecret(me, 'db-password', original!.sealed, 'rewrapped', 'new-kek')).toBe(true);
        const after = await storage.getSecret(me, 'db-password');
        expect(after).toMatchObject({ sealed: 'rewrapped', kekId: 'new-kek', version: 1 });
        // A rotation that read the old value loses to the write that happened since.
        expect(await storage.rewrapSecret(me, 'db-password', original!.sealed, 'stale', 'new-kek')).toBe(false);
        expect(await storage.rewrapSecret(me, 'missing', 'x', 'y', 'new-kek')).toBe(false);
        expect((await storage.getSecret(me, 'db-password'))!.sealed).toBe('rewrapped');
      });
    });

    describe('grants', () => {
      it('a grant is created, then replaced with new readers and keys, keeping when it was created', async () => {
        const me = owner();
        const created = await storage.putGrant({ owner: me, job: 'job-1', readers: ['node-a'], keys: ['k1', 'k2'] });
        expect(created).toMatchObject({ owner: me, job: 'job-1', readers: ['node-a'], keys: ['k1', 'k2'] });
        const replaced = await storage.putGrant({ owner: me, job: 'job-1', readers: ['node-b', 'node-c'], keys: [] });
        expect(replaced).toMatchObject({ readers: ['node-b', 'node-c'], keys: [] });
        expect(replaced.createdAt.getTime()).toBe(created.createdAt.getTime());
        expect(await storage.listGrants(me)).toEqual([replaced]);
      });

      it("an owner's grants list in job order, and a job's grants in owner order", async () => {
        const [first, second] = [owner(), owner()].sort();
        const job = `job-${randomBytes(4).toString('hex')}`;
        await storage.putGrant({ owner: first!, job: 'z-job', readers: [], keys: ['k'] });
        await storage.putGrant({ owner: first!, job: 'a-job', readers: [], keys: ['k'] });
        await storage.putGrant({ owner: second!, job, readers: ['node'], keys: ['b'] });
        await storage.putGrant({ owner: first!, job, readers: ['node'], keys: ['a'] });
        expect((await storage.listGrants(first!)).map((g) => g.job)).toEqual(['a-job', job, 'z-job'].sort());
        expect((await storage.grantsForJob(job)).map((g) => [g.owner, g.keys])).toEqual([[first, ['a']], [second, ['b']]]);
        expect(await storage.grantsForJob('no-such-job')).toEqual([]);
      });

      it('deleting a grant removes it from the owner and from the job, and says whether there was one', async () => {
        const me = owner();
        const job = `job-${randomBytes(4).toString('hex')}`;
        await storage.putGrant({ owner: me, job, readers: ['node'], keys: ['k'] });
        expect(await storage.deleteGrant(me, job)).toBe(true);
        expect(await storage.deleteGrant(me, job)).toBe(false);
        expect(await storage.listGrants(me)).toEqual([]);
        expect(await storage.grantsForJob(job)).toEqual([]);
      });
    });

    describe('replay cache', () => {
      const signature = (): string => randomBytes(64).toString('base64url');
      const inOneMinute = (): Date => new Date(Date.now() + 60_000);

      it('a login signature is accepted once and refused the second time', async () => {
        const used = signature();
        expect(await storage.rememberSignature(used, inOneMinute())).toBe(true);
        expect(await storage.rememberSignature(used, inOneMinute())).toBe(false);
        expect(await storage.rememberSignature(signature(), inOneMinute())).toBe(true);
      });

      it('logins at the same moment: a signature sent ten times is accepted once, and other signatures each once', async () => {
        const replayed = signature();
        const others = Array.from({ length: 20 }, signature);
        const [replays, fresh] = await Promise.all([
          Promise.all(Array.from({ length: 10 }, () => storage.rememberSignature(replayed, inOneMinute()))),
          Promise.all(others.map((other) => storage.rememberSignature(other, inOneMinute()))),
        ]);
        expect(replays.filter(Boolean)).toHaveLength(1);
        expect(fresh.every(Boolean)).toBe(true);
      });

      it('a signature whose entry has expired can be used again', async () => {
        const used = signature();
        expect(await storage.rememberSignature(used, new Date(Date.now() - 1000))).toBe(true);
        expect(await storage.rememberSignature(used, inOneMinute())).toBe(true);
        expect(await storage.rememberSignature(used, inOneMinute())).toBe(false);
      });

      it('a purge forgets the expired signatures and keeps the live ones', async () => {
        const live = signature();
        const expired = [signature(), signature()];
        await storage.rememberSignature(live, inOneMinute());
        for (const used of expired) await storage.rememberSignature(used, new Date(Date.now() - 1000));
        const purged = await storage.purgeExpiredSignatures(new Date());
        if (backend.purgeCounts) expect(purged).toBeGreaterThanOrEqual(2);
        else expect(purged).toBe(0);
        expect(await storage.purgeExpiredSignatures(new Date())).toBe(0);
        expect(await storage.rememberSignature(live, inOneMinute())).toBe(false);
        for (const used of expired) expect(await storage.rememberSignature(used, inOneMinute())).toBe(true);
      });
    });

    describe('two server processes on one database', () => {
      it('both can start on the same empty database at once, and each sees what the other wrote', async () => {
        const shared = await backend.provision();
        try {
          const [one, two] = [backend.open(shared.connection), backend.open(shared.connection)];
          opened.push(one, two);
          await Promise.all([one.init(), two.init()]);
          const me = owner();
          await one.putSecrets(me, [write('from-one')]);
          await two.putSecrets(me, [write('from-two')]);
          await two.putGrant({ owner: me, job: 'job', readers: ['node'], keys: ['from-one'] });
          expect((await two.listSecrets(me)).map((r) => r.key)).toEqual(['from-one', 'from-two']);
          expect((await one.grantsForJob('job')).map((g) => g.owner)).toEqual([me]);
          await Promise.all([one.close(), two.close()]);
        } finally {
          await shared.drop();
        }
      });

      it('the same signature fired at both processes at once is accepted exactly once', async () => {
        const other = await open();
        const signatures = Array.from({ length: 25 }, () => randomBytes(64).toString('base64url'));
        const expiry = new Date(Date.now() + 60_000);
        const results = await Promise.all(signatures.map((s) =>
          Promise.all([storage.rememberSignature(s, expiry), other.rememberSignature(s, expiry), other.rememberSignature(s, expiry)])));
        for (const outcome of results) expect(outcome.filter(Boolean)).toHaveLength(1);
      });

      it('an expired signature fired at both processes at once is taken over exactly once', async () => {
        const other = await open();
        const signatures = Array.from({ length: 15 }, () => randomBytes(64).toString('base64url'));
        for (const s of signatures) await storage.rememberSignature(s, new Date(Date.now() - 1000));
        const expiry = new Date(Date.now() + 60_000);
        const results = await Promise.all(signatures.map((s) =>
          Promise.all([storage.rememberSignature(s, expiry), other.rememberSignature(s, expiry)])));
        for (const outcome of results) expect(outcome.filter(Boolean)).toHaveLength(1);
      });

      // FerretDB's documented limit is in server/storage/mongodb.ts.
      if (backend.atomicUpdates) it('concurrent replaces of one key from both processes lose no version', async () => {
        const other = await open();
        const me = owner();
        await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? storage : other).putSecrets(me, [write('counter')])));
        expect((await storage.getSecret(me, 'counter'))!.version).toBe(10);
      });

      it('used signatures and secrets are still there after a restart', async () => {
        const used = randomBytes(64).toString('base64url');
        const me = owner();
        const before = await open();
        await before.rememberSignature(used, new Date(Date.now() + 60_000));
        await before.putSecrets(me, [write('survives')]);
        await before.close();
        const after = await open();
        expect(await after.rememberSignature(used, new Date(Date.now() + 60_000))).toBe(false);
        expect(await after.getSecret(me, 'survives')).toBeDefined();
      });
    });

    if (backend.networked) describe('a database that goes away', () => {
      it('calls fail with StorageUnavailableError while it is cut off, then succeed again, losing nothing acknowledged', async () => {
        const { host, port } = TcpProxy.target(database.connection);
        const proxy = await TcpProxy.start(host, port);
        try {
          const viaProxy = await open(TcpProxy.via(database.connection, proxy));
          const me = owner();
          const [acknowledged] = await viaProxy.putSecrets(me, [write('acknowledged')]);
          await viaProxy.putGrant({ owner: me, job: 'job', readers: ['node'], keys: ['acknowledged'] });

          proxy.cut();
          const failures = await Promise.allSettled([
            viaProxy.ping(),
            viaProxy.getSecret(me, 'acknowledged'),
            viaProxy.putSecrets(me, [write('during-outage')]),
            viaProxy.listGrants(me),
            viaProxy.rememberSignature(randomBytes(32).toString('hex'), new Date(Date.now() + 60_000)),
          ]);
          for (const failure of failures) {
            expect(failure.status).toBe('rejected');
            const reason = (failure as PromiseRejectedResult).reason as Error;
            expect(reason).toBeInstanceOf(StorageUnavailableError);
            expect(reason.message).not.toContain(PASSWORD_HINT);
          }

          proxy.restore();
          await eventually(() => viaProxy.ping());
          expect(await viaProxy.getSecret(me, 'acknowledged')).toEqual(acknowledged);
          expect((await viaProxy.listGrants(me)).map((g) => g.job)).toEqual(['job']);
          const [after] = await viaProxy.putSecrets(me, [write('after-outage')]);
          expect(after!.version).toBe(1);
          // The same call also works through a fresh connection to the database itself.
          expect((await storage.listSecrets(me)).map((r) => r.key)).toContain('after-outage');
        } finally {
          await proxy.close();
        }
      });
    });
  });
}
