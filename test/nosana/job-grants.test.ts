// A Nosana node logs in to this server with `job` exactly as it does with the hosted secret manager, and reads what
// the job grants; a project reads its finished job's secret results. The network is replayed (see network-replay.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../common/client.js';
import { generateKeypair, type Keypair } from '../../common/login.js';
import { MAINNET_JOBS_PROGRAM, NosanaNetworkReplay, startNosanaServer, type NosanaTestServer } from './network-replay.js';
import { jobAccountData } from './solana-rpc-replay.js';

let network: NosanaNetworkReplay;
let server: NosanaTestServer;

beforeAll(async () => {
  network = await NosanaNetworkReplay.start();
  // Chain state is not cached here, so a job's state change shows at once; caching has its own test.
  server = await startNosanaServer({ ...network.env, GRANT_SOURCES: 'nosana', NOSANA_CACHE_TTL_SECONDS: '0' });
});

afterAll(async () => {
  await server?.close();
  await network?.close();
});

/** A keypair logged in as owner that stores `secrets` under its own address. */
async function ownerWith(secrets: Record<string, string>): Promise<Keypair> {
  const keypair = generateKeypair();
  const { token } = await server.client.login(keypair);
  for (const [key, value] of Object.entries(secrets)) await server.client.putSecret(token, key, value);
  return keypair;
}

/** GET /secrets as the Nosana node calls it: the JWT alone in the Authorization header. */
async function nodeReads(token: string, path = '/secrets'): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: token } });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

const definition = (keys: string[]) => ({
  type: 'Github', url: 'https://github.com/example/app.git', commit: 'c47115da3e1dbb3666784ab3f0a6af316acc4a77',
  state: { 'nosana/secrets': keys }, pipeline: 'jobs:\n  - name: test\n    commands: [env]\n',
});

describe('a running Nosana job', () => {
  it('lets the node that runs it log in with the job and read exactly the keys its definition grants', async () => {
    const project = await ownerWith({ API_KEY: 'value-of-api-key', SSH_KEY: 'value-of-ssh-key', NOT_GRANTED: 'value-not-granted' });
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: definition(['API_KEY', 'SSH_KEY']) });

    const { token } = await server.client.login(node, job);
    const read = await nodeReads(token);
    expect(read).toEqual({ status: 200, body: { API_KEY: 'value-of-api-key', SSH_KEY: 'value-of-ssh-key' } });
    const outside = await nodeReads(token, '/secrets/NOT_GRANTED');
    expect(outside.status).toBe(403);
    // The node reads through the chain and IPFS at the configured commitment, and no value reaches the log.
    expect(network.rpc.calls.every((call) => call.commitment === 'confirmed')).toBe(true);
    expect(server.logs.join('\n')).not.toMatch(/value-of-|value-not-granted/);
  });

  it('refuses a node that does not run it with 403', async () => {
    const project = await ownerWith({ API_KEY: 'v' });
    const job = await network.runningJob({ project: project.address, node: generateKeypair().address, definition: definition(['API_KEY']) });
    const intruder = generateKeypair();

    const error = await refusal(server.client.login(intruder, job));
    expect(error.status).toBe(403);
    expect(error.message).toBe(`address ${intruder.address} does not run job ${job}: another node runs it`);
  });

  it('refuses a queued job that no node has claimed yet', async () => {
    const project = await ownerWith({ API_KEY: 'v' });
    const job = await network.queuedJob({ project: project.address, definition: definition(['API_KEY']) });
    const error = await refusal(server.client.login(generateKeypair(), job));
    expect(error.status).toBe(403);
    expect(error.message).toMatch(/no node runs it yet/);
  });

  it('grants `global.KEY` as the project\'s unprefixed global secret and other keys exactly as listed', async () => {
    // As the Nosana Platform stores them: repository secrets under `<repository id>_KEY`, global ones unprefixed.
    const project = await ownerWith({ SHARED_TOKEN: 'global-value', repo42_DEPLOY_KEY: 'repo-value', DEPLOY_KEY: 'other-value' });
    const node = generateKeypair();
    const job = await network.runningJob({
      project: project.address, node: node.address, definition: definition(['global.SHARED_TOKEN', 'repo42_DEPLOY_KEY']),
    });
    const { token } = await server.client.login(node, job);
    expect((await nodeReads(token)).body).toEqual({ SHARED_TOKEN: 'global-value', repo42_DEPLOY_KEY: 'repo-value' });
  });

  it('also grants the simple top-level `secrets: [KEY]` form of the job JSON', async () => {
    const project = await ownerWith({ PIPELINE_SSH_KEY: 'ssh-value' });
    const node = generateKeypair();
    const job = await network.runningJob({
      project: project.address, node: node.address,
      definition: { type: 'Github', url: 'https://github.com/nosana-ci/secrets.git', secrets: ['PIPELINE_SSH_KEY'], pipeline: '' },
    });
    const { token } = await server.client.login(node, job);
    expect((await nodeReads(token)).body).toEqual({ PIPELINE_SSH_KEY: 'ssh-value' });
  });

  it('refuses a job whose definition lists no secrets', async () => {
    const project = await ownerWith({ API_KEY: 'v' });
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: { type: 'Github', state: {} } });
    const error = await refusal(server.client.login(node, job));
    expect(error.status).toBe(403);
    expect(error.message).toBe(`job ${job} grants no secrets: its job definition lists none in state["nosana/secrets"] or secrets`);
  });

  it('answers 422 naming the problem when the job definition is not JSON, has a bad list, or names an invalid key', async () => {
    const project = await ownerWith({ API_KEY: 'v' });
    const node = generateKeypair();
    const cases: [unknown, RegExp][] = [
      ['{"state": {"nosana/secrets": [', /is not JSON/],
      [{ state: { 'nosana/secrets': 'API_KEY' } }, /state\["nosana\/secrets"\] must be an array of secret key names/],
      [{ state: { 'nosana/secrets': ['../escape'] } }, /lists the secret "..\/escape", whose key may contain only/],
      [['API_KEY'], /is not a JSON object/],
    ];
    for (const [document, message] of cases) {
      const job = await network.runningJob({ project: project.address, node: node.address, definition: document });
      const error = await refusal(server.client.login(node, job));
      expect(error.status).toBe(422);
      expect(error.type).toBe('InvalidJobDocumentError');
      expect(error.message).toMatch(message);
    }
  });

  it('ends the node\'s access when the job finishes, even with a token it already holds', async () => {
    const project = await ownerWith({ API_KEY: 'v' });
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: definition(['API_KEY']) });
    const { token } = await server.client.login(node, job);
    expect((await nodeReads(token)).status).toBe(200);

    await network.finish(job, { project: project.address, node: node.address, definition: definition(['API_KEY']) });
    const after = await nodeReads(token);
    expect(after.status).toBe(403);
    expect(after.body.error).toMatch(/has finished: only its project .* may read its results/);
    expect((await refusal(server.client.login(node, job))).status).toBe(403);
  });
});

