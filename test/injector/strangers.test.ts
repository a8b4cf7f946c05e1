// Job ids and node addresses are public on Nosana, and any key may grant any job id to any reader. A mount names the
// job's owner (the class's `owner` parameter), so a stranger's grant for the same job id can neither make the mount
// fail nor put the stranger's value in the pod.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newAccount, type Account } from '../helpers/server.js';
import { driverRequest, filesOf, newPod, secretValue, startWorld, type InjectorWorld } from './world.js';

let world: InjectorWorld;
let stranger: Account;
const ownerValue = secretValue('owner');
const strangerValue = secretValue('stranger');

beforeAll(async () => {
  world = await startWorld('strangers');
  stranger = await newAccount(world.server);
  await world.put('api-key', ownerValue);
  await world.server.client.putSecret(stranger.token, 'api-key', strangerValue);
});

afterAll(async () => {
  await world?.close();
});

/** The stranger grants its own `api-key` under job id `job` to the world's node. */
async function strangerGrants(job: string): Promise<void> {
  await world.server.client.putGrant(stranger.token, job, ['api-key'], [world.node.address]);
}

describe('a stranger\'s grant for the same job id', () => {
  it('does not make the mount of the owner\'s class fail', async () => {
    await world.grant('job-shared', ['api-key']);
    await strangerGrants('job-shared');
    const response = await world.mountNewClass('shared', { owner: world.owner.address, job: 'job-shared', objects: '- key: api-key' });
    expect(response.error?.code ?? '').toBe('');
    expect(filesOf(response)).toEqual({ 'api-key': ownerValue });
  });

  it('is never mounted in place of the owner\'s: with only the stranger granting, the mount is JobNotGranted', async () => {
    await strangerGrants('job-stranger-only');
    const response = await world.mountNewClass('stranger-only', { owner: world.owner.address, job: 'job-stranger-only', objects: '- key: api-key' });
    expect(response.error?.code).toBe('JobNotGranted');
    expect(response.files).toEqual([]);
    const line = world.injectorLogs.find((l) => l.includes('job-stranger-only') && l.includes('mount refused'));
    expect(line).toContain(`from owner ${world.owner.address}`);
    expect(world.injectorLogs.join('\n')).not.toContain(strangerValue);
  });

  it('cannot be used by a class that names no owner: the mount is refused with OwnerMissing', async () => {
    await world.grant('job-no-owner', ['api-key']);
    const response = await world.mountNewClass('no-owner', { job: 'job-no-owner', objects: '- key: api-key' });
    expect(response.error?.code).toBe('OwnerMissing');
    expect(response.files).toEqual([]);
    const line = world.injectorLogs.find((l) => l.includes('OwnerMissing'));
    expect(line).toContain('parameter \\"owner\\" is missing');
  });

  it('refuses an owner that is not an address with BadParameters', async () => {
    const response = await world.mountNewClass('bad-owner', { owner: 'not-an-address', job: 'job-shared', objects: '- key: api-key' });
    expect(response.error?.code).toBe('BadParameters');
  });
});

describe('a revoked grant', () => {
  it('answers JobNotGranted whether or not the injector holds a job token for the job', async () => {
    await world.grant('job-revoked', ['api-key']);
    const classParameters = { owner: world.owner.address, job: 'job-revoked', objects: '- key: api-key' };
    await world.createClass('revoked', classParameters);
    const mount = () => world.client.mount(driverRequest({ pod: newPod(world.namespace), secretProviderClass: 'revoked', classParameters }));
    expect(filesOf(await mount())).toEqual({ 'api-key': ownerValue }); // the job token is now cached
    await world.server.client.deleteGrant(world.owner.token, 'job-revoked');

    const withCachedToken = await mount();
    expect(withCachedToken.error?.code).toBe('JobNotGranted');
    // and again, now that no token is held: the same cause, the same code
    const withoutToken = await mount();
    expect(withoutToken.error?.code).toBe('JobNotGranted');
  });
});
