// The CLI as a user runs it: the built `nosana-secrets` (npm test builds it first), in its own processes.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeypair, parseKeypairFile } from '../../common/login.js';
import { Envelope, parseKeyring } from '../../server/encryption.js';
import { SqliteStorage } from '../../server/storage/sqlite.js';
import { CLI, runCli as run } from '../helpers/cli.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

let dir: string;
let server: ServerProcess;
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nss-cli-'));
  server = await startServerProcess(dir, { PORT: '0', JWT_SECRET: '', ENCRYPTION_KEYS: '', STORAGE_CONNECTION: '' });
  env = { NOSANA_SECRETS_ENDPOINT: server.url, NOSANA_SECRETS_CONFIG_DIR: join(dir, 'config'), NOSANA_SECRETS_KEYPAIR: join(dir, 'owner.json') };
});
afterAll(async () => { await server.stop(); });

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

  it('says where it listens and which URL to open', async () => {
    const port = new URL(server.url).port;
    expect(server.stderr()).toContain(`secret manager listening on 127.0.0.1:${port} (this address only): open http://127.0.0.1:${port}`);
  });

  it('--host and --port choose where it listens, over HOST and PORT', async () => {
    const other = await startServerProcess(mkdtempSync(join(tmpdir(), 'nss-cli-')), { PORT: '1' }, ['--host', '127.0.0.2', '--port', '0']);
    try {
      expect(other.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
      expect(other.stderr()).toContain(`listening on 127.0.0.2:${new URL(other.url).port} (this address only)`);
      expect(await (await fetch(other.url)).text()).toContain('running');
    } finally {
      other.child.kill('SIGTERM');
      await new Promise((done) => other.child.once('exit', done));
    }
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
    const owner = (await run(['address'], { cwd: dir, env })).stdout.trim();
    const asNode = await run(['get', 'API_KEY', '--job', 'job-7', '--owner', owner, '--keypair', join(dir, 'node.json')], { cwd: dir, env });
    expect(asNode.stdout).toBe('from-stdin-value');
    const notGranted = await run(['get', 'OTHER', '--job', 'job-7', '--owner', owner, '--keypair', join(dir, 'node.json')], { cwd: dir, env });
    expect(notGranted.code).toBe(1);
    expect(notGranted.stderr).toContain('not granted to job job-7');
    expect(notGranted.stderr).not.toContain('inline');

    expect((await run(['revoke', 'job-7'], { cwd: dir, env })).code).toBe(0);
    expect((await run(['delete', 'OTHER'], { cwd: dir, env })).code).toBe(0);
    const gone = await run(['get', 'OTHER'], { cwd: dir, env });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('fix: run `nosana-secrets list`');
  });

  it('a job read names its owner, so a stranger granting the same job id to the node is never read instead', async () => {
    const node = (await run(['keygen', '--out', join(dir, 'node-s.json')], { cwd: dir, env })).stdout.trim();
    const owner = (await run(['address'], { cwd: dir, env })).stdout.trim();
    const strangerEnv = { ...env, NOSANA_SECRETS_KEYPAIR: join(dir, 'stranger.json') };
    const stranger = (await run(['keygen', '--out', join(dir, 'stranger.json')], { cwd: dir, env })).stdout.trim();
    expect((await run(['set', 'SHARED', 'the-owners-value'], { cwd: dir, env })).code).toBe(0);
    expect((await run(['set', 'SHARED', 'the-strangers-value'], { cwd: dir, env: strangerEnv })).code).toBe(0);
    expect((await run(['grant', 'job-s', 'SHARED', '--reader', node], { cwd: dir, env: strangerEnv })).code).toBe(0);

    const noOwner = await run(['get', 'SHARED', '--job', 'job-s', '--keypair', join(dir, 'node-s.json')], { cwd: dir, env });
    expect(noOwner.code).toBe(2);
    expect(noOwner.stderr).toContain('--job job-s needs --owner');
    // Only the stranger granted job-s: naming the real owner is a refusal, never the stranger's value.
    const refused = await run(['get', 'SHARED', '--job', 'job-s', '--owner', owner, '--keypair', join(dir, 'node-s.json')], { cwd: dir, env });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).not.toContain('the-strangers-value');

    expect((await run(['grant', 'job-s', 'SHARED', '--reader', node], { cwd: dir, env })).code).toBe(0);
    // The refused login used up the node's signature of its second (one login per key per second and process).
    await new Promise((done) => setTimeout(done, 1100));
    const read = await run(['get', 'SHARED', '--job', 'job-s', '--owner', owner, '--keypair', join(dir, 'node-s.json')], { cwd: dir, env });
    expect(read.stdout, read.stderr).toBe('the-owners-value');
    expect(stranger).not.toBe(owner);
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

describe('help, hints and keys for a newcomer', () => {
  const commands = ['server', 'rotate-keys', 'operator', 'injector', 'keygen', 'address', 'login', 'set', 'list', 'get', 'delete', 'grant', 'revoke', 'grants'];

  it('every command prints its own usage for --help and -h, and exits 0', async () => {
    for (const command of commands) {
      for (const flag of command === 'grant' || command === 'injector' ? ['--help', '-h'] : ['--help']) {
        const result = await run([command, flag], { cwd: dir, env });
        expect(result.code, `${command} ${flag}: ${result.stderr}`).toBe(0);
        expect(result.stdout).toMatch(new RegExp(`^usage: nosana-secrets ${command}\\b`));
      }
    }
    expect((await run(['grant', 'job-1', '--help'], { cwd: dir, env })).stdout).toContain('--reader ADDRESS');
    expect((await run(['help', 'injector'], { cwd: dir, env })).stdout).toContain('--metrics-host HOST');
    expect((await run(['list', '--help'], { cwd: dir, env })).stdout).toContain('~/.config/nosana-secrets/tokens.json');
  });

  it('an unknown flag names the command\'s --help, for client and cluster commands alike', async () => {
    for (const command of ['grant', 'injector', 'operator']) {
      const result = await run([command, '--frobnicate'], { cwd: dir, env });
      expect(result.code, command).toBe(2);
      expect(result.stderr).toContain(`fix: run \`nosana-secrets ${command} --help\``);
    }
  });

  it('hints name commands the way they were run: through npx in a clone', async () => {
    const result = await run(['frobnicate'], { cwd: resolve('.'), env, command: ['npx', '--no-install', 'nosana-secrets'] });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('fix: run `npx nosana-secrets help`');
    const help = await run(['help'], { cwd: resolve('.'), env, command: ['npx', '--no-install', 'nosana-secrets'] });
    expect(help.stdout).toContain('Usage: npx nosana-secrets COMMAND');
  }, 120_000);

  it('keygen warns when it writes a key inside a git work tree, and not elsewhere', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'nss-repo-'));
    execFileSync('git', ['init', '-q', repo]);
    mkdirSync(join(repo, 'keys'));
    const inside = await run(['keygen', '--out', join(repo, 'keys', 'owner.json')], { cwd: repo, env });
    expect(inside.code).toBe(0);
    expect(inside.stderr).toContain(`warning: ${join(repo, 'keys', 'owner.json')} is inside the git work tree ${repo}`);
    const outside = await run(['keygen', '--out', join(mkdtempSync(join(tmpdir(), 'nss-keys-')), 'sub', 'owner.json')], { cwd: dir, env });
    expect(outside.code).toBe(0);
    expect(outside.stderr).not.toContain('warning');
  });

  it('this repository ignores keypair files written into it', () => {
    for (const name of ['owner.json', 'node.json', 'id.json', 'keys/alice.keypair.json']) {
      expect(() => execFileSync('git', ['check-ignore', '-q', '--no-index', name]), name).not.toThrow();
    }
    expect(() => execFileSync('git', ['check-ignore', '-q', '--no-index', 'package.json'])).toThrow();
  });

  it('address prints the address of an existing keypair file', async () => {
    const keys = mkdtempSync(join(tmpdir(), 'nss-keys-'));
    const written = (await run(['keygen', '--out', join(keys, 'node.json')], { cwd: dir, env })).stdout.trim();
    const shown = await run(['address', '--keypair', join(keys, 'node.json')], { cwd: dir, env });
    expect(shown.code).toBe(0);
    expect(shown.stdout.trim()).toBe(written);
  });

  it('empty lists say so on stderr, leaving stdout empty for scripts', async () => {
    const keys = mkdtempSync(join(tmpdir(), 'nss-keys-'));
    await run(['keygen', '--out', join(keys, 'fresh.json')], { cwd: dir, env });
    const fresh = { ...env, NOSANA_SECRETS_KEYPAIR: join(keys, 'fresh.json') };
    const grants = await run(['grants'], { cwd: dir, env: fresh });
    expect(grants).toMatchObject({ code: 0, stdout: '' });
    expect(grants.stderr).toContain('no grants yet: let a job read keys with `nosana-secrets grant JOB KEY... --reader ADDRESS`');
    const list = await run(['list'], { cwd: dir, env: fresh });
    expect(list).toMatchObject({ code: 0, stdout: '' });
    expect(list.stderr).toContain('no secrets yet');
  });

  it('granting a key not stored yet works but warns; revoking a job with no grant points at grants', async () => {
    const node = generateKeypair().address;
    expect((await run(['set', 'REAL_KEY', 'v'], { cwd: dir, env })).code).toBe(0);
    const grant = await run(['grant', 'job-typo', 'REAL_KEY', 'REAL_KYE', '--reader', node], { cwd: dir, env });
    expect(grant.code).toBe(0);
    expect(grant.stderr).toContain('warning: you have no secret named REAL_KYE yet: job job-typo cannot read it');
    expect(grant.stderr).not.toMatch(/named [^:]*REAL_KEY\b/);
    const clean = await run(['grant', 'job-clean', 'REAL_KEY', '--reader', node], { cwd: dir, env });
    expect(clean.stderr).not.toContain('warning');

    const revoke = await run(['revoke', 'nojob'], { cwd: dir, env });
    expect(revoke.code).toBe(1);
    expect(revoke.stderr).toContain('fix: run `nosana-secrets grants` to see your grants');
  });
});

