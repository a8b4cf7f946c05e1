// Slow, half-sent, idle and oversized clients against a real server: deadlines close them, body limits refuse them,
// the connection cap holds, memory stays bounded and other clients are served meanwhile. The memory test runs the
// built server in a process of its own, so the RSS read from /proc/<pid>/status is the server's alone.
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretsClient } from '../../common/client.js';
import { call, generateKeypair, signLogin, startServerProcess, startTestServer, type ServerProcess } from '../helpers/server.js';

const MiB = 1024 * 1024;
/** What 200 slow clients may add to the server's RSS: their bodies are refused or capped at 4 KiB each. */
const RSS_BOUND_MIB = 48;
const REQUEST_TIMEOUT_SECONDS = 3;

function rssMib(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

interface SlowClient {
  socket: Socket;
  answer: () => string;
  /** Resolves once the server has taken every byte sent, or closed the connection. */
  delivered: Promise<void>;
  closedAfterMs: Promise<number>;
}

/** Opens a connection, sends `head` and the first `sent` bytes of `body`, and then goes quiet. */
function slowClient(url: string, head: string, sent: Buffer): SlowClient {
  const { hostname, port } = new URL(url);
  const opened = Date.now();
  const socket = connect(Number(port), hostname);
  let answer = '';
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
  socket.on('error', () => { /* a reset is one way of being closed */ });
  const closedAfterMs = new Promise<number>((done) => socket.once('close', () => done(Date.now() - opened)));
  const written = new Promise<void>((done) => socket.write(Buffer.concat([Buffer.from(head), sent]), () => done()));
  return { socket, answer: () => answer, delivered: Promise.race([written, closedAfterMs.then(() => undefined)]), closedAfterMs };
}

function loginHead(contentLength: number): string {
  return `POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`;
}

/** Resolves with how many of `clients` closed within `ms`. */
async function closedWithin(clients: SlowClient[], ms: number): Promise<number> {
  let closed = 0;
  await Promise.race([
    Promise.all(clients.map((c) => c.closedAfterMs.then(() => { closed++; }))),
    new Promise((done) => setTimeout(done, ms)),
  ]);
  return closed;
}

describe('200 slow clients against a server process', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nss-slow-'));
    server = await startServerProcess(dir, {
      PORT: '0', STORAGE_CONNECTION: `sqlite://${join(dir, 'db.sqlite')}`, SECRETS_STATE_DIR: join(dir, 'state'), LOG_LEVEL: 'warn',
      REQUEST_TIMEOUT_SECONDS: String(REQUEST_TIMEOUT_SECONDS), HEADERS_TIMEOUT_SECONDS: '2',
      // One process, which holds every connection: the RSS read from its pid is then the whole server's.
      SERVER_WORKERS: '1',
    });
  });
  afterAll(async () => { await server.stop(); });

  it(`keep the server's RSS within ${RSS_BOUND_MIB} MiB, are closed after the request deadline, and others are served meanwhile`, async () => {
    const pid = server.child.pid!;
    const client = new SecretsClient({ endpoint: server.url });
    await client.login(generateKeypair());
    const before = rssMib(pid);

    // 100 logins that send half of a 3,000-byte body, and 100 that announce 2 MiB (what the review sent) and send
    // 1 MiB of it; then all go quiet.
    const halfSent = Array.from({ length: 100 }, () => slowClient(server.url, loginHead(3000), Buffer.alloc(1500, 'a')));
    const oneMiB = Buffer.alloc(MiB, 'a');
    const oversized = Array.from({ length: 100 }, () => slowClient(server.url, loginHead(2 * MiB), oneMiB));
    const all = [...halfSent, ...oversized];
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMib(pid)); }, 50);
    try {
      await Promise.all(all.map((c) => c.delivered));
      await new Promise((done) => setTimeout(done, 500));
      expect(peak - before).toBeLessThan(RSS_BOUND_MIB);
      // While they hold their connections, a normal client is served.
      const stillOpen = halfSent.filter((c) => !c.socket.closed).length;
      expect(stillOpen).toBe(100);
      expect((await call(server.url, 'GET', '/health')).status).toBe(200);
      expect((await call(server.url, 'POST', '/login', { body: signLogin(generateKeypair()) })).status).toBe(200);

      // Every one of them is closed once the request deadline (checked every second) has passed.
      expect(await closedWithin(all, (REQUEST_TIMEOUT_SECONDS + 5) * 1000)).toBe(200);
    } finally {
      clearInterval(sampler);
      for (const c of all) c.socket.destroy();
    }
    expect(peak - before).toBeLessThan(RSS_BOUND_MIB);
    expect(halfSent.every((c) => c.answer().startsWith('HTTP/1.1 408'))).toBe(true);
    // The oversized ones are refused from their Content-Length, before a byte of the body is buffered.
    for (const c of oversized) {
      expect(c.answer()).toMatch(/^HTTP\/1\.1 413/);
      expect(c.answer()).toContain('"type":"PayloadTooLargeError"');
    }
    console.info(`server RSS ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB at most while 200 slow clients were open`);
    expect((await call(server.url, 'GET', '/health')).status).toBe(200);
  });
});

