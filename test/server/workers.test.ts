// The server on several cores (SERVER_WORKERS): one port, one SQLite file shared by the worker processes, and what
// must stay exact across them: a login signature is accepted once, /metrics counts every worker, SIGTERM stops all.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, generateKeypair, signLogin, startServerProcess } from '../helpers/server.js';

const WORKERS = 2;
let server: Awaited<ReturnType<typeof startServerProcess>>;

beforeAll(async () => {
  server = await startServerProcess(mkdtempSync(join(tmpdir(), 'nss-workers-')), { PORT: '0', SERVER_WORKERS: String(WORKERS), LOG_LEVEL: 'info' });
});
afterAll(async () => {
  if (server.child.exitCode === null) server.child.kill('SIGKILL');
});

/** A request on a connection of its own: the primary hands each new connection to the next worker in turn. */
function onNewConnection(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { ...init, headers: { ...init.headers, connection: 'close' } });
}

/** The process ids of the server's workers, from their "listening" log lines. */
function workerPids(): number[] {
  return server.stdout().split('\n').filter((line) => line.includes('"secrets server listening"'))
    .map((line) => (JSON.parse(line) as { pid: number }).pid);
}

describe('a server with several workers', () => {
  it('runs the number of workers SERVER_WORKERS names, behind one port', async () => {
    expect(new Set(workerPids()).size).toBe(WORKERS);
    expect(workerPids()).not.toContain(server.child.pid);
    expect((await call(server.url, 'GET', '/readyz')).status).toBe(200);
  });

  it('accepts a login signature sent ten times at once exactly once, whichever workers the copies reach', async () => {
    for (let round = 0; round < 5; round++) {
      const body = JSON.stringify(signLogin(generateKeypair()));
      const answers = await Promise.all(Array.from({ length: 10 }, () =>
        onNewConnection('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body })));
      const statuses = answers.map((answer) => answer.status).sort();
      expect(statuses).toEqual([200, ...Array(9).fill(403)]);
    }
  });

  it('a secret stored through one worker is read through every other', async () => {
    const owner = generateKeypair();
    const login = await call(server.url, 'POST', '/login', { body: signLogin(owner) });
    const authorization = `Bearer ${login.body.token as string}`;
    const stored = await onNewConnection('/v1/secrets/SHARED', {
      method: 'PUT', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ value: 'one file' }),
    });
    expect(stored.status).toBe(200);
    for (let i = 0; i < 2 * WORKERS; i++) {
      expect(await (await onNewConnection('/secrets/SHARED', { headers: { authorization } })).json()).toEqual({ SHARED: 'one file' });
    }
  });

  it('a job reading the same keys over and over sees a changed value and a revoked grant on its very next read, through every worker', async () => {
    const owner = generateKeypair();
    const node = generateKeypair();
    const ownerToken = (await call(server.url, 'POST', '/login', { body: signLogin(owner) })).body.token as string;
    for (const [key, value] of [['JOB_A', 'a-1'], ['JOB_B', 'b-1']]) {
      expect((await call(server.url, 'PUT', `/v1/secrets/${key}`, { token: ownerToken, body: { value } })).status).toBe(200);
    }
    expect((await call(server.url, 'PUT', '/v1/grants/cached-job', { token: ownerToken, body: { keys: ['JOB_A', 'JOB_B'], readers: [node.address] } })).status).toBe(200);
    const jobToken = (await call(server.url, 'POST', '/login', { body: signLogin(node, { job: 'cached-job', owner: owner.address }) })).body.token as string;
    const readAll = async () => Promise.all(Array.from({ length: 4 * WORKERS }, async () => {
      const answer = await onNewConnection('/secrets', { headers: { authorization: `Bearer ${jobToken}` } });
      return { status: answer.status, body: await answer.json() as unknown };
    }));
    // The same answer again and again: what a server may keep.
    for (let round = 0; round < 3; round++) expect(new Set((await readAll()).map((r) => JSON.stringify(r)))).toEqual(new Set([JSON.stringify({ status: 200, body: { JOB_A: 'a-1', JOB_B: 'b-1' } })]));

    // Written through one worker (on its own connection), read through all of them right after.
    expect((await onNewConnection('/v1/secrets/JOB_A', { method: 'PUT', headers: { authorization: `Bearer ${ownerToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ value: 'a-2' }) })).status).toBe(200);
    for (const read of await readAll()) expect(read).toEqual({ status: 200, body: { JOB_A: 'a-2', JOB_B: 'b-1' } });

    expect((await onNewConnection('/v1/grants/cached-job', { method: 'DELETE', headers: { authorization: `Bearer ${ownerToken}` } })).status).toBe(204);
    for (const read of await readAll()) expect(read.status).toBe(403);
  });

  it('/metrics counts the requests of every worker, not only of the worker that answers', async () => {
    const route = '/';
    const count = async () => {
      const text = await (await onNewConnection('/metrics')).text();
      const line = text.split('\n').find((l) => l.startsWith('nosana_secrets_http_requests_total{') && l.includes(`route="${route}"`));
      return line === undefined ? 0 : Number(line.split(' ').pop());
    };
    const before = await count();
    for (let i = 0; i < 6; i++) expect((await onNewConnection(route)).status).toBe(200);
    expect(await count()).toBe(before + 6);
  });

  it('SIGTERM stops every worker and then the primary, with exit code 0', async () => {
    const pids = workerPids();
    server.child.kill('SIGTERM');
    const code = await new Promise((done) => server.child.once('exit', done));
    expect(code).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
