import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signLogin } from '../../common/login.js';
import { call, generateKeypair, newAccount, startTestServer, type Account, type TestServer } from '../helpers/server.js';

let server: TestServer;
let owner: Account;
let node: Account;
beforeAll(async () => {
  server = await startTestServer();
  owner = await newAccount(server);
  node = await newAccount(server);
  await call(server.url, 'POST', '/secrets', { token: owner.token, body: { secrets: { GRANTED: 'g-value', ALSO: 'a-value', PRIVATE: 'p-value' } } });
  await server.client.putGrant(owner.token, 'job-1', ['GRANTED', 'ALSO', 'NOT_YET'], [node.address]);
});
afterAll(async () => { await server.close(); });

async function jobToken(account: Account, job: string): Promise<string> {
  return (await server.client.login(account.keypair, job)).token;
}

/** `owner` grants GRANTED and a second owner grants X, both under the job id `job`, to one fresh reader. */
async function grantedByTwoOwners(job: string): Promise<{ second: Account; shared: Account }> {
  const second = await newAccount(server);
  const shared = await newAccount(server);
  await server.client.putGrant(owner.token, job, ['GRANTED'], [shared.address]);
  await server.client.putGrant(second.token, job, ['X'], [shared.address]);
  return { second, shared };
}

describe('job grants', () => {
  it('a node that logs in with job reads exactly the granted keys of the job\'s owner', async () => {
    const token = await jobToken(node, 'job-1');
    expect(await call(server.url, 'GET', '/secrets', { token })).toEqual({ status: 200, body: { GRANTED: 'g-value', ALSO: 'a-value' } });
    expect((await call(server.url, 'GET', '/secrets/GRANTED', { headers: { authorization: token } })).body).toEqual({ GRANTED: 'g-value' });
  });

  it('a job token cannot read a key that was not granted', async () => {
    const token = await jobToken(node, 'job-1');
    const answer = await call(server.url, 'GET', '/secrets/PRIVATE', { token });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('key "PRIVATE" is not granted to job job-1');
    expect(JSON.stringify(answer.body)).not.toContain('p-value');
    expect((await call(server.url, 'POST', '/v1/read', { token, body: { keys: ['GRANTED', 'PRIVATE'] } })).status).toBe(403);
  });

  it('a job token cannot list names, write, delete or grant', async () => {
    const token = await jobToken(node, 'job-1');
    expect((await call(server.url, 'GET', '/v1/secrets', { token })).status).toBe(403);
    expect((await call(server.url, 'POST', '/secrets', { token, body: { secrets: { GRANTED: 'overwritten' } } })).status).toBe(403);
    expect((await call(server.url, 'PUT', '/v1/secrets/GRANTED', { token, body: { value: 'overwritten' } })).status).toBe(403);
    expect((await call(server.url, 'DELETE', '/secrets', { token, body: { key: 'GRANTED' } })).status).toBe(403);
    expect((await call(server.url, 'PUT', '/v1/grants/job-x', { token, body: { keys: ['GRANTED'], readers: [node.address] } })).status).toBe(403);
    expect((await server.client.getSecret(owner.token, 'GRANTED')).value).toBe('g-value');
  });

  it('an address that is not a reader of the job cannot log in with it', async () => {
    const stranger = generateKeypair();
    const answer = await call(server.url, 'POST', '/login', { body: (await import('../../common/login.js')).signLogin(stranger, { job: 'job-1' }) });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toContain('has no grant for job job-1');
    const unknown = await call(server.url, 'POST', '/login', { body: (await import('../../common/login.js')).signLogin(node.keypair, { job: 'no-such-job' }) });
    expect(unknown.status).toBe(403);
  });

  it('a granted key that does not exist yet is a 404, and readable once stored', async () => {
    const token = await jobToken(node, 'job-1');
    expect((await call(server.url, 'GET', '/secrets/NOT_YET', { token })).status).toBe(404);
    await server.client.putSecret(owner.token, 'NOT_YET', 'now');
    expect((await call(server.url, 'GET', '/secrets/NOT_YET', { token })).body).toEqual({ NOT_YET: 'now' });
  });

  it('revoking a grant stops a job token at once, before it expires', async () => {
    await server.client.putGrant(owner.token, 'job-revoke', ['GRANTED'], [node.address]);
    const token = await jobToken(node, 'job-revoke');
    expect((await call(server.url, 'GET', '/secrets/GRANTED', { token })).status).toBe(200);
    await server.client.deleteGrant(owner.token, 'job-revoke');
    expect((await call(server.url, 'GET', '/secrets/GRANTED', { token })).status).toBe(403);
    expect((await call(server.url, 'DELETE', '/v1/grants/job-revoke', { token: owner.token })).status).toBe(404);
  });

  it('narrowing a grant narrows what an existing job token reads', async () => {
    await server.client.putGrant(owner.token, 'job-narrow', ['GRANTED', 'ALSO'], [node.address]);
    const token = await jobToken(node, 'job-narrow');
    await server.client.putGrant(owner.token, 'job-narrow', ['ALSO'], [node.address]);
    expect((await call(server.url, 'GET', '/secrets', { token })).body).toEqual({ ALSO: 'a-value' });
  });

  it('an owner lists its grants', async () => {
    const { grants } = await server.client.listGrants(owner.token);
    expect(grants.find((g) => g.job === 'job-1')).toMatchObject({ keys: ['ALSO', 'GRANTED', 'NOT_YET'], readers: [node.address] });
  });

  it('a node exchanges its owner token for a job token without signing again', async () => {
    await server.client.putGrant(owner.token, 'job-exchange', ['GRANTED'], [node.address]);
    const { token } = await server.client.jobToken(node.token, 'job-exchange');
    expect((await call(server.url, 'GET', '/secrets', { token })).body).toEqual({ GRANTED: 'g-value' });
    const refused = await call(server.url, 'POST', '/v1/tokens/job', { token: owner.token, body: { job: 'job-exchange' } });
    expect(refused.status).toBe(403);
  });

  it('a job granted to the same reader by two owners is a 409 that names both', async () => {
    const { second, shared } = await grantedByTwoOwners('job-twice');
    const answer = await call(server.url, 'POST', '/v1/tokens/job', { token: shared.token, body: { job: 'job-twice' } });
    expect(answer.status).toBe(409);
    expect(answer.body.error).toContain(owner.address);
    expect(answer.body.error).toContain(second.address);
  });

  it('naming the owner picks that owner\'s grant of a job id two owners granted to the same reader', async () => {
    const { shared } = await grantedByTwoOwners('job-named');
    const ambiguous = await call(server.url, 'POST', '/v1/tokens/job', { token: shared.token, body: { job: 'job-named' } });
    expect(ambiguous.status).toBe(409);
    expect(ambiguous.body.error).toContain('naming the owner');
    const { token } = await server.client.jobToken(shared.token, 'job-named', owner.address);
    expect((await call(server.url, 'GET', '/secrets', { token })).body).toEqual({ GRANTED: 'g-value' });
    // The signed login takes the owner too.
    const login = await call(server.url, 'POST', '/login', { body: { ...signLogin(shared.keypair, { job: 'job-named' }), owner: owner.address } });
    expect(login.status).toBe(200);
    // An owner that grants nothing to this reader gives nothing.
    const stranger = await newAccount(server);
    const refused = await call(server.url, 'POST', '/v1/tokens/job', { token: shared.token, body: { job: 'job-named', owner: stranger.address } });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toContain(stranger.address);
    const ownerWithoutJob = await call(server.url, 'POST', '/login', { body: { ...signLogin(shared.keypair), owner: owner.address } });
    expect(ownerWithoutJob.status).toBe(400);
  });

  it('a job login naming an owner with no grant is a 403, never a fallback to the only other owner\'s grant', async () => {
    const stranger = await newAccount(server);
    const reader = await newAccount(server);
    await server.client.putGrant(stranger.token, 'job-stranger-only', ['X'], [reader.address]);
    const login = await call(server.url, 'POST', '/login', { body: { ...signLogin(reader.keypair, { job: 'job-stranger-only' }), owner: owner.address } });
    expect(login.status).toBe(403);
    expect(login.body.error).toBe(`address ${reader.address} has no grant for job job-stranger-only from owner ${owner.address}`);
    const exchange = await call(server.url, 'POST', '/v1/tokens/job', { token: reader.token, body: { job: 'job-stranger-only', owner: owner.address } });
    expect(exchange.status).toBe(403);
    expect(exchange.body.type).toBe('ForbiddenError');
  });

  it('a working job token keeps working when another owner grants the same job id to the same reader', async () => {
    const intruder = await newAccount(server);
    const reader = await newAccount(server);
    await server.client.putGrant(owner.token, 'job-targeted', ['GRANTED'], [reader.address]);
    const { token } = await server.client.jobToken(reader.token, 'job-targeted');
    await server.client.putGrant(intruder.token, 'job-targeted', ['X'], [reader.address]);
    expect((await call(server.url, 'GET', '/secrets', { token })).body).toEqual({ GRANTED: 'g-value' });
    // Revocation by the token's own owner still acts at once.
    await server.client.deleteGrant(owner.token, 'job-targeted');
    expect((await call(server.url, 'GET', '/secrets', { token })).status).toBe(403);
  });

  it('a grant with a bad key or reader is a 400 naming it', async () => {
    const badKey = await call(server.url, 'PUT', '/v1/grants/job-bad', { token: owner.token, body: { keys: ['a b'], readers: [node.address] } });
    expect(badKey.status).toBe(400);
    expect(badKey.body.error).toContain('keys');
    const badReader = await call(server.url, 'PUT', '/v1/grants/job-bad', { token: owner.token, body: { keys: ['A'], readers: ['not-an-address'] } });
    expect(badReader.status).toBe(400);
    expect(badReader.body.error).toContain('readers');
    const noReader = await call(server.url, 'PUT', '/v1/grants/job-bad', { token: owner.token, body: { keys: ['A'], readers: [] } });
    expect(noReader.status).toBe(400);
  });
});

