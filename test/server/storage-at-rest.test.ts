import { createCipheriv, randomBytes } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Envelope, parseKeyring } from '../../server/encryption.js';
import { rotateDataKeys } from '../../server/key-rotation.js';
import { SqliteStorage } from '../../server/storage/sqlite.js';
import { call, newAccount, startTestServer } from '../helpers/server.js';

const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

/** A value sealed as releases before the version binding did (format v1: owner and key name bound, no version). */
function sealAsV1(keyringEntry: string, owner: string, name: string, value: string): string {
  const [kekId, kekBase64] = keyringEntry.split(':') as [string, string];
  const gcm = (secret: Buffer, plaintext: Buffer, aad: string) => {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', secret, iv).setAAD(Buffer.from(aad));
    return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]).toString('base64url');
  };
  const dataKey = randomBytes(32);
  const aad = `nosana-secrets/v1\0${owner}\0${name}`;
  return ['v1', kekId, gcm(Buffer.from(kekBase64, 'base64'), dataKey, `${aad}\0${kekId}`), gcm(dataKey, Buffer.from(value), aad)].join('.');
}

/** The row of (owner, key) in a test server's sqlite file, read or changed directly, as a database writer would. */
function row(server: { dir: string }) {
  const db = new Database(join(server.dir, 'db.sqlite'));
  return {
    get: (owner: string, name: string) =>
      db.prepare('SELECT sealed, kek_id, version FROM secrets WHERE owner = ? AND key = ?').get(owner, name) as { sealed: string; kek_id: string; version: number },
    put: (owner: string, name: string, change: { sealed: string; kek_id: string; version: number }) =>
      db.prepare('UPDATE secrets SET sealed = ?, kek_id = ?, version = ? WHERE owner = ? AND key = ?').run(change.sealed, change.kek_id, change.version, owner, name),
    close: () => db.close(),
  };
}