describe('where the cluster parts listen', () => {
  it('the injector serves its metrics on the --metrics-host address only', async () => {
    const socketDir = mkdtempSync(join(tmpdir(), 'nss-injector-'));
    const child = spawn(process.execPath, [CLI, 'injector', '--metrics-host', '127.0.0.2', '--metrics-port', '0', '--socket-dir', socketDir, '--endpoint', 'http://127.0.0.1:4124'], {
      env: { ...process.env, LOG_LEVEL: 'info' },
    });
    try {
      let stdout = '';
      const started = await new Promise<{ metricsHost: string; metricsPort: number }>((done, fail) => {
        child.once('exit', (code) => fail(new Error(`injector exited with ${code}`)));
        child.stdout.on('data', (d: Buffer) => {
          stdout += d;
          const line = stdout.split('\n').find((l) => l.includes('injector listening'));
          if (line) done(JSON.parse(line));
        });
      });
      expect(started.metricsHost).toBe('127.0.0.2');
      expect((await fetch(`http://127.0.0.2:${started.metricsPort}/healthz`)).status).toBe(200);
      await expect(fetch(`http://127.0.0.1:${started.metricsPort}/healthz`)).rejects.toThrow();
    } finally {
      child.kill('SIGTERM');
      await new Promise((done) => child.once('exit', done));
    }
  });
});