describe('job ids up to their documented length of 128 characters', () => {
  it('a job id of 101 to 128 characters is granted, logged in with and revoked', async () => {
    for (const job of ['j'.repeat(101), `${'j'.repeat(127)}9`]) {
      const granted = await call(server.url, 'PUT', `/v1/grants/${job}`, { token: owner.token, body: { keys: ['GRANTED'], readers: [node.address] } });
      expect(granted.status).toBe(200);
      expect(granted.body.job).toBe(job);
      expect(await call(server.url, 'GET', '/secrets', { token: await jobToken(node, job) })).toEqual({ status: 200, body: { GRANTED: 'g-value' } });
      expect((await call(server.url, 'DELETE', `/v1/grants/${job}`, { token: owner.token })).status).toBe(204);
    }
  });

  it('a longer job id is a 400 in the documented shape, however long', async () => {
    for (const length of [129, 384, 385, 5000]) {
      const answer = await call(server.url, 'PUT', `/v1/grants/${'j'.repeat(length)}`, { token: owner.token, body: { keys: ['GRANTED'], readers: [node.address] } });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ type: 'ValidationError', error: expect.stringContaining('128') });
    }
  });
});

describe('results, the reverse flow', () => {
  it('a node stores a result under its own address, grants it to the job\'s owner, and the owner reads it with a job login', async () => {
    const job = 'job-result';
    await server.client.putGrant(owner.token, job, ['GRANTED'], [node.address]);
    await server.client.putSecret(node.token, `${job}/result`, 'the-result');
    await server.client.putGrant(node.token, job, [`${job}/result`], [owner.address]);

    const ownerJobToken = await jobToken(owner, job);
    expect(await call(server.url, 'GET', '/secrets', { token: ownerJobToken })).toEqual({ status: 200, body: { [`${job}/result`]: 'the-result' } });
    // The owner's job token reads the node's result, not the owner's own secrets.
    expect((await call(server.url, 'GET', '/secrets/GRANTED', { token: ownerJobToken })).status).toBe(403);
    // And the node still reads what the owner granted it.
    expect((await call(server.url, 'GET', '/secrets', { token: await jobToken(node, job) })).body).toEqual({ GRANTED: 'g-value' });
  });
});
