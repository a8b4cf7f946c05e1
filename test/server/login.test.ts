import bs58 from 'bs58';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginMessage } from '../../common/login.js';
import { call, generateKeypair, signLogin, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server.close(); });

const now = () => Math.floor(Date.now() / 1000);

function signAt(timestamp: number, secretKey: Uint8Array): string {
  return bs58.encode(nacl.sign.detached(new TextEncoder().encode(loginMessage(timestamp)), secretKey));
}

describe('login', () => {
  it('an owner who signs nosana_secret_<timestamp> gets a token that opens /secrets', async () => {
    const owner = generateKeypair();
    const login = await call(server.url, 'POST', '/login', { body: signLogin(owner), headers: { authorization: 'null' } });
    expect(login.status).toBe(200);
    expect(typeof login.body.token).toBe('string');
    const secrets = await call(server.url, 'GET', '/secrets', { token: login.body.token });
    expect(secrets).toEqual({ status: 200, body: {} });
  });

  it('the token is accepted raw in Authorization, as the Nosana node sends it', async () => {
    const owner = generateKeypair();
    const { token } = await server.client.login(owner);
    await server.client.putSecret(token, 'RAW', 'v');
    const raw = await call(server.url, 'GET', '/secrets', { headers: { authorization: token } });
    expect(raw).toEqual({ status: 200, body: { RAW: 'v' } });
  });

  it('a timestamp sent as a string of digits is accepted, as older clients send it', async () => {
    const owner = generateKeypair();
    const t = now();
    const login = await call(server.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t, owner.secretKey), timestamp: String(t) } });
    expect(login.status).toBe(200);
  });

  it('a signature by another key is refused with 403', async () => {
    const owner = generateKeypair();
    const other = generateKeypair();
    const t = now();
    const login = await call(server.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t, other.secretKey), timestamp: t } });
    expect(login.status).toBe(403);
    expect(login.body).toMatchObject({ type: 'ForbiddenError', error: expect.stringContaining('signature does not match') });
  });

  it('a signature of another timestamp is refused with 403', async () => {
    const owner = generateKeypair();
    const t = now();
    const login = await call(server.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t - 1, owner.secretKey), timestamp: t } });
    expect(login.status).toBe(403);
  });

  it('a timestamp older than 60 s is refused', async () => {
    const owner = generateKeypair();
    const t = now() - 61;
    const login = await call(server.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t, owner.secretKey), timestamp: t } });
    expect(login.status).toBe(403);
    expect(login.body.error).toContain('old');
  });

  it('a timestamp of 59 s ago is still accepted', async () => {
    const owner = generateKeypair();
    const t = now() - 59;
    const login = await call(server.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t, owner.secretKey), timestamp: t } });
    expect(login.status).toBe(200);
  });

  it('a timestamp more than a few seconds in the future is refused', async () => {
    const owner = generateKeypair();
    const t = now() + 30;
    const login = await call(server.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t, owner.secretKey), timestamp: t } });
    expect(login.status).toBe(403);
    expect(login.body.error).toContain('future');
  });

  it('a signature that was already used is refused as a replay', async () => {
    const owner = generateKeypair();
    const body = signLogin(owner);
    expect((await call(server.url, 'POST', '/login', { body })).status).toBe(200);
    const replay = await call(server.url, 'POST', '/login', { body });
    expect(replay.status).toBe(403);
    expect(replay.body.error).toContain('already used');
  });

  it('a replay sent concurrently is accepted exactly once', async () => {
    const owner = generateKeypair();
    const body = signLogin(owner);
    const answers = await Promise.all(Array.from({ length: 8 }, () => call(server.url, 'POST', '/login', { body })));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 403)).toHaveLength(7);
  });

  it.each([
    ['an address that is not base58', { address: '0OIl'.repeat(11) }, 'address'],
    ['an address of the wrong length', { address: bs58.encode(new Uint8Array(31).fill(7)) }, 'address'],
    ['a signature that is not base58', { signature: '0OIl0OIl' }, 'signature'],
    ['a signature of the wrong length', { signature: bs58.encode(new Uint8Array(63).fill(1)) }, 'signature'],
    ['a timestamp that is not a number', { timestamp: 'soon' }, 'timestamp'],
    ['a timestamp with a fraction', { timestamp: 1.5 }, 'timestamp'],
    ['a job name with a space', { job: 'my job' }, 'job'],
  ])('%s is a 400 naming the field', async (_name, change, field) => {
    const owner = generateKeypair();
    const login = await call(server.url, 'POST', '/login', { body: { ...signLogin(owner), ...change } });
    expect(login.status).toBe(400);
    expect(login.body.type).toBe('ValidationError');
    expect(login.body.error).toContain(field);
  });

  it('a body that is not JSON is a 400, not a 500', async () => {
    const login = await call(server.url, 'POST', '/login', { body: '{"address":', headers: { 'content-type': 'application/json' } });
    expect(login.status).toBe(400);
    expect(login.body.type).toBe('ValidationError');
  });

  it('a missing, malformed or forged token is a 403', async () => {
    expect((await call(server.url, 'GET', '/secrets')).status).toBe(403);
    expect((await call(server.url, 'GET', '/secrets', { token: 'not-a-jwt' })).body.type).toBe('ForbiddenError');
    const owner = generateKeypair();
    const { token } = await server.client.login(owner);
    const [header, payload] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: generateKeypair().address })).toString('base64url')}.${token.split('.')[2]}`;
    expect((await call(server.url, 'GET', '/secrets', { token: forged })).status).toBe(403);
  });

  it('tokens are standard HS256 JWTs that a JWT library verifies with the server\'s secret', async () => {
    const owner = generateKeypair();
    const { token } = await server.client.login(owner);
    const { jwtVerify } = await import('jose');
    const { payload, protectedHeader } = await jwtVerify(token, server.context.config.jwtSecret, {
      issuer: 'nosana-secrets', audience: 'nosana-secrets-api', algorithms: ['HS256'],
    });
    expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload).toMatchObject({ sub: owner.address, scope: 'owner' });
    await expect(jwtVerify(token, new TextEncoder().encode('another secret of at least 32 bytes!!'))).rejects.toThrow(/signature/);
  });

  it('an expired token is a 403 that says to log in again', async () => {
    const short = await startTestServer({ TOKEN_TTL_SECONDS: '30' });
    try {
      const owner = generateKeypair();
      const { token } = await short.client.login(owner);
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
      expect(claims.exp - claims.iat).toBe(30);
      expect(claims).toMatchObject({ iss: 'nosana-secrets', aud: 'nosana-secrets-api', sub: owner.address, scope: 'owner' });
      // A token signed with the same secret but already expired.
      const { SignJWT } = await import('jose');
      const secret = short.context.config.jwtSecret;
      const expired = await new SignJWT({ scope: 'owner' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('nosana-secrets')
        .setAudience('nosana-secrets-api').setSubject(owner.address).setIssuedAt(now() - 100).setExpirationTime(now() - 10).sign(secret);
      const answer = await call(short.url, 'GET', '/secrets', { token: expired });
      expect(answer.status).toBe(403);
      expect(answer.body.error).toContain('expired');
    } finally {
      await short.close();
    }
  });

  it('a used signature stays refused after a restart on the same database', async () => {
    const first = await startTestServer();
    const owner = generateKeypair();
    const body = signLogin(owner);
    expect((await call(first.url, 'POST', '/login', { body })).status).toBe(200);
    await first.close();
    const second = await startTestServer({}, first.dir);
    try {
      expect((await call(second.url, 'POST', '/login', { body })).status).toBe(403);
    } finally {
      await second.close();
    }
  });

  it('the login message window is configurable', async () => {
    const wide = await startTestServer({ LOGIN_MAX_AGE_SECONDS: '300' });
    try {
      const owner = generateKeypair();
      const t = now() - 200;
      const login = await call(wide.url, 'POST', '/login', { body: { address: owner.address, signature: signAt(t, owner.secretKey), timestamp: t } });
      expect(login.status).toBe(200);
    } finally {
      await wide.close();
    }
  });

  it.each([
    ['32 times the same letter', 'a'.repeat(32)],
    ['a word repeated', 'password'.repeat(4)],
    ['two characters alternating', 'ab'.repeat(24)],
    ['a word with a counter', 'changeme-changeme-changeme-changeme1'],
  ])('a guessable JWT secret (%s) stops start-up with the command that makes a good one', async (_name, secret) => {
    await expect(startTestServer({ JWT_SECRET: secret })).rejects.toThrow(/JWT_SECRET looks guessable.*openssl rand -base64 48/);
  });

  it('JWT secrets made of random bytes are accepted, base64 or hex', async () => {
    const { randomBytes } = await import('node:crypto');
    for (const secret of [randomBytes(48).toString('base64'), randomBytes(16).toString('hex')]) {
      const started = await startTestServer({ JWT_SECRET: secret });
      await started.close();
    }
  });
});
