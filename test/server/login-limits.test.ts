// Login rate limits, per source and per address, against a real server: 429 with Retry-After in the documented
// shape, and nobody else held back.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signLogin } from '../../common/login.js';
import { sourceOf } from '../../server/limits.js';
import { call, generateKeypair, newAccount, startTestServer, type TestServer } from '../helpers/server.js';

interface Answer { status: number; retryAfter: string | undefined; body: { type?: string; error?: string; token?: string } }

/** POST a JSON body from a chosen loopback source address (127.0.0.0/8 all reaches the server on 127.0.0.1). */
function post(url: string, path: string, body: unknown, options: { from?: string; token?: string } = {}): Promise<Answer> {
  const text = JSON.stringify(body);
  return new Promise((done, fail) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const req = request(`${url}${path}`, { method: 'POST', headers, localAddress: options.from ?? '127.0.0.1' }, (res) => {
      let data = '';
      res.on('data', (chunk: Buffer) => { data += chunk; });
      res.on('end', () => done({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body: JSON.parse(data) }));
    });
    req.on('error', fail);
    req.end(text);
  });
}

describe('login rate limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ LOGIN_RATE_LIMIT_PER_SOURCE: '6', LOGIN_RATE_LIMIT_PER_ADDRESS: '3', LOGIN_RATE_LIMIT_WINDOW_SECONDS: '600' });
  });
  afterAll(async () => { await server.close(); });

  it('an address past its logins gets 429 with Retry-After, while another address is still served', async () => {
    const busy = generateKeypair();
    for (let i = 0; i < 3; i++) expect((await post(server.url, '/login', signLogin(busy), { from: '127.0.0.11' })).status).toBe(200);
    const refused = await post(server.url, '/login', signLogin(busy), { from: '127.0.0.12' });
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(500);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(600);
    expect(refused.body).toEqual({ type: 'TooManyRequestsError', error: expect.stringContaining(`too many logins by address ${busy.address}`) });
    expect((await post(server.url, '/login', signLogin(generateKeypair()), { from: '127.0.0.12' })).status).toBe(200);
  });

  it('a source past its logins gets 429 with Retry-After, while another source is still served', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(server.url, '/login', signLogin(generateKeypair()), { from: '127.0.0.21' })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    const refused = await post(server.url, '/login', signLogin(generateKeypair()), { from: '127.0.0.21' });
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(500);
    expect(refused.body).toEqual({ type: 'TooManyRequestsError', error: expect.stringContaining('too many logins from 127.0.0.21') });
    // Junk is refused the same way: the source is counted before its body is read.
    expect((await post(server.url, '/login', { junk: true }, { from: '127.0.0.21' })).status).toBe(429);
    expect((await post(server.url, '/login', signLogin(generateKeypair()), { from: '127.0.0.22' })).status).toBe(200);
  });

  it('failed logins that name someone else\'s address do not use up that address\'s logins', async () => {
    const victim = generateKeypair();
    const stranger = generateKeypair();
    for (let i = 0; i < 5; i++) {
      const forged = { ...signLogin(stranger), address: victim.address };
      expect((await post(server.url, '/login', forged, { from: `127.0.1.${i + 1}` })).status).toBe(403);
    }
    expect((await post(server.url, '/login', signLogin(victim), { from: '127.0.0.31' })).status).toBe(200);
  });

  it('the job token exchange counts against the same limits', async () => {
    const node = generateKeypair();
    const { token } = (await post(server.url, '/login', signLogin(node), { from: '127.0.0.41' })).body;
    const exchanges: number[] = [];
    // One login and two exchanges use the address's three; the next exchange is refused.
    for (let i = 0; i < 3; i++) exchanges.push((await post(server.url, '/v1/tokens/job', { job: 'no-such-job' }, { from: '127.0.0.41', token })).status);
    expect(exchanges).toEqual([403, 403, 429]);
  });
});

describe('the source a login is counted under', () => {
  it('is the IPv4 address, also when it arrives IPv4-mapped, and the /64 network of an IPv6 address', () => {
    expect(sourceOf('203.0.113.7')).toBe('203.0.113.7');
    expect(sourceOf('::ffff:203.0.113.7')).toBe('203.0.113.7');
    // One host usually holds a whole /64: every address in it shares one count.
    expect(new Set(['2001:db8:a0:1::1', '2001:0db8:00a0:0001:ffff::2', '2001:db8:a0:1:1:2:3:4'].map(sourceOf))).toEqual(new Set(['2001:db8:a0:1::/64']));
    expect(sourceOf('2001:db8:a0:2::1')).not.toBe(sourceOf('2001:db8:a0:1::1'));
  });
});

describe('login rate limit defaults', () => {
  it('allow a burst of 100 logins from one source, as a node starting many jobs makes', async () => {
    const server = await startTestServer();
    try {
      const answers = await Promise.all(Array.from({ length: 100 }, () => call(server.url, 'POST', '/login', { body: signLogin(generateKeypair()) })));
      expect(answers.filter((a) => a.status !== 200)).toEqual([]);
      expect((await newAccount(server)).token).toBeTruthy();
    } finally {
      await server.close();
    }
  });
});
