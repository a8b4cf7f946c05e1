import { randomBytes } from 'node:crypto';
// Audience-bound logins: `nosana_secret_<audience>_<ts>` names the one server it is for, so a login that another
// server saw (upstream's hosted one, another deployment, a capture server) is no credential here.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import bs58 from 'bs58';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretsClient } from '../../common/client.js';
import { loginMessage, type LoginRequest } from '../../common/login.js';
import { call, generateKeypair, signLogin, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server.close(); });

/** A loopback HTTP server that records every login sent to it, advertising `audience` when given (404 otherwise). */
async function captureServer(audience?: string): Promise<{ url: string; logins: LoginRequest[]; server: Server }> {
  const logins: LoginRequest[] = [];
  const capture = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => { text += chunk.toString(); });
    request.on('end', () => {
      response.setHeader('content-type', 'application/json');
      if (request.method === 'GET' && request.url === '/v1/info' && audience !== undefined) {
        response.end(JSON.stringify({ audience }));
      } else if (request.method === 'POST' && request.url === '/login') {
        logins.push(JSON.parse(text) as LoginRequest);
        response.end(JSON.stringify({ token: 'captured', expiresAt: new Date().toISOString() }));
      } else {
        response.statusCode = 404;
        response.end(JSON.stringify({ type: 'NotFoundError', error: 'no route' }));
      }
    });
  });
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(capture.address() as AddressInfo).port}`, logins, server: capture };
}

const verifies = (login: LoginRequest, message: string, publicKey: Uint8Array) =>
  nacl.sign.detached.verify(new TextEncoder().encode(message), bs58.decode(login.signature), publicKey);

describe('audience-bound logins', () => {
  it('GET /v1/info names the audience, derived from the JWT secret unless LOGIN_AUDIENCE is set', async () => {
    const info = await call(server.url, 'GET', '/v1/info');
    expect(info.status).toBe(200);
    expect(info.body).toEqual({
      audience: expect.stringMatching(/^nss-[0-9a-f]{16}$/),
      loginMessage: `nosana_secret_${info.body.audience}_<unix seconds>`,
      unboundLogin: 'accept',
    });
    const secret = randomBytes(48).toString('base64');
    const replicaA = await startTestServer({ JWT_SECRET: secret });
    const replicaB = await startTestServer({ JWT_SECRET: secret });
    const named = await startTestServer({ JWT_SECRET: secret, LOGIN_AUDIENCE: 'secrets.example.com' });
    try {
      const a = (await call(replicaA.url, 'GET', '/v1/info')).body.audience;
      expect((await call(replicaB.url, 'GET', '/v1/info')).body.audience).toBe(a);
      expect(a).not.toBe(info.body.audience);
      expect((await call(named.url, 'GET', '/v1/info')).body.audience).toBe('secrets.example.com');
    } finally {
      await Promise.all([replicaA.close(), replicaB.close(), named.close()]);
    }
  });

  it('our client signs the bound form for the audience the server advertises', async () => {
    const capture = await captureServer('capture-test');
    try {
      const owner = generateKeypair();
      await new SecretsClient({ endpoint: capture.url }).login(owner, 'job-1');
      expect(capture.logins).toHaveLength(1);
      const [login] = capture.logins as [LoginRequest];
      expect(login).toMatchObject({ address: owner.address, audience: 'capture-test', job: 'job-1' });
      expect(verifies(login, loginMessage(login.timestamp, 'capture-test'), owner.publicKey)).toBe(true);
      expect(verifies(login, loginMessage(login.timestamp), owner.publicKey)).toBe(false);
    } finally {
      capture.server.close();
    }
  });

  it('our client signs upstream\'s unbound form for a server that advertises no audience', async () => {
    const capture = await captureServer();
    try {
      const owner = generateKeypair();
      await new SecretsClient({ endpoint: capture.url }).login(owner);
      const [login] = capture.logins as [LoginRequest];
      expect(login.audience).toBeUndefined();
      expect(verifies(login, loginMessage(login.timestamp), owner.publicKey)).toBe(true);
    } finally {
      capture.server.close();
    }
  });

  it('a login our client made for another server is refused here with a 403 naming both audiences', async () => {
    const other = await startTestServer();
    try {
      const capture = await captureServer((await call(other.url, 'GET', '/v1/info')).body.audience);
      const owner = generateKeypair();
      await new SecretsClient({ endpoint: capture.url }).login(owner);
      capture.server.close();
      const replay = await call(server.url, 'POST', '/login', { body: capture.logins[0] });
      expect(replay.status).toBe(403);
      expect(replay.body).toEqual({ type: 'ForbiddenError', error: expect.stringMatching(/^login is signed for audience "nss-[0-9a-f]{16}", not for this server/) });
      // The same login still works where it was meant to go.
      expect((await call(other.url, 'POST', '/login', { body: capture.logins[0] })).status).toBe(200);
    } finally {
      await other.close();
    }
  });

  it('a bound login whose signature is of the unbound message is refused', async () => {
    const owner = generateKeypair();
    const { audience } = (await call(server.url, 'GET', '/v1/info')).body;
    const login = await call(server.url, 'POST', '/login', { body: { ...signLogin(owner), audience } });
    expect(login.status).toBe(403);
    expect(login.body.error).toContain(`for message nosana_secret_${audience}_`);
  });

  it('an upstream-style unbound login still works by default', async () => {
    const owner = generateKeypair();
    const login = await call(server.url, 'POST', '/login', { body: signLogin(owner) });
    expect(login.status).toBe(200);
  });

  it('with LOGIN_UNBOUND=refuse the unbound form is a 400 naming the form to sign, and our client still logs in', async () => {
    const strict = await startTestServer({ LOGIN_UNBOUND: 'refuse', LOGIN_AUDIENCE: 'strict.test' });
    try {
      expect((await call(strict.url, 'GET', '/v1/info')).body.unboundLogin).toBe('refuse');
      const owner = generateKeypair();
      const unbound = await call(strict.url, 'POST', '/login', { body: signLogin(owner) });
      expect(unbound.status).toBe(400);
      expect(unbound.body).toEqual({
        type: 'ValidationError',
        error: 'this server accepts only audience-bound logins: sign nosana_secret_strict.test_<unix seconds> and send "audience": "strict.test" (GET /v1/info names the audience)',
      });
      const { token } = await strict.client.login(owner);
      await strict.client.putSecret(token, 'K', 'v');
      expect((await strict.client.getSecret(token, 'K')).value).toBe('v');
    } finally {
      await strict.close();
    }
  });

  it('our client asks again when the server\'s audience changed since it last asked', async () => {
    const first = await startTestServer({ LOGIN_AUDIENCE: 'before.test' });
    const port = new URL(first.url).port;
    const client = new SecretsClient({ endpoint: first.url });
    const owner = generateKeypair();
    await client.login(owner);
    await first.close();
    // The client's keep-alive socket to the closed server must see that close before the port is reused; Node's agent
    // gives no event for it, so wait a moment (otherwise the next request goes down the dead socket: a hang-up).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const second = await startTestServer({ LOGIN_AUDIENCE: 'after.test', LOGIN_UNBOUND: 'refuse', PORT: port });
    try {
      const { token } = await client.login(owner);
      expect((await client.listSecrets(token)).secrets).toEqual([]);
    } finally {
      await second.close();
    }
  });

  it.each([
    ['LOGIN_AUDIENCE with "_"', { LOGIN_AUDIENCE: 'my_server' }, /LOGIN_AUDIENCE="my_server" is not valid/],
    ['LOGIN_UNBOUND of another word', { LOGIN_UNBOUND: 'no' }, /LOGIN_UNBOUND="no" is not valid: set it to accept or refuse/],
  ])('%s stops start-up with the fix in the message', async (_name, env, message) => {
    await expect(startTestServer(env)).rejects.toThrow(message);
  });
});