describe('jobs the server cannot trust or find', () => {
  it('leaves a job name that is not a Solana address to the other sources, without asking the network', async () => {
    const before = network.rpc.calls.length;
    const error = await refusal(server.client.login(generateKeypair(), 'build-42'));
    expect(error.status).toBe(403);
    expect(error.message).toMatch(/has no grant for job build-42$/);
    expect(network.rpc.calls.length).toBe(before);
  });

  it('answers 404 for a job address that has no account', async () => {
    const job = generateKeypair().address;
    const error = await refusal(server.client.login(generateKeypair(), job));
    expect(error.status).toBe(404);
    expect(error.message).toBe(`job ${job} does not exist on the Nosana mainnet network`);
  });

  it('refuses an account that carries the JobAccount bytes but is owned by another program', async () => {
    const project = await ownerWith({ API_KEY: 'v' });
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: definition(['API_KEY']) });
    // The same bytes under a program anyone can deploy: upstream, which checks only the discriminator, accepts it.
    const forger = generateKeypair().address;
    network.rpc.put(job, { owner: forger, data: network.rpc.accounts.get(job)!.data });

    const error = await refusal(server.client.login(node, job));
    expect(error.status).toBe(403);
    expect(error.message).toBe(`account ${job} is owned by program ${forger}, not the Nosana jobs program ${MAINNET_JOBS_PROGRAM}: it is not a Nosana job and is not trusted`);
  });

  it('refuses an account of the jobs program that is not a job account', async () => {
    const node = generateKeypair();
    const notAJob = generateKeypair().address;
    const data = await jobAccountData({ ipfsJob: new Uint8Array(32), project: node.address, state: 1 });
    data.fill(7, 0, 8); // another discriminator
    network.rpc.put(notAJob, { owner: MAINNET_JOBS_PROGRAM, data });
    const error = await refusal(server.client.login(node, notAJob));
    expect(error.status).toBe(403);
    expect(error.message).toBe(`account ${notAJob} belongs to the Nosana jobs program but is not a Nosana job`);
  });
});

describe('results of a finished Nosana job', () => {
  it('let the project log in with the job and read the result secret its node stored, and nothing else of the node', async () => {
    const project = await ownerWith({});
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: definition([]) });

    // The node stores `<job>/result` under its own address, as the Nosana node does when it finishes a job ...
    const { token: nodeToken } = await server.client.login(node);
    await server.client.putSecret(nodeToken, `${job}/result`, '{"exit":0,"logs":"secret-result-value"}');
    await server.client.putSecret(nodeToken, 'node-private-key', 'node-private-value');
    // ... and pins a result that lists it.
    await network.finish(job, {
      project: project.address, node: node.address, definition: definition([]),
      result: {
        'finished-at': 1_672_874_282,
        state: { 'nosana/secrets': [`${job}/result`] },
        results: ['nos/secret', server.url, `${job}/result`],
      },
    });

    const { token } = await server.client.login(project, job);
    expect(await nodeReads(token)).toEqual({ status: 200, body: { [`${job}/result`]: '{"exit":0,"logs":"secret-result-value"}' } });
    expect((await nodeReads(token, '/secrets/node-private-key')).status).toBe(403);
    expect(server.logs.join('\n')).not.toMatch(/secret-result-value|node-private-value/);
  });

  it('are refused to anyone but the job\'s project', async () => {
    const project = await ownerWith({});
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: definition([]) });
    await network.finish(job, {
      project: project.address, node: node.address, definition: definition([]),
      result: { state: { 'nosana/secrets': [`${job}/result`] } },
    });
    const stranger = generateKeypair();
    const error = await refusal(server.client.login(stranger, job));
    expect(error.status).toBe(403);
    expect(error.message).toBe(`job ${job} has finished: only its project ${project.address} may read its results, and a node's access ended with the job`);
  });

  it('answer 404 when the job finished without a result', async () => {
    const project = await ownerWith({});
    const node = generateKeypair();
    const job = await network.runningJob({ project: project.address, node: node.address, definition: definition([]) });
    await network.finish(job, { project: project.address, node: node.address, definition: definition([]) });
    const error = await refusal(server.client.login(project, job));
    expect(error.status).toBe(404);
    expect(error.message).toBe(`job ${job} has finished without a result on IPFS`);
  });
});
