// The injector's everyday job: a pod of a job mounts its SecretProviderClass and gets exactly that job's files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypairFileContent, generateKeypair } from '../../common/login.js';
import { driverRequest, filesOf, newPod, secretValue, startWorld, type InjectorWorld } from './world.js';

let world: InjectorWorld;
const values = { apiKey: secretValue('api'), sshKey: secretValue('ssh'), other: secretValue('other') };

beforeAll(async () => {
  world = await startWorld('mount');
  await world.put('openai/api-key', values.apiKey);
  await world.put('ssh-key', values.sshKey);
  await world.put('other-job-key', values.other);
  await world.grant('job-a', ['openai/api-key', 'ssh-key']);
  await world.grant('job-b', ['other-job-key']);
});

afterAll(async () => {
  await world?.close();
});

const objectsAB = '- key: openai/api-key\n  fileName: openai-key\n  mode: "0400"\n- key: ssh-key\n';

describe('mounting a job\'s secrets', () => {
  it('returns the requested keys as files with modes and one object version per file', async () => {
    const classParameters = { owner: world.owner.address, job: 'job-a', objects: objectsAB };
    const response = await world.mountNewClass('job-a-files', classParameters);

    expect(response.error?.code ?? '').toBe('');
    expect(filesOf(response)).toEqual({ 'openai-key': values.apiKey, 'ssh-key': values.sshKey });
    expect(response.files.map((f) => [f.path, f.mode])).toEqual([['openai-key', 0o400], ['ssh-key', 420]]);
    expect(response.object_version.map((v) => v.id)).toEqual(['openai/api-key', 'ssh-key']);
    for (const version of response.object_version) expect(version.version).toMatch(/^1-[0-9a-f]{12}$/);
  });

  it('changes an object version when its value changes and keeps the others', async () => {
    const classParameters = { owner: world.owner.address, job: 'job-a', objects: objectsAB };
    await world.createClass('job-a-rotation', classParameters);
    const pod = newPod(world.namespace);
    const first = await world.client.mount(driverRequest({ pod, secretProviderClass: 'job-a-rotation', classParameters }));

    const rotated = secretValue('api-rotated');
    await world.put('openai/api-key', rotated);
    const second = await world.client.mount(driverRequest({
      pod, secretProviderClass: 'job-a-rotation', classParameters, currentObjectVersions: first.object_version,
    }));

    expect(filesOf(second)['openai-key']).toBe(rotated);
    expect(second.object_version[0]!.version).not.toBe(first.object_version[0]!.version);
    expect(second.object_version[1]!.version).toBe(first.object_version[1]!.version);
    values.apiKey = rotated;
  });

  it('gives a key deleted and stored again a new object version, although the server restarts its count at 1', async () => {
    await world.put('recreated', 'first');
    await world.grant('job-recreate', ['recreated']);
    const classParameters = { owner: world.owner.address, job: 'job-recreate', objects: '- key: recreated' };
    await world.createClass('job-recreate', classParameters);
    const request = () => driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'job-recreate', classParameters });
    const before = await world.client.mount(request());
    await world.server.client.deleteSecret(world.owner.token, 'recreated');
    await new Promise((resolve) => setTimeout(resolve, 5)); // creation times must differ by at least 1 ms
    await world.put('recreated', 'second');
    const after = await world.client.mount(request());

    expect(filesOf(after)).toEqual({ recreated: 'second' });
    expect(after.object_version[0]!.version.split('-')[0]).toBe('1');
    expect(after.object_version[0]!.version).not.toBe(before.object_version[0]!.version);
  });

  it('gives two pods of two jobs only their own job\'s secrets', async () => {
    const parametersA = { owner: world.owner.address, job: 'job-a', objects: '- key: openai/api-key' };
    const parametersB = { owner: world.owner.address, job: 'job-b', objects: '- key: other-job-key' };
    await world.createClass('class-a', parametersA);
    await world.createClass('class-b', parametersB);
    const [a, b] = await Promise.all([
      world.client.mount(driverRequest({ pod: newPod(world.namespace, 'pod-a'), secretProviderClass: 'class-a', classParameters: parametersA })),
      world.client.mount(driverRequest({ pod: newPod(world.namespace, 'pod-b'), secretProviderClass: 'class-b', classParameters: parametersB })),
    ]);
    expect(filesOf(a)).toEqual({ 'openai/api-key': values.apiKey });
    expect(filesOf(b)).toEqual({ 'other-job-key': values.other });

    // And job B's class cannot reach job A's key: its token is limited to job B's grant.
    const crossParameters = { owner: world.owner.address, job: 'job-b', objects: '- key: openai/api-key' };
    const cross = await world.mountNewClass('class-b-cross', crossParameters);
    expect(cross.error?.code).toBe('KeyNotGranted');
    expect(cross.files).toEqual([]);
    expect(cross.object_version).toEqual([]);
  });

  it('refuses a key not granted to the job with KeyNotGranted and returns no file at all', async () => {
    const classParameters = { owner: world.owner.address, job: 'job-a', objects: '- key: ssh-key\n- key: other-job-key' };
    const response = await world.mountNewClass('job-a-greedy', classParameters);
    expect(response.error?.code).toBe('KeyNotGranted');
    expect(response.files).toEqual([]);
    const line = world.injectorLogs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.code === 'KeyNotGranted' && l.job === 'job-a');
    expect(line).toMatchObject({ owner: world.owner.address, job: 'job-a', key: 'other-job-key', msg: 'mount refused' });
    expect(String(line?.pod)).toMatch(new RegExp(`^${world.namespace}/`));
  });

  it('answers KeyNotFound for a granted key that does not exist', async () => {
    await world.grant('job-missing', ['not-stored-yet']);
    const classParameters = { owner: world.owner.address, job: 'job-missing', objects: '- key: not-stored-yet' };
    const response = await world.mountNewClass('job-missing', classParameters);
    expect(response.error?.code).toBe('KeyNotFound');
    expect(response.files).toEqual([]);
  });

  it('answers JobNotGranted when the node is not a reader of the job', async () => {
    const classParameters = { owner: world.owner.address, job: 'job-nobody-granted', objects: '- key: ssh-key' };
    const response = await world.mountNewClass('job-nobody', classParameters);
    expect(response.error?.code).toBe('JobNotGranted');
  });

  it('signs in with the node key from the nodePublishSecretRef when the class names it', async () => {
    const jobNode = generateKeypair();
    await world.server.client.putGrant(world.owner.token, 'job-own-key', ['ssh-key'], [jobNode.address]);
    const classParameters = { owner: world.owner.address, job: 'job-own-key', objects: '- key: ssh-key', nodeKeySecret: 'keypair.json' };
    await world.createClass('job-own-key', classParameters);
    const pod = newPod(world.namespace);
    const ok = await world.client.mount(driverRequest({
      pod, secretProviderClass: 'job-own-key', classParameters, nodePublishSecrets: { 'keypair.json': keypairFileContent(jobNode) },
    }));
    expect(filesOf(ok)).toEqual({ 'ssh-key': values.sshKey });

    const missing = await world.client.mount(driverRequest({ pod, secretProviderClass: 'job-own-key', classParameters, nodePublishSecrets: {} }));
    expect(missing.error?.code).toBe('NodeKeyInvalid');
    const garbage = await world.client.mount(driverRequest({ pod, secretProviderClass: 'job-own-key', classParameters, nodePublishSecrets: { 'keypair.json': '[1,2,3]' } }));
    expect(garbage.error?.code).toBe('NodeKeyInvalid');
  });

  it('signs in once per node key and serves later mounts of the job from the cached job token', async () => {
    const classParameters = { owner: world.owner.address, job: 'job-b', objects: '- key: other-job-key' };
    await world.createClass('job-b-cache', classParameters);
    const loginsBefore = world.server.logs.filter((l) => l.includes('"event":"login"') && !l.includes('token_exchange') && l.includes(world.node.address)).length;
    const hitsBefore = await counter('nosana_secrets_injector_token_cache_total{result="hit",component="injector"}');
    for (let i = 0; i < 5; i++) {
      const response = await world.client.mount(driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'job-b-cache', classParameters }));
      expect(response.error?.code ?? '').toBe('');
    }
    const loginsAfter = world.server.logs.filter((l) => l.includes('"event":"login"') && !l.includes('token_exchange') && l.includes(world.node.address)).length;
    expect(loginsAfter - loginsBefore).toBe(0);
    expect(await counter('nosana_secrets_injector_token_cache_total{result="hit",component="injector"}') - hitsBefore).toBe(5);
  });

  it('never writes a secret value into the injector\'s or the server\'s logs', () => {
    const everything = [...world.injectorLogs, ...world.server.logs].join('\n');
    expect(world.injectorLogs.length).toBeGreaterThan(5);
    for (const value of [...Object.values(values), 'first', 'second']) {
      if (value.length > 8) expect(everything).not.toContain(value);
    }
    expect(everything).not.toContain(keypairFileContent(world.node));
  });
});

async function counter(series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${world.injector.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}
