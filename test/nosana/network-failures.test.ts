// When the Nosana network cannot answer, a login says so with 502/503 (never 500), quickly; what the server caches
// keeps the network from being asked on every request; and API grants keep working beside the Nosana source.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../common/client.js';
import { generateKeypair } from '../../common/login.js';
import { NosanaNetworkReplay, startNosanaServer, type NosanaTestServer } from './network-replay.js';

let network: NosanaNetworkReplay;
const servers: NosanaTestServer[] = [];

beforeAll(async () => {
  network = await NosanaNetworkReplay.start();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await network?.close();
});

async function serverWith(env: Record<string, string>): Promise<NosanaTestServer> {
  const server = await startNosanaServer({ ...network.env, GRANT_SOURCES: 'nosana', ...env });
  servers.push(server);
  return server;
}

/** A loopback URL where nothing listens (a port taken and released). */
async function deadUrl(path = ''): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}${path}`;
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

async function runningJobFor(server: NosanaTestServer, keys: Record<string, string>) {
  const project = generateKeypair();
  const { token } = await server.client.login(project);
  for (const [key, value] of Object.entries(keys)) await server.client.putSecret(token, key, value);
  const node = generateKeypair();
  const job = await network.runningJob({ project: project.address, node: node.address, definition: { state: { 'nosana/secrets': Object.keys(keys) } } });
  return { project, node, job };
}

describe('the Nosana network failing', () => {
  it('answers 503 naming the gateway when IPFS is unreachable', async () => {
    const server = await serverWith({ IPFS_GATEWAY: await deadUrl('/ipfs/') });
    const { node, job } = await runningJobFor(server, { API_KEY: 'v' });
    const error = await refusal(server.client.login(node, job));
    expect(error.status).toBe(503);
    expect(error.type).toBe('ServiceUnavailableError');
    expect(error.message).toMatch(/^IPFS gateway 127\.0\.0\.1:\d+ is unreachable/);
    // The operator sees it in the metrics and the log; the chain calls before it succeeded.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/nosana_secrets_nosana_request_duration_seconds_count\{[^}]*call="ipfs"[^}]*outcome="ServiceUnavailableError"[^}]*\} 1/);
    expect(metrics).toMatch(/nosana_secrets_nosana_request_duration_seconds_count\{[^}]*call="getAccountInfo"[^}]*outcome="ok"[^}]*\} 1/);
    expect(server.logs.some((line) => line.includes('nosana network call failed') && line.includes(job))).toBe(true);
  });

  it('answers 502 when the gateway does not have the job definition', async () => {
    const server = await serverWith({});
    const { node, job } = await runningJobFor(server, { API_KEY: 'v' });
    // A job whose digest names nothing the gateway holds.
    const account = network.rpc.accounts.get(job)!;
    const data = Buffer.from(account.data);
    data.fill(9, 8, 40); // ipfsJob
    network.rpc.put(job, { ...account, data });
    const error = await refusal(server.client.login(node, job));
    expect(error.status).toBe(502);
    expect(error.message).toMatch(/^IPFS gateway 127\.0\.0\.1:\d+ answered HTTP 404 for Qm/);
  });

  it('answers 503 within the timeout when the Solana RPC does not answer', async () => {
    const server = await serverWith({ NOSANA_RPC_TIMEOUT_MS: '300' });
    const { node, job } = await runningJobFor(server, { API_KEY: 'v' });
    network.rpc.hang = true;
    try {
      const started = Date.now();
      const error = await refusal(server.client.login(node, job));
      expect(error.status).toBe(503);
      expect(error.message).toMatch(/^Solana RPC at 127\.0\.0\.1:\d+ did not answer getAccountInfo within 300 ms/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      network.rpc.hang = false;
    }
  });

  it('answers 503 when the Solana RPC is unreachable, without revealing the RPC URL', async () => {
    const server = await serverWith({ NOSANA_RPC_URL: `${await deadUrl()}/?api-key=provider-secret` });
    const error = await refusal(server.client.login(generateKeypair(), generateKeypair().address));
    expect(error.status).toBe(503);
    expect(error.message).toMatch(/^Solana RPC at 127\.0\.0\.1:\d+ is unreachable/);
    expect(error.message).not.toMatch(/provider-secret/);
    expect(server.logs.join('\n')).not.toMatch(/provider-secret/);
  });

  it('answers 502 with the RPC\'s reason when the RPC refuses the call', async () => {
    const server = await serverWith({});
    network.rpc.failWith = { code: -32005, message: 'Node is behind by 42 slots' };
    try {
      const error = await refusal(server.client.login(generateKeypair(), generateKeypair().address));
      expect(error.status).toBe(502);
      expect(error.message).toMatch(/refused getAccountInfo: Node is behind by 42 slots \(code -32005\)/);
    } finally {
      network.rpc.failWith = undefined;
    }
  });
});

describe('caching', () => {
  it('reads a job from the chain and IPFS once for a login and the reads that follow it, within the TTL', async () => {
    const server = await serverWith({ NOSANA_CACHE_TTL_SECONDS: '60' });
    const { node, job } = await runningJobFor(server, { API_KEY: 'cached-value' });
    const rpcBefore = network.rpc.calls.length;
    const ipfsBefore = network.ipfs.requests.length;

    const { token } = await server.client.login(node, job);
    const reads = await Promise.all(Array.from({ length: 5 }, () => fetch(`${server.url}/secrets`, { headers: { authorization: token } })));
    expect(reads.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    // One getAccountInfo for the job and one getProgramAccounts for its run, one gateway fetch of the definition.
    expect(network.rpc.calls.slice(rpcBefore).map((c) => c.method).sort()).toEqual(['getAccountInfo', 'getProgramAccounts']);
    expect(network.ipfs.requests.length - ipfsBefore).toBe(1);
  });
});

describe('GRANT_SOURCES=api,nosana', () => {
  it('serves API grants and Nosana job grants from one server, and API grants still when the network is down', async () => {
    // No chain cache, so the outage below is seen at once.
    const server = await serverWith({ GRANT_SOURCES: 'api,nosana', NOSANA_CACHE_TTL_SECONDS: '0' });
    // A Nosana job grant.
    const { node, job } = await runningJobFor(server, { CHAIN_GRANTED: 'from-chain' });
    const { token: nodeToken } = await server.client.login(node, job);
    expect(await (await fetch(`${server.url}/secrets`, { headers: { authorization: nodeToken } })).json()).toEqual({ CHAIN_GRANTED: 'from-chain' });

    // An API grant, for a job named like a Nosana job (an address) that the chain does not know.
    const owner = generateKeypair();
    const { token: ownerToken } = await server.client.login(owner);
    await server.client.putSecret(ownerToken, 'API_GRANTED', 'from-api');
    const reader = generateKeypair();
    const apiJob = generateKeypair().address;
    await server.client.putGrant(ownerToken, apiJob, ['API_GRANTED'], [reader.address]);
    const { token: readerToken } = await server.client.login(reader, apiJob);
    expect((await server.client.getSecret(readerToken, 'API_GRANTED')).value).toBe('from-api');

    // With the RPC refusing every call, the API grant stands and the Nosana job says why it cannot be checked.
    network.rpc.failWith = { code: -32005, message: 'Node is unhealthy' };
    try {
      const { token } = await server.client.login(reader, apiJob);
      expect((await server.client.getSecret(token, 'API_GRANTED')).value).toBe('from-api');
      expect((await refusal(server.client.login(node, job))).status).toBe(502);
    } finally {
      network.rpc.failWith = undefined;
    }
  });
});
