import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newAccount, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server.close(); });

describe('operating the server', () => {
  it('GET / says the secret manager is running, /health and the probes answer 200', async () => {
    const root = await call(server.url, 'GET', '/');
    expect(root.status).toBe(200);
    expect(root.body).toContain('running');
    expect((await call(server.url, 'GET', '/health')).status).toBe(200);
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    expect(await call(server.url, 'GET', '/readyz')).toEqual({ status: 200, body: { status: 'ready' } });
  });

  it('readiness fails with 503 while storage is unreachable, and requests get 503', async () => {
    const broken = await startTestServer();
    const owner = await newAccount(broken);
    await broken.context.storage.close();
    expect((await call(broken.url, 'GET', '/readyz')).status).toBe(503);
    const answer = await call(broken.url, 'GET', '/secrets', { token: owner.token });
    expect(answer.status).toBe(503);
    expect(answer.body.type).toBe('ServiceUnavailableError');
    await broken.app.close();
  });

  it('serves an OpenAPI document that describes the /v1 routes and the compatible ones', async () => {
    const { status, body } = await call(server.url, 'GET', '/v1/openapi.json');
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    for (const path of ['/login', '/secrets', '/v1/secrets', '/v1/secrets/{key}', '/secrets/{key}', '/v1/read', '/v1/grants/{job}', '/v1/tokens/job']) {
      expect(Object.keys(body.paths)).toContain(path);
    }
    expect(body.paths['/login'].post.requestBody.content['application/json'].schema.required).toEqual(['address', 'signature', 'timestamp']);
  });

  it('exports request, login, read and storage metrics at /metrics, labelled by route template', async () => {
    const owner = await newAccount(server);
    await server.client.putSecret(owner.token, 'M', 'metric-secret-value');
    await server.client.getSecret(owner.token, 'M');
    await call(server.url, 'GET', '/readyz');
    const { body } = await call(server.url, 'GET', '/metrics');
    expect(body).toMatch(/nosana_secrets_http_requests_total\{method="GET",route="\/v1\/secrets\/\*",status="200",component="server"\} 1/);
    expect(body).toMatch(/nosana_secrets_logins_total\{scope="owner",outcome="success",component="server"\} \d+/);
    expect(body).toMatch(/nosana_secrets_secret_reads_total\{scope="owner",component="server"\} 1/);
    expect(body).toContain('nosana_secrets_http_request_duration_seconds_bucket');
    expect(body).toMatch(/nosana_secrets_storage_operation_duration_seconds_count\{[^}]*operation="put_secrets",backend="sqlite"\} 1/);
    expect(body).toMatch(/nosana_secrets_storage_up\{backend="sqlite",component="server"\} 1/);
    expect(body).toContain('nosana_secrets_process_resident_memory_bytes');
    expect(body).not.toContain('metric-secret-value');
  });

  it('leaves probes and scrapes out of the request metrics, so they do not dilute error ratios and latency', async () => {
    const quiet = await startTestServer();
    for (const path of ['/health', '/healthz', '/readyz', '/metrics', '/healthz']) await call(quiet.url, 'GET', path);
    await call(quiet.url, 'GET', '/');
    const { body } = await call(quiet.url, 'GET', '/metrics');
    const counted = [...body.matchAll(/^nosana_secrets_http_requests_total\{[^}]*route="([^"]+)"/gm)].map((m) => m[1]);
    expect(counted).toEqual(['/']);
    expect(body).not.toMatch(/nosana_secrets_http_request_duration_seconds_count\{[^}]*route="\/(health|healthz|readyz|metrics)"/);
    await quiet.close();
  });

  it('audits every login, write, read, grant and delete as structured events, never with a value', async () => {
    const owner = await newAccount(server);
    const node = await newAccount(server);
    await server.client.putSecret(owner.token, 'AUDITED', 'audit-secret-value');
    await server.client.getSecret(owner.token, 'AUDITED');
    await server.client.putGrant(owner.token, 'job-audit', ['AUDITED'], [node.address]);
    const { token } = await server.client.login(node.keypair, 'job-audit');
    await server.client.getSecret(token, 'AUDITED');
    await server.client.deleteGrant(owner.token, 'job-audit');
    await server.client.deleteSecret(owner.token, 'AUDITED');

    const events = server.logs.map((line) => JSON.parse(line)).filter((e) => e.audit && (e.address === owner.address || e.address === node.address));
    const seen = events.map((e) => `${e.event}:${e.outcome}`);
    expect(seen).toEqual(expect.arrayContaining(['login:success', 'write:success', 'read:success', 'grant:success', 'revoke:success', 'delete:success']));
    expect(events.find((e) => e.event === 'read' && e.job === 'job-audit')).toMatchObject({ owner: owner.address, keys: ['AUDITED'] });
    expect(server.logs.join('\n')).not.toContain('audit-secret-value');
  });

  it('audits every refused access once, saying who tried what and why, never with a value', async () => {
    const owner = await newAccount(server);
    const node = await newAccount(server);
    await server.client.putSecret(owner.token, 'GRANTED', 'granted-secret-value');
    await server.client.putSecret(owner.token, 'PRIVATE', 'private-secret-value');
    await server.client.putGrant(owner.token, 'job-refused', ['GRANTED'], [node.address]);
    const { token: jobToken } = await server.client.login(node.keypair, 'job-refused');
    const before = server.logs.length;

    expect((await call(server.url, 'GET', '/v1/secrets/PRIVATE', { token: jobToken })).status).toBe(403);
    expect((await call(server.url, 'POST', '/v1/read', { token: jobToken, body: { keys: ['GRANTED', 'PRIVATE'] } })).status).toBe(403);
    expect((await call(server.url, 'PUT', '/v1/secrets/GRANTED', { token: jobToken, body: { value: 'overwrite-attempt-value' } })).status).toBe(403);
    expect((await call(server.url, 'PUT', '/v1/grants/job-refused', { token: jobToken, body: { keys: ['PRIVATE'], readers: [node.address] } })).status).toBe(403);
    expect((await call(server.url, 'GET', '/secrets/GRANTED')).status).toBe(403);
    expect((await call(server.url, 'GET', '/secrets', { token: 'not-a-token' })).status).toBe(403);
    expect((await call(server.url, 'POST', '/v1/tokens/job', { token: node.token, body: { job: 'job-never-granted' } })).status).toBe(403);

    const refused = server.logs.slice(before).map((line) => JSON.parse(line)).filter((e) => e.audit);
    expect(refused.map((e) => `${e.event}:${e.outcome}`)).toEqual([
      'read:ForbiddenError', 'read:ForbiddenError', 'write:ForbiddenError', 'grant:ForbiddenError',
      'read:ForbiddenError', 'read:ForbiddenError', 'login:ForbiddenError',
    ]);
    expect(refused[0]).toMatchObject({ address: node.address, job: 'job-refused', key: 'PRIVATE', msg: 'read refused' });
    expect(refused[0].reason).toContain('not granted to job job-refused');
    expect(refused[4].address).toBeUndefined();
    expect(refused[4].reason).toContain('missing token');
    expect(refused[6]).toMatchObject({ address: node.address, job: 'job-never-granted' });
    const text = server.logs.join('\n');
    for (const value of ['granted-secret-value', 'private-secret-value', 'overwrite-attempt-value']) expect(text).not.toContain(value);
  });
});