describe('secrets at rest', () => {
  it('a restart on the same database file keeps every secret, and earlier tokens stay valid', async () => {
    const first = await startTestServer();
    const owner = await newAccount(first);
    const secrets = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`KEY_${i}`, `value-${i}-${randomBytes(4).toString('hex')}`]));
    await call(first.url, 'POST', '/secrets', { token: owner.token, body: { secrets } });
    await first.close();

    const second = await startTestServer({}, first.dir);
    try {
      expect((await call(second.url, 'GET', '/secrets', { token: owner.token })).body).toEqual(secrets);
    } finally {
      await second.close();
    }
  });

  it('the raw database files hold no plaintext value, key or wrapped data key in the clear', async () => {
    const server = await startTestServer();
    const owner = await newAccount(server);
    const marker = `plaintext-marker-${randomBytes(8).toString('hex')}`;
    await server.client.putSecret(owner.token, 'MARKED', marker);
    await server.client.putSecret(owner.token, 'MARKED', `${marker}-v2`);
    const files = readdirSync(server.dir).filter((f) => f.startsWith('db.sqlite'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(readFileSync(join(server.dir, file)).includes(marker)).toBe(false);
    expect((await server.client.getSecret(owner.token, 'MARKED')).value).toBe(`${marker}-v2`);
    await server.close();
  });

  it('the database file and its -wal and -shm files are readable and writable by the server\'s user only', async () => {
    // The usual umask (022) would leave files SQLite creates readable by everyone on the machine.
    const umask = process.umask(0o022);
    try {
      const server = await startTestServer();
      const owner = await newAccount(server);
      await server.client.putSecret(owner.token, 'K', 'v');
      const mode = (file: string) => (statSync(join(server.dir, file)).mode & 0o777).toString(8);
      expect([mode('db.sqlite'), mode('db.sqlite-wal'), mode('db.sqlite-shm')]).toEqual(['600', '600', '600']);
      await server.close();

      // A database an earlier version left readable by everyone is tightened on the next start.
      chmodSync(join(server.dir, 'db.sqlite'), 0o644);
      const again = await startTestServer({}, server.dir);
      await again.client.putSecret(owner.token, 'K', 'v2');
      expect([mode('db.sqlite'), mode('db.sqlite-wal'), mode('db.sqlite-shm')]).toEqual(['600', '600', '600']);
      await again.close();
    } finally {
      process.umask(umask);
    }
  });

  it('a sealed value copied onto another owner\'s row does not decrypt, and nothing leaks', async () => {
    const server = await startTestServer();
    const alice = await newAccount(server);
    const mallory = await newAccount(server);
    await server.client.putSecret(alice.token, 'TARGET', 'alice-only');
    await server.client.putSecret(mallory.token, 'TARGET', 'mallory');
    // Alice reads first, so her value has been opened (and cached) when Mallory's copy is read.
    expect((await server.client.getSecret(alice.token, 'TARGET')).value).toBe('alice-only');
    const db = new Database(join(server.dir, 'db.sqlite'));
    db.prepare('UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE owner = ?) WHERE owner = ?').run(alice.address, mallory.address);
    db.close();
    const answer = await call(server.url, 'GET', '/secrets/TARGET', { token: mallory.token });
    expect(answer.status).toBe(500);
    expect(answer.body.type).toBe('DecryptionError');
    expect(JSON.stringify(answer.body)).not.toContain('alice-only');
    expect(server.logs.join('\n')).not.toContain('alice-only');
    await server.close();
  });

  it('a value sealed under another key name of the same owner does not decrypt', () => {
    const envelope = new Envelope(parseKeyring(key('k1'), 'test'));
    const { sealed } = envelope.seal('owner', 'A', 1, 'v');
    expect(() => envelope.open('owner', 'B', 1, sealed)).toThrow(/does not open/);
    expect(envelope.open('owner', 'A', 1, sealed)).toBe('v');
    // Now A has been opened (and cached): a copy under another name or owner must still fail, and A must still open.
    expect(() => envelope.open('owner', 'B', 1, sealed)).toThrow(/does not open/);
    expect(() => envelope.open('other-owner', 'A', 1, sealed)).toThrow(/does not open/);
    expect(envelope.open('owner', 'A', 1, sealed)).toBe('v');
  });

  it('a changed value or wrapped key does not open, even when the original was opened before', () => {
    const envelope = new Envelope(parseKeyring(key('k1'), 'test'));
    const { sealed } = envelope.seal('owner', 'A', 1, 'value-one');
    expect(envelope.open('owner', 'A', 1, sealed)).toBe('value-one');
    const [format, kekId, wrapped, value] = sealed.split('.') as [string, string, string, string];
    const flip = (text: string) => {
      const bytes = Buffer.from(text, 'base64url');
      bytes[bytes.length - 1]! ^= 1;
      return bytes.toString('base64url');
    };
    expect(() => envelope.open('owner', 'A', 1, [format, kekId, wrapped, flip(value)].join('.'))).toThrow(/does not open/);
    expect(() => envelope.open('owner', 'A', 1, [format, kekId, flip(wrapped), value].join('.'))).toThrow(/does not open/);
    expect(() => envelope.open('owner', 'A', 1, [format, 'k0', wrapped, value].join('.'))).toThrow(/not in the keyring/);
  });

  it('key rotation re-wraps every data key while the server keeps serving, then the old key can go', async () => {
    const oldKey = key('old');
    const newKey = key('new');
    const first = await startTestServer({ ENCRYPTION_KEYS: oldKey });
    const owner = await newAccount(first);
    const secrets = Object.fromEntries(Array.from({ length: 1200 }, (_, i) => [`R${String(i).padStart(4, '0')}`, `v${i}`]));
    await call(first.url, 'POST', '/secrets', { token: owner.token, body: { secrets: Object.fromEntries(Object.entries(secrets).slice(0, 600)) } });
    await call(first.url, 'POST', '/secrets', { token: owner.token, body: { secrets: Object.fromEntries(Object.entries(secrets).slice(600)) } });
    await first.close();

    // Both keys, new first: the server opens old rows and seals new ones under the new key.
    const serving = await startTestServer({ ENCRYPTION_KEYS: `${newKey},${oldKey}` }, first.dir);
    const rotator = new SqliteStorage(join(first.dir, 'db.sqlite'));
    await rotator.init();
    let reads = 0;
    let failures = 0;
    let rotating = true;
    const reader = (async () => {
      while (rotating) {
        const answer = await call(serving.url, 'GET', '/secrets/R0007', { token: owner.token });
        if (answer.status === 200 && answer.body.R0007 === 'v7') reads++;
        else failures++;
      }
    })();
    const result = await rotateDataKeys(rotator, new Envelope(parseKeyring(`${newKey},${oldKey}`, 'test')));
    rotating = false;
    await reader;
    await rotator.close();
    await serving.close();
    expect(result).toEqual({ rewrapped: 1200, skipped: 0 });
    expect(reads).toBeGreaterThan(0);
    expect(failures).toBe(0);

    const onlyNew = await startTestServer({ ENCRYPTION_KEYS: newKey }, first.dir);
    try {
      expect((await call(onlyNew.url, 'GET', '/secrets', { token: owner.token })).body).toEqual(secrets);
    } finally {
      await onlyNew.close();
    }
  });

  it('a server whose keyring lacks the key of a row answers 500 DecryptionError for it, naming no value', async () => {
    const first = await startTestServer({ ENCRYPTION_KEYS: key('a') });
    const owner = await newAccount(first);
    await first.client.putSecret(owner.token, 'K', 'secret-v');
    await first.close();
    const second = await startTestServer({ ENCRYPTION_KEYS: key('b') }, first.dir);
    try {
      const answer = await call(second.url, 'GET', '/secrets/K', { token: owner.token });
      expect(answer.status).toBe(500);
      expect(answer.body).toEqual({ type: 'DecryptionError', error: 'a stored value cannot be decrypted with the configured keys' });
    } finally {
      await second.close();
    }
  });

  it('an older sealed copy put back under the current version number, or a newer one, does not open as current', async () => {
    const server = await startTestServer();
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'API_KEY', 'old-value-v1');
    // Read once at version 1, so the server has opened (and cached) the old copy when it comes back as another version.
    expect(await server.client.getSecret(owner.token, 'API_KEY')).toMatchObject({ value: 'old-value-v1', version: 1 });
    const rows = row(server);
    const v1 = rows.get(owner.address, 'API_KEY');
    await server.client.putSecret(owner.token, 'API_KEY', 'new-value-v2');
    // Read once, so version 2 has been opened too.
    expect(await server.client.getSecret(owner.token, 'API_KEY')).toMatchObject({ value: 'new-value-v2', version: 2 });
    for (const version of [2, 3]) {
      rows.put(owner.address, 'API_KEY', { ...v1, version });
      for (const path of ['/secrets/API_KEY', '/v1/secrets/API_KEY', '/secrets']) {
        const answer = await call(server.url, 'GET', path, { token: owner.token });
        expect(answer.status).toBe(500);
        expect(answer.body).toEqual({ type: 'DecryptionError', error: 'a stored value cannot be decrypted with the configured keys' });
      }
    }
    // Put back whole, with its own version 1, it opens as what it is: version 1, not as the current version 2.
    rows.put(owner.address, 'API_KEY', v1);
    expect(await server.client.getSecret(owner.token, 'API_KEY')).toMatchObject({ value: 'old-value-v1', version: 1 });
    rows.close();
    expect(server.logs.join('\n')).not.toContain('old-value-v1');
    await server.close();
  });

  it('concurrent writes of one key each end up readable at the version they got', async () => {
    const server = await startTestServer();
    const owner = await newAccount(server);
    const written = await Promise.all(Array.from({ length: 12 }, (_, i) => server.client.putSecret(owner.token, 'RACE', `value-${i}`)));
    expect(written.map((w) => w.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const read = await server.client.getSecret(owner.token, 'RACE');
    expect(read.version).toBe(12);
    expect(read.value).toMatch(/^value-\d+$/);
    await server.client.putSecret(owner.token, 'RACE', 'after');
    expect(await server.client.getSecret(owner.token, 'RACE')).toMatchObject({ value: 'after', version: 13 });
    await server.close();
  });

  it('a value sealed before versions were bound still opens; rotation re-seals it bound to its version, then old copies fail', async () => {
    const oldKey = key('old');
    const newKey = key('new');
    const first = await startTestServer({ ENCRYPTION_KEYS: oldKey });
    const owner = await newAccount(first);
    await first.client.putSecret(owner.token, 'LEGACY', 'placeholder');
    await first.client.putSecret(owner.token, 'LEGACY', 'placeholder-2');
    const rows = row(first);
    const legacy = { sealed: sealAsV1(oldKey, owner.address, 'LEGACY', 'written-by-v1'), kek_id: 'old', version: 2 };
    rows.put(owner.address, 'LEGACY', legacy);
    expect(await first.client.getSecret(owner.token, 'LEGACY')).toMatchObject({ value: 'written-by-v1', version: 2 });
    await first.close();

    const serving = await startTestServer({ ENCRYPTION_KEYS: `${newKey},${oldKey}` }, first.dir);
    const rotator = new SqliteStorage(join(first.dir, 'db.sqlite'));
    await rotator.init();
    expect(await rotateDataKeys(rotator, new Envelope(parseKeyring(`${newKey},${oldKey}`, 'test')))).toEqual({ rewrapped: 1, skipped: 0 });
    await rotator.close();
    const resealed = rows.get(owner.address, 'LEGACY');
    expect(resealed).toMatchObject({ kek_id: 'new', version: 2, sealed: expect.stringMatching(/^v2\.new\./) });
    expect(await serving.client.getSecret(owner.token, 'LEGACY')).toMatchObject({ value: 'written-by-v1', version: 2 });
    // Bound now: under another version number the re-sealed value does not open.
    rows.put(owner.address, 'LEGACY', { ...resealed, version: 3 });
    expect((await call(serving.url, 'GET', '/secrets/LEGACY', { token: owner.token })).status).toBe(500);
    await serving.close();

    // With the old key gone, the v1 copy put back does not open, under any version.
    const onlyNew = await startTestServer({ ENCRYPTION_KEYS: newKey }, first.dir);
    try {
      rows.put(owner.address, 'LEGACY', resealed);
      expect((await onlyNew.client.getSecret(owner.token, 'LEGACY')).value).toBe('written-by-v1');
      rows.put(owner.address, 'LEGACY', { ...legacy, version: 2 });
      const answer = await call(onlyNew.url, 'GET', '/secrets/LEGACY', { token: owner.token });
      expect(answer.status).toBe(500);
      expect(JSON.stringify(answer.body)).not.toContain('written-by-v1');
    } finally {
      rows.close();
      await onlyNew.close();
    }
  });
});
