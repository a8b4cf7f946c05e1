// The same backend behind the real HTTP server: what a user sees when STORAGE_CONNECTION names it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newAccount, startTestServer, type TestServer } from '../helpers/server.js';
import type { Provisioned } from '../helpers/servers.js';
import { TcpProxy } from './tcp-proxy.js';

export interface ApiBackend {
  name: string;
  provision(): Promise<Provisioned>;
  networked: boolean;
  /** Options added to the proxied connection string so an outage is noticed quickly (MongoDB's server selection). */
  quickFailureQuery?: string;
}

export function throughTheApi(backend: ApiBackend): void {
  describe(`the secrets server on ${backend.name}`, () => {
    let database: Provisioned;
    const servers: TestServer[] = [];
    const start = async (connection: string, dir?: string): Promise<TestServer> => {
      const server = await startTestServer({ STORAGE_CONNECTION: connection }, dir);
      servers.push(server);
      return server;
    };

    beforeAll(async () => {
      database = await backend.provision();
    });
    afterAll(async () => {
      await Promise.allSettled(servers.map((server) => server.close()));
      await database?.drop();
    });

    it(`keeps stored secrets across a restart on ${backend.name}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'nss-storage-'));
      const first = await start(database.connection, dir);
      const account = await newAccount(first);
      await first.client.putSecret(account.token, 'db/password', 'correct horse battery staple');
      await first.client.putSecret(account.token, 'db/password', 'correct horse battery staple 2');
      await first.close();

      const second = await start(database.connection, dir);
      const read = await second.client.getSecret(account.token, 'db/password');
      expect(read).toMatchObject({ key: 'db/password', value: 'correct horse battery staple 2', version: 2 });
      const listed = await second.client.listSecrets(account.token, 'db/');
      expect(listed.secrets.map((s) => s.key)).toEqual(['db/password']);
    });

    // Values are sealed for the version they are about to get; two servers writing one key at once race for it, and
    // the loser seals again for the next version and retries. Every write must stay readable as exactly what it was.
    if (backend.networked) it(`concurrent writes of one key through two servers read back at the version each got on ${backend.name}`, async () => {
      // One state dir, so both have the same JWT secret and keyring, as replicas do.
      const dir = mkdtempSync(join(tmpdir(), 'nss-storage-'));
      const [a, b] = [await start(database.connection, dir), await start(database.connection, dir)];
      const account = await newAccount(a);
      for (let round = 0; round < 3; round++) {
        const written = await Promise.all(Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? a : b).client.putSecret(account.token, 'raced', `value-${round}-${i}`)));
        const read = await a.client.getSecret(account.token, 'raced');
        const winner = Number(/^value-\d+-(\d+)$/.exec(read.value)?.[1]);
        expect(read.version).toBe(written[winner]!.version);
        expect((await b.client.getSecret(account.token, 'raced')).value).toBe(read.value);
      }
    });

    if (backend.networked) it('answers 503 on /readyz and on requests while the database is cut off, and recovers by itself', async () => {
      const { host, port } = TcpProxy.target(database.connection);
      const proxy = await TcpProxy.start(host, port);
      try {
        let connection = TcpProxy.via(database.connection, proxy);
        if (backend.quickFailureQuery) connection += (connection.includes('?') ? '&' : '?') + backend.quickFailureQuery;
        const server = await start(connection);
        const account = await newAccount(server);
        await server.client.putSecret(account.token, 'kept', 'acknowledged before the outage');
        expect((await call(server.url, 'GET', '/readyz')).status).toBe(200);

        proxy.cut();
        const ready = await call(server.url, 'GET', '/readyz');
        expect(ready.status).toBe(503);
        const read = await call(server.url, 'GET', '/v1/secrets/kept', { token: account.token });
        expect(read.status).toBe(503);
        expect(read.body.type).toBe('ServiceUnavailableError');
        expect(JSON.stringify(read.body)).not.toContain('acknowledged');

        proxy.restore();
        const deadline = Date.now() + 15_000;
        while ((await call(server.url, 'GET', '/readyz')).status !== 200) {
          if (Date.now() > deadline) throw new Error('/readyz did not recover within 15 s of the database returning');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect((await server.client.getSecret(account.token, 'kept')).value).toBe('acknowledged before the outage');
        expect(server.logs.join('\n')).not.toContain('acknowledged before the outage');
      } finally {
        await proxy.close();
      }
    });
  });
}
