import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newAccount, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server.close(); });

describe('an owner manages its secrets', () => {
  it('stores with POST /secrets and reads back with GET /secrets and GET /secrets/:key', async () => {
    const owner = await newAccount(server);
    const stored = await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { A: '1', B: 'two' } } });
    expect(stored).toEqual({ status: 200, body: { keys: ['A', 'B'] } });
    expect(await call(server.url, 'GET', '/secrets', { token: owner.token })).toEqual({ status: 200, body: { A: '1', B: 'two' } });
    expect(await call(server.url, 'GET', '/secrets/B', { token: owner.token })).toEqual({ status: 200, body: { B: 'two' } });
  });

  it('POST /secrets with a prefix stores under prefix + key, and GET /secrets?prefix= filters', async () => {
    const owner = await newAccount(server);
    await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { TOKEN: 'x' }, prefix: 'repo1.' } });
    await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { TOKEN: 'y' } } });
    expect((await call(server.url, 'GET', '/secrets?prefix=repo1.', { token: owner.token })).body).toEqual({ 'repo1.TOKEN': 'x' });
  });

  it('a prefix is matched literally, not as a pattern', async () => {
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'a_b', '1');
    await server.client.putSecret(owner.token, 'axb', '2');
    expect((await call(server.url, 'GET', '/secrets?prefix=a_', { token: owner.token })).body).toEqual({ a_b: '1' });
  });

  it('DELETE /secrets removes one key; deleting it again is a 404', async () => {
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'GONE', 'v');
    expect((await call(server.url, 'DELETE', '/secrets', { token: owner.token, body: { key: 'GONE' } })).status).toBe(200);
    expect((await call(server.url, 'GET', '/secrets/GONE', { token: owner.token })).status).toBe(404);
    expect((await call(server.url, 'DELETE', '/secrets', { token: owner.token, body: { key: 'GONE' } })).status).toBe(404);
  });

  it('replacing a key keeps its creation time and grows its version', async () => {
    const owner = await newAccount(server);
    const first = await server.client.putSecret(owner.token, 'K', 'one');
    const second = await server.client.putSecret(owner.token, 'K', 'two');
    expect(first.version).toBe(1);
    expect(second.version).toBe(2);
    expect(second.createdAt).toBe(first.createdAt);
    expect((await server.client.getSecret(owner.token, 'K')).value).toBe('two');
  });

  it('the /v1 listing shows names, versions and times but never values', async () => {
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'b/second', 'value-two');
    await server.client.putSecret(owner.token, 'a.first', 'value-one');
    const listing = await call(server.url, 'GET', '/v1/secrets', { token: owner.token });
    expect(listing.body.secrets.map((s: { key: string }) => s.key)).toEqual(['a.first', 'b/second']);
    expect(Object.keys(listing.body.secrets[0]).sort()).toEqual(['createdAt', 'key', 'updatedAt', 'version']);
    expect(JSON.stringify(listing.body)).not.toContain('value-');
  });

  it('keys with / are read back through the path, encoded or not', async () => {
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'job1/result', 'r');
    expect((await call(server.url, 'GET', '/secrets/job1/result', { token: owner.token })).body).toEqual({ 'job1/result': 'r' });
    expect((await call(server.url, 'GET', '/v1/secrets/job1%2Fresult', { token: owner.token })).body.value).toBe('r');
  });

  it('two owners never see each other\'s secrets, even under the same key name', async () => {
    const alice = await newAccount(server);
    const bob = await newAccount(server);
    await server.client.putSecret(alice.token, 'SHARED_NAME', 'alice-value');
    await server.client.putSecret(bob.token, 'SHARED_NAME', 'bob-value');
    expect((await call(server.url, 'GET', '/secrets', { token: alice.token })).body).toEqual({ SHARED_NAME: 'alice-value' });
    expect((await call(server.url, 'GET', '/secrets', { token: bob.token })).body).toEqual({ SHARED_NAME: 'bob-value' });
    await call(server.url, 'DELETE', '/secrets', { token: bob.token, body: { key: 'SHARED_NAME' } });
    expect((await server.client.getSecret(alice.token, 'SHARED_NAME')).value).toBe('alice-value');
  });

  it('a batch read returns every key asked for with its version, or names the missing one', async () => {
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'X', '1');
    await server.client.putSecret(owner.token, 'Y', '2');
    const read = await server.client.readSecrets(owner.token, ['X', 'Y']);
    expect(read.secrets.X).toMatchObject({ value: '1', version: 1 });
    expect(read.secrets.Y).toMatchObject({ value: '2', version: 1 });
    const missing = await call(server.url, 'POST', '/v1/read', { token: owner.token, body: { keys: ['X', 'NOPE'] } });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toContain('NOPE');
  });
});

