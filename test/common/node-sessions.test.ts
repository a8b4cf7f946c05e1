// The node's sessions against a real server: tokens are reused while fresh, and only a bounded number is kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeypair } from '../../common/login.js';
import { NodeSessions, type ServerCall } from '../../common/node-sessions.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('NodeSessions', () => {
  let server: TestServer;
  const owner = generateKeypair();
  const node = generateKeypair();

  beforeAll(async () => {
    server = await startTestServer();
    const { token } = await server.client.login(owner);
    await server.client.putSecret(token, 'shared/token', 'value-1');
    for (const job of ['job-a', 'job-b', 'job-c']) await server.client.putGrant(token, job, ['shared/token'], [node.address]);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('keeps at most tokensKept tokens: the least recently used job token is exchanged again, the owner token stays', async () => {
    const calls: ServerCall[] = [];
    const sessions = new NodeSessions({ tokensKept: 3, observer: { call: (call) => calls.push(call) } });
    const read = async (job: string) => (await sessions.readJobSecrets(server.url, node, job, owner.address, ['shared/token']))['shared/token']?.value;
    const count = (call: ServerCall) => calls.filter((c) => c === call).length;

    // The owner token and two job tokens fill the three places; the third job pushes out job-a, the oldest.
    for (const job of ['job-a', 'job-b', 'job-c']) expect(await read(job)).toBe('value-1');
    expect(count('login')).toBe(1);
    expect(count('job_token')).toBe(3);

    expect(await read('job-c')).toBe('value-1');
    expect(count('job_token')).toBe(3); // still kept

    expect(await read('job-a')).toBe('value-1');
    expect(count('job_token')).toBe(4); // was dropped: exchanged again
    expect(count('login')).toBe(1); // every exchange used the owner token, so it was never the oldest
    expect(count('read')).toBe(5);
  });
});
