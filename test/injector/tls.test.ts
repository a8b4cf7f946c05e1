// The injector against an HTTPS server: it mounts when NOSANA_SECRETS_CA_FILE names the CA that signed the server's
// certificate, and fails the mount (ServerUnreachable, nothing read) when another CA did.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInjectorConfig } from '../../injector/config.js';
import { issueServerCert, makeCa, type PemFiles } from '../helpers/tls.js';
import { filesOf, secretValue, startWorld, type InjectorWorld } from './world.js';

const dir = mkdtempSync(join(tmpdir(), 'nsi-tls-'));
let ca: PemFiles;
let otherCa: PemFiles;
let trusting: InjectorWorld;
let distrusting: InjectorWorld;
const value = secretValue('tls');

beforeAll(async () => {
  ca = makeCa(dir, 'injector-ca');
  otherCa = makeCa(dir, 'injector-other-ca');
  const cert = issueServerCert(ca, dir, 'injector-server');
  const tls = { env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }, caFile: ca.certFile };
  trusting = await startWorld('tls', { caFile: ca.certFile }, [], tls);
  distrusting = await startWorld('tls-other', { caFile: otherCa.certFile }, [], tls);
  for (const world of [trusting, distrusting]) {
    await world.put('tls/key', value);
    await world.grant('job-tls', ['tls/key']);
  }
});

afterAll(async () => {
  await trusting?.close();
  await distrusting?.close();
});

describe('the injector over HTTPS', () => {
  it('mounts a job\'s secrets from an HTTPS server signed by the CA of NOSANA_SECRETS_CA_FILE', async () => {
    expect(trusting.server.url).toMatch(/^https:/);
    const response = await trusting.mountNewClass('tls-class', { job: 'job-tls', owner: trusting.owner.address, objects: '- key: tls/key' });
    expect(response.error?.code ?? '').toBe('');
    expect(filesOf(response)).toEqual({ 'tls/key': value });
  });

  it('fails the mount of a server whose certificate another CA signed, and reads nothing', async () => {
    const response = await distrusting.mountNewClass('tls-class', { job: 'job-tls', owner: distrusting.owner.address, objects: '- key: tls/key' });
    expect(response.error?.code).toBe('ServerUnreachable');
    expect(response.files).toEqual([]);
    expect(distrusting.injectorLogs.join('\n')).toMatch(/certificate/);
  });

  it('reads NOSANA_SECRETS_CA_FILE (or --ca-file) and stops start-up when the file cannot be read', () => {
    const base = { NOSANA_INJECTOR_ENDPOINTS: 'https://127.0.0.1:1' };
    expect(loadInjectorConfig({ ...base, NOSANA_SECRETS_CA_FILE: ca.certFile }).caFile).toBe(ca.certFile);
    expect(loadInjectorConfig(base, { 'ca-file': otherCa.certFile }).caFile).toBe(otherCa.certFile);
    expect(() => loadInjectorConfig({ ...base, NOSANA_SECRETS_CA_FILE: join(dir, 'missing.crt') })).toThrow(/NOSANA_SECRETS_CA_FILE="[^"]*missing\.crt" cannot be read/);
  });
});