describe('every bad input is a 400 that names the field and the rule', () => {
  it.each([
    ['a key with a space', { secrets: { 'MY KEY': 'v' } }, 'MY KEY'],
    ['a key with ..', { secrets: { '../etc': 'v' } }, '../etc'],
    ['a key with a leading /', { secrets: { '/abs': 'v' } }, '/abs'],
    ['a key longer than 256 characters', { secrets: { ['k'.repeat(257)]: 'v' } }, 'at most 256'],
    ['an empty value', { secrets: { EMPTY: '' } }, 'secrets.EMPTY must not be empty'],
    ['a value that is not a string', { secrets: { NUM: 5 } }, 'secrets'],
    ['no secrets at all', { secrets: {} }, 'secrets'],
    ['a missing secrets field', { prefix: 'x' }, 'secrets'],
  ])('POST /secrets with %s', async (_name, body, named) => {
    const owner = await newAccount(server);
    const answer = await call(server.url, 'POST', '/secrets', { token: owner.token, body });
    expect(answer.status).toBe(400);
    expect(answer.body.type).toBe('ValidationError');
    expect(answer.body.error).toContain(named);
  });

  it('a value above the size limit is refused and nothing of the batch is stored', async () => {
    const owner = await newAccount(server);
    const answer = await call(server.url, 'POST', '/secrets', {
      token: owner.token, body: { secrets: { SMALL: 'ok', BIG: 'x'.repeat(65_537) } },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toContain('65536 bytes');
    expect((await call(server.url, 'GET', '/secrets', { token: owner.token })).body).toEqual({});
  });

  it('a value of the largest size fits its body limit however JSON escapes it, and a larger body is a 413', async () => {
    const owner = await newAccount(server);
    const escaped = '\u0001'.repeat(65_536); // JSON sends each as \u0001: six bytes for one
    expect((await call(server.url, 'PUT', '/v1/secrets/ESCAPED', { token: owner.token, body: { value: escaped } })).status).toBe(200);
    expect((await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { BATCHED: escaped } } })).status).toBe(200);
    expect((await server.client.getSecret(owner.token, 'ESCAPED')).value).toBe(escaped);
    expect((await server.client.getSecret(owner.token, 'BATCHED')).value).toBe(escaped);
    const tooBig = await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { A: escaped, B: escaped, C: escaped } } });
    expect(tooBig).toEqual({ status: 413, body: { type: 'PayloadTooLargeError', error: expect.stringMatching(/larger than the \d+ bytes POST \/secrets accepts/) } });
    expect((await call(server.url, 'GET', '/secrets/A', { token: owner.token })).status).toBe(404);
  });

  it('PUT /v1/secrets with an unknown field is refused', async () => {
    const owner = await newAccount(server);
    const answer = await call(server.url, 'PUT', '/v1/secrets/K', { token: owner.token, body: { value: 'v', extra: 1 } });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toContain('additional properties');
  });

  it('a URL with a malformed percent-encoding is a 400 in the documented shape, on any route', async () => {
    const owner = await newAccount(server);
    for (const [method, path] of [['GET', '/secrets/%E0%A4%A'], ['GET', '/v1/secrets/a%ZZ'], ['DELETE', '/v1/grants/%ED%A0%80'], ['GET', '/nope/%']]) {
      const answer = await call(server.url, method!, path!, { token: owner.token });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ type: 'ValidationError', error: expect.stringContaining('percent-encoding') });
    }
  });

  it('a value holding a lone UTF-16 surrogate is refused with 400, never stored rewritten', async () => {
    const owner = await newAccount(server);
    const batch = await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { OK: 'fine', LONE: 'a\ud800b' } } });
    expect(batch.status).toBe(400);
    expect(batch.body).toEqual({ type: 'ValidationError', error: expect.stringContaining('secrets.LONE holds a lone UTF-16 surrogate') });
    const single = await call(server.url, 'PUT', '/v1/secrets/LONE', { token: owner.token, body: { value: '\udc00' } });
    expect(single.status).toBe(400);
    expect(single.body.type).toBe('ValidationError');
    expect((await call(server.url, 'GET', '/secrets', { token: owner.token })).body).toEqual({});
  });

  it('any well-formed Unicode value reads back exactly as written', async () => {
    const owner = await newAccount(server);
    const value = 'emoji \u{1F600}, CJK \u4E2D, combining e\u0301, NUL \u0000, BOM \uFEFF, last \u{10FFFF}';
    await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { U: value } } });
    expect((await call(server.url, 'GET', '/secrets/U', { token: owner.token })).body).toEqual({ U: value });
    expect((await server.client.getSecret(owner.token, 'U')).value).toBe(value);
  });

  it('an unknown route is a JSON 404', async () => {
    const answer = await call(server.url, 'GET', '/nope');
    expect(answer).toEqual({ status: 404, body: { type: 'NotFoundError', error: 'no route GET /nope' } });
  });
});
