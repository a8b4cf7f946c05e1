// The CLI as a user runs it: the built `nosana-secrets` (npm test builds it first), in its own processes.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeypairFile } from '../../common/login.js';
import { startServerProcess } from '../helpers/server.js';

const CLI = resolve('dist/cli/main.js');

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], options: { cwd: string; env?: Record<string, string>; input?: string }): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

let dir: string;
let server: Awaited<ReturnType<typeof startServerProcess>>;
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nss-cli-'));
  server = await startServerProcess(dir, { PORT: '0', JWT_SECRET: '', ENCRYPTION_KEYS: '', STORAGE_CONNECTION: '' });
  env = { NOSANA_SECRETS_ENDPOINT: server.url, NOSANA_SECRETS_CONFIG_DIR: join(dir, 'config'), NOSANA_SECRETS_KEYPAIR: join(dir, 'owner.json') };
});
afterAll(async () => {
  server.child.kill('SIGTERM');
  await new Promise((done) => server.child.once('exit', done));
});

describe('nosana-secrets server', () => {
  it('starts on the embedded SQLite default with generated secrets, warning that they were generated', async () => {
    expect(await (await fetch(server.url)).text()).toContain('running');
    const logs = server.stdout();
    expect(logs).toContain('JWT_SECRET is not set');
    expect(logs).toContain('ENCRYPTION_KEYS is not set');
    expect(statSync(join(dir, '.nosana-secrets', 'jwt-secret')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'db.sqlite')).isFile()).toBe(true);
  });

  it('a bad STORAGE_CONNECTION stops start-up with a message that names the scheme and hides the password', async () => {
    const result = await run(['server'], { cwd: dir, env: { PORT: '0', STORAGE_CONNECTION: 'oracle://admin:hunter2@db:1521/x' } });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('"oracle"');
    expect(result.stderr).toContain('fix:');
    expect(result.stderr + result.stdout).not.toContain('hunter2');
  });

  it('a taken port is reported with the fix', async () => {
    const port = new URL(server.url).port;
    const result = await run(['server'], { cwd: mkdtempSync(join(tmpdir(), 'nss-cli-')), env: { PORT: port, HOST: '127.0.0.1' } });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`port ${port} is already in use`);
  });
});

describe('the owner\'s client commands', () => {
  it('keygen writes a Solana keypair file (64 numbers, mode 0600) and never overwrites one', async () => {
    const keygen = await run(['keygen'], { cwd: dir, env });
    expect(keygen.code).toBe(0);
    const keypair = parseKeypairFile(readFileSync(join(dir, 'owner.json'), 'utf8'));
    expect(JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8'))).toHaveLength(64);
    expect(keygen.stdout.trim()).toBe(keypair.address);
    expect(statSync(join(dir, 'owner.json')).mode & 0o777).toBe(0o600);
    const again = await run(['keygen'], { cwd: dir, env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
  });

  it('set from stdin, list without values, get, grant to a node, the node reads it, revoke, delete', async () => {
    const node = (await run(['keygen', '--out', join(dir, 'node.json')], { cwd: dir, env })).stdout.trim();
    expect((await run(['set', 'API_KEY', '-'], { cwd: dir, env, input: 'from-stdin-value\n' })).stdout).toContain('stored API_KEY (version 1)');
    expect((await run(['set', 'OTHER', 'inline'], { cwd: dir, env })).code).toBe(0);

    const list = await run(['list'], { cwd: dir, env });
    expect(list.stdout).toMatch(/^API_KEY\tversion 1\t/m);
    expect(list.stdout).not.toContain('from-stdin-value');
    expect((await run(['get', 'API_KEY'], { cwd: dir, env })).stdout).toBe('from-stdin-value');

    expect((await run(['grant', 'job-7', 'API_KEY', '--reader', node], { cwd: dir, env })).code).toBe(0);
    expect((await run(['grants'], { cwd: dir, env })).stdout).toContain(`job-7\tkeys API_KEY\treaders ${node}`);
    const asNode = await run(['get', 'API_KEY', '--job', 'job-7', '--keypair', join(dir, 'node.json')], { cwd: dir, env });
    expect(asNode.stdout).toBe('from-stdin-value');
    const notGranted = await run(['get', 'OTHER', '--job', 'job-7', '--keypair', join(dir, 'node.json')], { cwd: dir, env });
    expect(notGranted.code).toBe(1);
    expect(notGranted.stderr).toContain('not granted to job job-7');
    expect(notGranted.stderr).not.toContain('inline');

    expect((await run(['revoke', 'job-7'], { cwd: dir, env })).code).toBe(0);
    expect((await run(['delete', 'OTHER'], { cwd: dir, env })).code).toBe(0);
    const gone = await run(['get', 'OTHER'], { cwd: dir, env });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('fix: run `nosana-secrets list`');
  });

  it('errors say what went wrong and how to fix it, with a non-zero exit', async () => {
    const unreachable = await run(['list'], { cwd: dir, env: { ...env, NOSANA_SECRETS_ENDPOINT: 'http://127.0.0.1:9' } });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('cannot reach the secrets server at http://127.0.0.1:9');
    expect(unreachable.stderr).toContain('fix: start the server');

    const noKey = await run(['list', '--keypair', join(dir, 'missing.json')], { cwd: dir, env });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('nosana-secrets keygen');

    const badName = await run(['set', 'bad key', 'v'], { cwd: dir, env });
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('key "bad key" may contain only');

    const grantWithoutReader = await run(['grant', 'job-8', 'API_KEY'], { cwd: dir, env });
    expect(grantWithoutReader.code).toBe(2);
    expect(grantWithoutReader.stderr).toContain('--reader');

    const unknown = await run(['frobnicate'], { cwd: dir, env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('nosana-secrets help');
  });
});
