// The provider's socket and process: what the driver sees before any Mount. The socket is the driver's only way in
// and anyone who can open it can ask for mounts, so it is owner-only, and it must not outlive the injector.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { startInjector, type RunningInjector } from '../../injector/main.js';
import { RUNTIME_VERSION } from '../../injector/provider.js';
import { captureLogs } from '../helpers/logs.js';
import { driverClient } from './world.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const started: RunningInjector[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const injector of started.splice(0)) await injector.close().catch(() => undefined);
});

/** Version and the socket need no Kubernetes API; the default config is enough to start. */
function noKube(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

async function start(socketDir: string): Promise<RunningInjector> {
  const injector = await startInjector(
    { socketDir, metricsHost: '127.0.0.1', metricsPort: 0, allowedEndpoints: ['http://127.0.0.1:4124'], serverTimeoutMs: 1_000 }, captureLogs().logger, noKube(),
  );
  started.push(injector);
  return injector;
}

/** Waits until a child prints a line matching `pattern` on stdout or stderr. */
async function lineFrom(child: ChildProcess, pattern: RegExp): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const line = seen.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) resolve(line);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before printing ${pattern}: ${seen}`)));
  });
}

describe('the provider socket', () => {
  it('answers Version with the provider name nosana and the package version', async () => {
    const injector = await start(mkdtempSync(join(tmpdir(), 'nsi-')));
    const client = driverClient(injector.socketPath);
    try {
      expect(await client.version()).toEqual({ version: 'v1alpha1', runtime_name: 'nosana', runtime_version: RUNTIME_VERSION });
    } finally {
      client.close();
    }
  });

  it('is created 0600 at <dir>/nosana.sock by `nosana-secrets injector` and removed when it gets SIGTERM', async () => {
    const socketDir = mkdtempSync(join(tmpdir(), 'nsi-'));
    const child = spawn(join(ROOT, 'node_modules/.bin/vite-node'), ['cli/main.ts', 'injector', '--socket-dir', socketDir, '--endpoint', 'http://127.0.0.1:4124'], {
      cwd: ROOT, env: { ...process.env, METRICS_PORT: '0', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    await lineFrom(child, /injector listening/);
    const socketPath = join(socketDir, 'nosana.sock');
    const stat = statSync(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    const client = driverClient(socketPath);
    expect((await client.version()).runtime_name).toBe('nosana');
    client.close();

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(existsSync(socketPath)).toBe(false);
  });

  it('still shuts down, and removes its socket, while a client holds a connection that never finished its handshake', async () => {
    const injector = await start(mkdtempSync(join(tmpdir(), 'nsi-')));
    // A driver stuck mid-dial: the HTTP/2 preface and nothing after it. gRPC's graceful shutdown waits for this
    // connection forever; the injector must give up on it after its grace period instead of hanging the pod's stop.
    const stuck = connect(injector.socketPath);
    await once(stuck, 'connect');
    stuck.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    try {
      await injector.close();
      expect(existsSync(injector.socketPath)).toBe(false);
    } finally {
      stuck.destroy();
    }
  }, 15_000);

  it('replaces a stale socket left behind by a crashed injector', async () => {
    const socketDir = mkdtempSync(join(tmpdir(), 'nsi-'));
    const socketPath = join(socketDir, 'nosana.sock');
    // A process that binds the socket and dies by SIGKILL leaves the file behind, exactly as a crash does.
    const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('bound'))`], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(crashed);
    await lineFrom(crashed, /bound/);
    crashed.kill('SIGKILL');
    await once(crashed, 'exit');
    expect(statSync(socketPath).isSocket()).toBe(true);

    const injector = await start(socketDir);
    const client = driverClient(injector.socketPath);
    expect((await client.version()).runtime_name).toBe('nosana');
    client.close();
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
  });

  it('refuses to take over the socket of an injector that still runs', async () => {
    const socketDir = mkdtempSync(join(tmpdir(), 'nsi-'));
    await start(socketDir);
    await expect(start(socketDir)).rejects.toThrow(/another process serves .*nosana\.sock: stop the other injector first/);
  });

  it('leaves a file that is not a socket alone and says so', async () => {
    const socketDir = mkdtempSync(join(tmpdir(), 'nsi-'));
    writeFileSync(join(socketDir, 'nosana.sock'), 'not a socket');
    await expect(start(socketDir)).rejects.toThrow(/exists and is not a socket/);
  });

  it('serves the injector metrics the dashboard reads on its own port', async () => {
    const injector = await start(mkdtempSync(join(tmpdir(), 'nsi-')));
    const text = await (await fetch(`http://127.0.0.1:${injector.metricsPort}/metrics`)).text();
    for (const name of [
      'nosana_secrets_injector_mounts_total', 'nosana_secrets_injector_mount_duration_seconds',
      'nosana_secrets_injector_server_calls_total', 'nosana_secrets_injector_token_cache_total',
    ]) expect(text).toContain(`# TYPE ${name} `);
    expect((await fetch(`http://127.0.0.1:${injector.metricsPort}/readyz`)).status).toBe(200);
  });
});
