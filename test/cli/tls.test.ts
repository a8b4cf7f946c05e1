// The CLI against an HTTPS server: it trusts the server by the CA named with --ca-file or NOSANA_SECRETS_CA_FILE,
// and refuses a server that CA did not sign, with the fix.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type Run } from '../helpers/cli.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { issueServerCert, makeCa, type PemFiles } from '../helpers/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'nss-cli-tls-'));
let ca: PemFiles;
let otherCa: PemFiles;
let server: TestServer;

/** The CLI with the owner's keypair, its stdin the value `set -` stores. */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return runCli(args, { cwd: dir, env: { NOSANA_SECRETS_KEYPAIR: join(dir, 'owner.json'), ...env }, input: 'https-secret-value' });
}

beforeAll(async () => {
  ca = makeCa(dir, 'cli-ca');
  otherCa = makeCa(dir, 'cli-other-ca');
  const cert = issueServerCert(ca, dir, 'cli-server');
  server = await startTestServer({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile });
  expect((await cli(['keygen', '--out', join(dir, 'owner.json')], {})).code).toBe(0);
});
afterAll(async () => { await server?.close(); });

describe('the CLI over HTTPS', () => {
  it('stores and reads a secret when NOSANA_SECRETS_CA_FILE or --ca-file names the server\'s CA', async () => {
    const set = await cli(['set', 'TLS_KEY', '-', '--endpoint', server.url, '--ca-file', ca.certFile], {});
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    const get = await cli(['get', 'TLS_KEY', '--endpoint', server.url], { NOSANA_SECRETS_CA_FILE: ca.certFile });
    expect(get.stdout).toBe('https-secret-value');
  });

  it('refuses a server whose certificate another CA signed, and says to pass --ca-file', async () => {
    for (const env of [{ NOSANA_SECRETS_CA_FILE: otherCa.certFile }, {}] as Record<string, string>[]) {
      const refused = await cli(['list', '--endpoint', server.url], env);
      expect(refused.code, JSON.stringify(env)).toBe(1);
      expect(refused.stderr).toMatch(/certificate/);
      expect(refused.stderr).toContain('--ca-file');
    }
  });

  it('says which CA file cannot be read', async () => {
    const missing = await cli(['list', '--endpoint', server.url, '--ca-file', join(dir, 'nope.crt')], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.crt');
  });
});