describe('progress of long work', () => {
  const oldKey = `old:${Buffer.alloc(32, 1).toString('base64')}`;
  const newKey = `new:${Buffer.alloc(32, 2).toString('base64')}`;

  /** A fresh SQLite file with `count` rows sealed under the old key only. */
  async function oldRows(count: number): Promise<Record<string, string>> {
    const home = mkdtempSync(join(tmpdir(), 'nss-rotate-'));
    const storage = new SqliteStorage(join(home, 'db.sqlite'));
    await storage.init();
    const envelope = new Envelope(parseKeyring(oldKey, 'test'));
    const owner = generateKeypair().address;
    const keys = Array.from({ length: count }, (_, i) => `K${i}`);
    await storage.putSecrets(owner, keys.map((key) => ({ key, version: 1, ...envelope.seal(owner, key, 1, `v-${key}`) })));
    await storage.close();
    return { cwd: home, STORAGE_CONNECTION: `sqlite://${join(home, 'db.sqlite')}`, ENCRYPTION_KEYS: `${newKey},${oldKey}`, LOG_LEVEL: 'warn' };
  }

  it('rotate-keys writes plain progress lines when its output is not a terminal', async () => {
    const { cwd, ...settings } = await oldRows(1200);
    const result = await run(['rotate-keys'], { cwd: cwd!, env: settings });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('re-wrapping data keys with key new...\n');
    expect(result.stderr).toMatch(/re-wrapping data keys with key new: 1,200 data keys, [\d,]+\/s, done in [\d.]+ s\n/);
    expect(result.stderr).not.toContain('\r');
    expect(result.stdout).toContain('re-wrapped 1200 data keys with key new');
  });

  it('rotate-keys updates one line in place on a terminal', async () => {
    const { cwd, ...settings } = await oldRows(1200);
    // `script` runs the CLI on a real pseudo-terminal and copies what it wrote.
    const result = await run(['-qec', `${process.execPath} ${CLI} rotate-keys`, '/dev/null'], { cwd: cwd!, env: settings, command: ['script'] });
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/\rre-wrapping data keys with key new: 1,200 data keys, [\d,]+\/s, done in [\d.]+ s\x1b\[K/);
    expect(result.stdout).not.toContain('re-wrapping data keys with key new...');
  });
});
