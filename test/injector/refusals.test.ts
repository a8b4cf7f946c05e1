// Mounts the injector must refuse, each with its own error code: a pod overriding the class's parameters, bad
// parameters, an endpoint outside the allow-list, an unreachable server, a class that is not there.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeypair } from '../../common/login.js';
import { driverRequest, filesOf, newPod, secretValue, startWorld, type InjectorWorld } from './world.js';

let world: InjectorWorld;
let closedEndpoint: string;
let silentEndpoint: string;
let silentServer: Server;
const silentConnections: Socket[] = [];
const victimValue = secretValue('victim');
const ownValue = secretValue('own');

/** A loopback URL on which nothing listens: a port bound and released again. */
async function closedPortUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  closedEndpoint = await closedPortUrl();
  // A server that accepts connections and never answers: only the client's deadline can end a request to it.
  silentServer = createServer((socket) => { silentConnections.push(socket); });
  await new Promise<void>((resolve) => silentServer.listen(0, '127.0.0.1', resolve));
  silentEndpoint = `http://127.0.0.1:${(silentServer.address() as { port: number }).port}`;
  // The injector's allow-list: the real server first (the default), then a server that is down, then a silent one.
  world = await startWorld('refuse', {}, [closedEndpoint, silentEndpoint]);
  await world.put('victim-job-key', victimValue);
  await world.put('own-key', ownValue);
  await world.grant('victim-job', ['victim-job-key']);
  await world.grant('own-job', ['own-key']);
});

afterAll(async () => {
  await world?.close();
  for (const socket of silentConnections) socket.destroy();
  await new Promise((resolve) => silentServer?.close(resolve));
});

describe('a pod cannot change what its SecretProviderClass chose', () => {
  it('refuses a volume attribute that overrides the job with ParameterOverride and returns nothing', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: victim-job-key' };
    await world.createClass('own-job-override', classParameters);
    const response = await world.client.mount(driverRequest({
      pod: newPod(world.namespace, 'thief'), secretProviderClass: 'own-job-override', classParameters, podAttributes: { owner: world.owner.address, job: 'victim-job' },
    }));
    expect(response.error?.code).toBe('ParameterOverride');
    expect(response.files).toEqual([]);
    const line = world.injectorLogs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.code === 'ParameterOverride');
    expect(line).toMatchObject({ pod: `${world.namespace}/thief`, msg: 'mount refused' });
    expect(String(line?.err)).toContain('"job"');
  });

  it('refuses a volume attribute that overrides the endpoint, even to another allowed server', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key' };
    await world.createClass('own-job-endpoint', classParameters);
    const response = await world.client.mount(driverRequest({
      pod: newPod(world.namespace), secretProviderClass: 'own-job-endpoint', classParameters, podAttributes: { endpoint: closedEndpoint },
    }));
    expect(response.error?.code).toBe('ParameterOverride');
  });

  it('refuses a volume attribute the class does not set at all (objects, nodeKeySecret)', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key' };
    await world.createClass('own-job-extra', classParameters);
    for (const podAttributes of [{ objects: '- key: victim-job-key' }, { nodeKeySecret: 'key' }] as Record<string, string>[]) {
      const response = await world.client.mount(driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'own-job-extra', classParameters, podAttributes }));
      expect(response.error?.code).toBe('ParameterOverride');
    }
  });

  it('accepts a pod whose attributes repeat the class\'s own values, and sees an edited class at once', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key' };
    await world.createClass('own-job-same', classParameters);
    const same = await world.client.mount(driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'own-job-same', classParameters, podAttributes: { owner: world.owner.address, job: 'own-job' } }));
    expect(filesOf(same)).toEqual({ 'own-key': ownValue });

    // The class now names another file; the injector's cached copy must not make the new attributes look forged.
    const edited = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key\n  fileName: renamed' };
    await world.replaceClassParameters('own-job-same', edited);
    const after = await world.client.mount(driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'own-job-same', classParameters: edited }));
    expect(filesOf(after)).toEqual({ renamed: ownValue });
  });

  it('answers SecretProviderClassUnavailable when the named class does not exist in the pod\'s namespace', async () => {
    const response = await world.client.mount(driverRequest({
      pod: newPod(world.namespace), secretProviderClass: 'no-such-class', classParameters: { owner: world.owner.address, job: 'own-job', objects: '- key: own-key' },
    }));
    expect(response.error?.code).toBe('SecretProviderClassUnavailable');
  });
});