describe('connection deadlines and limits', () => {
  it('a connection that sends half its headers is closed after HEADERS_TIMEOUT_SECONDS', async () => {
    const server = await startTestServer({ HEADERS_TIMEOUT_SECONDS: '1', REQUEST_TIMEOUT_SECONDS: '30' });
    try {
      const slow = slowClient(server.url, 'GET /health HTTP/1.1\r\nHost: local', Buffer.alloc(0));
      expect(await closedWithin([slow], 4000)).toBe(1);
      expect(slow.answer()).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await server.close();
    }
  });

  it('an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_SECONDS', async () => {
    const server = await startTestServer({ KEEP_ALIVE_TIMEOUT_SECONDS: '1' });
    try {
      const idle = slowClient(server.url, 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n', Buffer.alloc(0));
      expect(await closedWithin([idle], 4000)).toBe(1);
      expect(idle.answer()).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      await server.close();
    }
  });

  it('connections past MAX_CONNECTIONS are closed at once, and served again once others close', async () => {
    const server = await startTestServer({ MAX_CONNECTIONS: '20' });
    const held = Array.from({ length: 20 }, () => slowClient(server.url, '', Buffer.alloc(0)));
    try {
      await Promise.all(held.map((c) => new Promise((done) => c.socket.once('connect', done))));
      const extra = slowClient(server.url, 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n', Buffer.alloc(0));
      expect(await closedWithin([extra], 2000)).toBe(1);
      expect(extra.answer()).toBe('');
      for (const c of held) c.socket.destroy();
      await Promise.all(held.map((c) => c.closedAfterMs));
      await new Promise((done) => setTimeout(done, 100));
      expect((await call(server.url, 'GET', '/health')).status).toBe(200);
    } finally {
      for (const c of held) c.socket.destroy();
      await server.close();
    }
  });

  it('a write without a valid token is refused before its body is read, so only a logged-in caller can send more than 4 KiB', async () => {
    const server = await startTestServer();
    try {
      for (const [path, authorization] of [['/secrets', ''], ['/v1/secrets/K', 'Authorization: Bearer forged.token.here\r\n'], ['/v1/read', ''], ['/v1/grants/job', '']]) {
        const method = path === '/v1/read' || path === '/secrets' ? 'POST' : 'PUT';
        const head = `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n${authorization}Content-Type: application/json\r\nContent-Length: 400000\r\n\r\n`;
        const client = slowClient(server.url, head, Buffer.from('{"secrets":'));
        await new Promise((done) => setTimeout(done, 300));
        expect(client.answer()).toMatch(/^HTTP\/1\.1 403/);
        expect(client.answer()).toContain('"type":"ForbiddenError"');
        client.socket.destroy();
      }
    } finally {
      await server.close();
    }
  });

  it('a login body above 4 KiB is refused with 413 in the documented shape', async () => {
    const server = await startTestServer();
    try {
      const body = { ...signLogin(generateKeypair()), padding: 'x'.repeat(5000) };
      const answer = await call(server.url, 'POST', '/login', { body });
      expect(answer).toEqual({ status: 413, body: { type: 'PayloadTooLargeError', error: expect.any(String) } });
    } finally {
      await server.close();
    }
  });
});
