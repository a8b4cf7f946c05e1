// A bad or unreachable STORAGE_CONNECTION stops start-up with a message that names the scheme and the problem, and
// never the password (start-up errors end up in logs).
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../server/main.js';
import { StorageConfigError, StorageUnavailableError, type Storage } from '../../server/storage/contract.js';
import { MongoStorage } from '../../server/storage/mongodb.js';
import { MysqlStorage } from '../../server/storage/mysql.js';
import { openStorage } from '../../server/storage/open.js';
import { PostgresStorage } from '../../server/storage/postgresql.js';
import { RedisStorage } from '../../server/storage/redis.js';
import { requireServerUrl, type ServerName } from '../helpers/servers.js';

/** Percent-encoded in the URLs; neither form may appear in a message. */
const PASSWORD = 'hunter2%40vault';
const PASSWORD_DECODED = 'hunter2@vault';

function expectNoPassword(error: unknown): void {
  const message = (error as Error).message;
  expect(message).not.toContain(PASSWORD);
  expect(message).not.toContain(PASSWORD_DECODED);
  expect(message).not.toContain('hunter2');
}

async function failure(work: () => Promise<unknown>): Promise<Error> {
  try {
    await work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure, but it succeeded');
}

async function listen(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

const SCHEMES: [string, (port: number) => string][] = [
  ['postgresql', (port) => `postgresql://nosana:${PASSWORD}@127.0.0.1:${port}/db`],
  ['mysql', (port) => `mysql://nosana:${PASSWORD}@127.0.0.1:${port}/db`],
  ['redis', (port) => `redis://nosana:${PASSWORD}@127.0.0.1:${port}`],
  ['mongodb', (port) => `mongodb://nosana:${PASSWORD}@127.0.0.1:${port}/db?serverSelectionTimeoutMS=1000`],
];

describe('a STORAGE_CONNECTION that cannot work', () => {
  let closedPort: number;
  const silent: Socket[] = [];
  let blackHole: { server: Server; port: number };

  beforeAll(async () => {
    const probe = await listen((socket) => socket.destroy());
    closedPort = probe.port;
    await new Promise((resolve) => probe.server.close(resolve));
    // Accepts connections and never says a word, like a firewall that drops packets after the handshake.
    blackHole = await listen((socket) => { silent.push(socket); });
  });
  afterAll(async () => {
    for (const socket of silent) socket.destroy();
    await new Promise((resolve) => blackHole.server.close(resolve));
  });

  it('an unknown scheme is refused, naming the scheme and the supported ones', async () => {
    const error = await failure(() => openStorage(`cassandra://nosana:${PASSWORD}@db:9042/x`));
    expect(error).toBeInstanceOf(StorageConfigError);
    expect(error.message).toContain('"cassandra"');
    expect(error.message).toContain('postgresql, mysql, redis');
    expectNoPassword(error);
  });

  it.each([
    ['postgresql', `postgresql://nosana:${PASSWORD}@db:notaport/secrets`],
    ['mysql', `mysql://nosana:${PASSWORD}@[db/secrets`],
    ['redis', `redis://nosana:${PASSWORD}@db:99999`],
    ['mongodb', `mongodb://nosana:${PASSWORD}@db:notaport/secrets`],
  ])('a malformed %s URL is refused at start-up, naming the scheme', async (scheme, connection) => {
    const error = await failure(async () => (await openStorage(connection)).init());
    expect(error).toBeInstanceOf(StorageConfigError);
    expect(error.message).toContain(`${scheme}://`);
    expectNoPassword(error);
  });

  it('a redis URL whose path is not a database number is refused', async () => {
    const error = await failure(() => openStorage(`redis://nosana:${PASSWORD}@db:6379/secrets`));
    expect(error).toBeInstanceOf(StorageConfigError);
    expect(error.message).toMatch(/redis.*not a database number/);
    expectNoPassword(error);
  });

  it.each(SCHEMES)('an unreachable %s server fails the server start-up, naming the scheme and where', async (scheme, url) => {
    const dir = mkdtempSync(join(tmpdir(), 'nss-startup-'));
    const error = await failure(() => startServer({ PORT: '0', STORAGE_CONNECTION: url(closedPort), SECRETS_STATE_DIR: dir }, pino({ level: 'silent' })));
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(error.message).toContain(scheme);
    expect(error.message).toContain(`127.0.0.1:${closedPort}`);
    expect(error.message).toContain('unreachable');
    expect(error.message).toContain('STORAGE_CONNECTION');
    expectNoPassword(error);
  });

  it.each(SCHEMES)('a %s server that never answers fails start-up after the timeout instead of hanging', async (scheme, url) => {
    const connection = url(blackHole.port);
    const storage: Storage = {
      postgresql: () => new PostgresStorage(connection, { timeoutMs: 500 }),
      mysql: () => new MysqlStorage(connection, { timeoutMs: 500 }),
      redis: () => new RedisStorage(connection, { timeoutMs: 500 }),
      mongodb: () => new MongoStorage(connection.replace('1000', '500'), { timeoutMs: 500 }),
    }[scheme]!();
    const started = Date.now();
    const error = await failure(() => storage.init());
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(error.message).toContain(scheme);
    expectNoPassword(error);
    await storage.close().catch(() => {});
  });

  it.each<[ServerName, string]>([
    ['postgres', 'postgresql'],
    ['mysql', 'mysql'],
    ['redis', 'redis'],
  ])('a wrong password for the real %s server is refused at start-up as a login problem', async (server, scheme) => {
    const real = await requireServerUrl(server);
    const wrong = real.replace(/^([a-z]+:\/\/[^:/@]+):[^@]*@/, `$1:${PASSWORD}@`);
    expect(wrong).not.toBe(real);
    const storage = await openStorage(wrong);
    const error = await failure(() => storage.init());
    expect(error).toBeInstanceOf(StorageConfigError);
    expect(error.message).toContain(scheme);
    expect(error.message).toMatch(/login refused/);
    expectNoPassword(error);
  });
});