describe('bad parameters and unreachable servers', () => {
  // Built before the world starts: any valid address will do, each case fails on another parameter first.
  const anyOwner = generateKeypair().address;
  const cases: [string, Record<string, string>][] = [
    ['a key name with a ".." segment', { owner: anyOwner, job: 'own-job', objects: '- key: ../own-key' }],
    ['a key name with a space', { owner: anyOwner, job: 'own-job', objects: '- key: "own key"' }],
    ['a file name with ".."', { owner: anyOwner, job: 'own-job', objects: '- key: own-key\n  fileName: ../../etc/passwd' }],
    ['an absolute file name', { owner: anyOwner, job: 'own-job', objects: '- key: own-key\n  fileName: /etc/passwd' }],
    ['a mode that is not an octal string', { owner: anyOwner, job: 'own-job', objects: '- key: own-key\n  mode: 0400' }],
    ['objects that are not a list', { owner: anyOwner, job: 'own-job', objects: 'key: own-key' }],
    ['no objects', { owner: anyOwner, job: 'own-job' }],
    ['no job', { objects: '- key: own-key' }],
  ];
  for (const [what, classParameters] of cases) {
    it(`refuses ${what} with BadParameters`, async () => {
      const name = `bad-${cases.findIndex(([w]) => w === what)}`;
      const response = await world.mountNewClass(name, classParameters);
      expect(response.error?.code).toBe('BadParameters');
      expect(response.files).toEqual([]);
    });
  }

  it('refuses an endpoint that is not in the injector\'s allow-list with EndpointNotAllowed, before any login', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key', endpoint: 'http://attacker.example:4124' };
    const response = await world.mountNewClass('foreign-endpoint', classParameters);
    expect(response.error?.code).toBe('EndpointNotAllowed');
  });

  it('answers ServerUnreachable when the class\'s server does not answer', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key', endpoint: closedEndpoint };
    const response = await world.mountNewClass('server-down', classParameters);
    expect(response.error?.code).toBe('ServerUnreachable');
    const metrics = await (await fetch(`http://127.0.0.1:${world.injector.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/nosana_secrets_injector_server_calls_total\{call="login",outcome="unreachable",component="injector"\} 1/);
    expect(metrics).toMatch(/nosana_secrets_injector_mounts_total\{outcome="ServerUnreachable",component="injector"\} 1/);
  });

  it('answers ServerUnreachable once the server timeout passes when the server accepts but never answers', async () => {
    const classParameters = { owner: world.owner.address, job: 'own-job', objects: '- key: own-key', endpoint: silentEndpoint };
    await world.createClass('server-silent', classParameters);
    const started = Date.now();
    const response = await world.client.mount(driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'server-silent', classParameters }));
    const waited = Date.now() - started;
    expect(response.error?.code).toBe('ServerUnreachable');
    expect(response.files).toEqual([]);
    // The test world sets NOSANA_INJECTOR_SERVER_TIMEOUT_MS to 2 s.
    expect(waited).toBeGreaterThanOrEqual(1_900);
    expect(waited).toBeLessThan(5_000);
    const line = world.injectorLogs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.code === 'ServerUnreachable' && String(l.err).includes(silentEndpoint));
    expect(line?.err).toContain('no answer within 2000 ms');
  });

  it('never writes a secret value into the logs, whatever was refused', () => {
    const everything = [...world.injectorLogs, ...world.server.logs].join('\n');
    expect(everything).not.toContain(victimValue);
    expect(everything).not.toContain(ownValue);
  });
});
