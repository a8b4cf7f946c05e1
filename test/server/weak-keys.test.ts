// Small-order and non-canonical ed25519 public keys: anyone can produce a signature that verifies for them, so an
// address like that must never log in (a forged login once worked for 4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM).
import bs58 from 'bs58';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginMessage } from '../../common/login.js';
import { call, generateKeypair, signLogin, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => { server = await startTestServer(); });
afterAll(async () => { await server.close(); });

const now = () => Math.floor(Date.now() / 1000);
const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
const ff = 'ff'.repeat(30);

// The 8 small-order points in their canonical encodings, then non-canonical encodings of small-order points.
const weakKeys: [string, string][] = [
  ['the identity (order 1), the address of the reported forgery', `01${'00'.repeat(31)}`],
  ['the point of order 2', `ec${ff}7f`],
  ['a point of order 4', '00'.repeat(32)],
  ['the other point of order 4', `${'00'.repeat(31)}80`],
  ['a point of order 8', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'],
  ['a second point of order 8', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85'],
  ['a third point of order 8', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'],
  ['a fourth point of order 8', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa'],
  ['the identity with the sign bit set (non-canonical)', `01${'00'.repeat(30)}80`],
  ['the order-2 point with the sign bit set (non-canonical)', `ec${ff}ff`],
  ['y = p, a non-canonical zero', `ed${ff}7f`],
  ['y = p + 1, a non-canonical identity', `ee${ff}7f`],
];

/** The forgery that needs no private key: R = identity, S = 0. */
const forgedSignature = bs58.encode(Uint8Array.from([1, ...new Array(63).fill(0)]));

describe('weak public keys', () => {
  it('the reported address is the identity point', () => {
    expect(Buffer.from(bs58.decode('4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM')).toString('hex')).toBe(`01${'00'.repeat(31)}`);
  });

  it.each(weakKeys)('%s cannot log in with a forged signature: 400 naming the address', async (_name, key) => {
    const address = bs58.encode(hex(key));
    // Several timestamps: for a point of order n the forgery verifies for about one message in n.
    for (let i = 0; i < 8; i++) {
      const login = await call(server.url, 'POST', '/login', { body: { address, signature: forgedSignature, timestamp: now() - i } });
      expect(login.status).toBe(400);
      expect(login.body).toEqual({ type: 'ValidationError', error: expect.stringMatching(new RegExp(`^address ${address} is (a small-order|not a canonical)`)) });
    }
  });

  it('a job login with the reported address and the forged signature is refused too', async () => {
    const address = '4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM';
    const login = await call(server.url, 'POST', '/login', { body: { address, signature: forgedSignature, timestamp: now(), job: 'any-job' } });
    expect(login.status).toBe(400);
    expect(login.body.error).toContain('small-order');
  });

  it('a signature with S + L (the same signature, non-canonical) is refused, so it cannot dodge the replay cache', async () => {
    const owner = generateKeypair();
    const t = now();
    const signature = nacl.sign.detached(new TextEncoder().encode(loginMessage(t)), owner.secretKey);
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i]!);
    s += L;
    const malleated = Uint8Array.from(signature);
    for (let i = 0; i < 32; i++) malleated[32 + i] = Number((s >> BigInt(8 * i)) & 255n);
    const body = { address: owner.address, timestamp: t };
    expect((await call(server.url, 'POST', '/login', { body: { ...body, signature: bs58.encode(signature) } })).status).toBe(200);
    const replay = await call(server.url, 'POST', '/login', { body: { ...body, signature: bs58.encode(malleated) } });
    expect(replay.status).toBe(403);
    expect(replay.body.type).toBe('ForbiddenError');
  });

  it('ordinary keys still log in', async () => {
    for (let i = 0; i < 20; i++) {
      expect((await call(server.url, 'POST', '/login', { body: signLogin(generateKeypair()) })).status).toBe(200);
    }
  });
});
