// HTTPS: a real server with a certificate from a test CA, clients that trust that CA only, a certificate rotated on
// disk while the server runs, and /metrics on a port of its own.
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SecretsClient, ServerUnreachableError } from '../../common/client.js';
import { generateKeypair } from '../../common/login.js';
import { startServer } from '../../server/main.js';
import { call, startTestServer, type TestServer } from '../helpers/server.js';
import { issueServerCert, makeCa, type PemFiles } from '../helpers/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'nss-tls-'));
let ca: PemFiles;
let otherCa: PemFiles;
let served: PemFiles;
let server: TestServer;

/** The subject CN of the certificate a new connection to `url` is given (no verification: we only look). */
function servedCertificateName(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const name = socket.getPeerCertificate().subject.CN;
      socket.end();
      resolve(Array.isArray(name) ? name.join(',') : name ?? '');
    });
    socket.on('error', reject);
  });
}

/** The status of a GET over HTTPS, trusting `caFile`. */
function httpsStatus(url: string, caFile: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { ca: readFileSync(caFile) }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject);
  });
}

beforeAll(async () => {
  ca = makeCa(dir, 'test-ca');
  otherCa = makeCa(dir, 'other-ca');
  const first = issueServerCert(ca, dir, 'first-server');
  // The server reads the files at these paths, as it would read a mounted Secret; rotations overwrite them.
  served = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
  copyFileSync(first.certFile, served.certFile);
  copyFileSync(first.keyFile, served.keyFile);
  server = await startTestServer({ TLS_CERT_FILE: served.certFile, TLS_KEY_FILE: served.keyFile, TLS_RELOAD_SECONDS: '1', METRICS_PORT: '0' });
});
afterAll(async () => { await server?.close(); });

describe('HTTPS', () => {
  it('serves the API over HTTPS to a client that trusts the server\'s CA file', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const client = new SecretsClient({ endpoint: server.url, caFile: ca.certFile });
    const { token } = await client.login(generateKeypair());
    await client.putSecret(token, 'OVER_TLS', 'tls-secret-value');
    expect((await client.getSecret(token, 'OVER_TLS')).value).toBe('tls-secret-value');
  });

  it('refuses a server whose certificate another CA signed, and a plain-HTTP client gets no token', async () => {
    const distrusting = new SecretsClient({ endpoint: server.url, caFile: otherCa.certFile });
    const refused = distrusting.login(generateKeypair());
    await expect(refused).rejects.toBeInstanceOf(ServerUnreachableError);
    await expect(refused).rejects.toThrow(/certificate/);
    // Without a CA file the system's CAs are trusted, and they did not sign the test CA either.
    await expect(new SecretsClient({ endpoint: server.url }).login(generateKeypair())).rejects.toThrow(/certificate/);
    const plain = new SecretsClient({ endpoint: server.url.replace('https:', 'http:'), timeoutMs: 2000 });
    await expect(plain.login(generateKeypair())).rejects.toBeInstanceOf(Error);
  });

  it('says which file is missing when the client\'s CA file cannot be read', () => {
    expect(() => new SecretsClient({ endpoint: server.url, caFile: join(dir, 'missing-ca.crt') }))
      .toThrow(/missing-ca\.crt \(NOSANA_SECRETS_CA_FILE\) cannot be read/);
  });

  it('serves a certificate rotated on disk to new connections without a restart, and keeps the old one when the new pair is broken', async () => {
    expect(await servedCertificateName(server.url)).toBe('first-server');
    // A pair that does not match (a key written before its certificate) is not taken.
    const stray = issueServerCert(ca, dir, 'stray-server');
    copyFileSync(stray.keyFile, served.keyFile);
    await vi.waitFor(() => expect(server.logs.join('\n')).toContain('do not load: keeping the certificate in use'), { timeout: 10_000, interval: 100 });
    expect(await servedCertificateName(server.url)).toBe('first-server');

    // The rotation: a new certificate from another CA, as after a CA change.
    const second = issueServerCert(otherCa, dir, 'second-server');
    copyFileSync(second.certFile, served.certFile);
    copyFileSync(second.keyFile, served.keyFile);
    await vi.waitFor(async () => expect(await servedCertificateName(server.url)).toBe('second-server'), { timeout: 10_000, interval: 100 });
    const client = new SecretsClient({ endpoint: server.url, caFile: otherCa.certFile });
    await expect(client.login(generateKeypair())).resolves.toHaveProperty('token');
  });

  it('serves /metrics on METRICS_PORT only, in plain HTTP, and not on the API port', async () => {
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const metrics = await call(server.metricsUrl!, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('nosana_secrets_logins_total');
    expect((await call(server.metricsUrl!, 'GET', '/readyz')).status).toBe(200);
    expect(await httpsStatus(`${server.url}/metrics`, otherCa.certFile), 'the API port after the rotation test').toBe(404);
  });

  it('stops start-up with the fix when only one of TLS_CERT_FILE and TLS_KEY_FILE is set, or they do not match', async () => {
    const env = { PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: `sqlite://${join(dir, 'other.sqlite')}`, SECRETS_STATE_DIR: join(dir, 'state') };
    await expect(startServer({ ...env, TLS_CERT_FILE: served.certFile })).rejects.toThrow(/both TLS_CERT_FILE and TLS_KEY_FILE/);
    await expect(startServer({ ...env, TLS_CERT_FILE: ca.certFile, TLS_KEY_FILE: otherCa.keyFile })).rejects.toThrow(/not a PEM certificate and its key/);
  });
});
