// Starts a real secrets server (HTTP on a free loopback port, SQLite in a fresh temp dir) and captures its log
// lines, so tests can also check what was logged.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SecretsClient } from '../../common/client.js';
import { generateKeypair, signLogin, type Keypair } from '../../common/login.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { captureLogs } from './logs.js';

export interface TestServer extends RunningServer {
  dir: string;
  env: Record<string, string>;
  client: SecretsClient;
  /** Every log line written so far, raw JSON text. */
  logs: string[];
}

export async function startTestServer(env: Record<string, string> = {}, dir = mkdtempSync(join(tmpdir(), 'nss-'))): Promise<TestServer> {
  const { logs, logger } = captureLogs();
  const fullEnv = {
    PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: `sqlite://${join(dir, 'db.sqlite')}`, SECRETS_STATE_DIR: join(dir, 'state'),
    ...env,
  };
  const server = await startServer(fullEnv, logger);
  return { ...server, dir, env: fullEnv, logs, client: new SecretsClient({ endpoint: server.url }) };
}

/** Starts `nosana-secrets server` (the build in dist/) as the README says and waits until it answers. */
export async function startServerProcess(cwd: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string; stderr: () => string; stdout: () => string }> {
  const child = spawn(process.execPath, [resolve('dist/cli/main.js'), 'server'], { cwd, env: { ...process.env, HOST: '127.0.0.1', ...env } });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  child.stdout!.on('data', (d: Buffer) => { stdout += d; });
  const url = await new Promise<string>((done, fail) => {
    child.once('exit', (code) => fail(new Error(`server exited with ${code}: ${stderr}`)));
    child.stderr!.on('data', () => {
      const match = /open (http:\/\/\S+)/.exec(stderr);
      if (match) done(match[1]!);
    });
  });
  return { child, url, stderr: () => stderr, stdout: () => stdout };
}

export interface Account {
  keypair: Keypair;
  address: string;
  token: string;
}

/** A fresh keypair, logged in as owner. */
export async function newAccount(server: { client: SecretsClient }): Promise<Account> {
  const keypair = generateKeypair();
  const { token } = await server.client.login(keypair);
  return { keypair, address: keypair.address, token };
}

/** Raw HTTP, for checking exact status codes and bodies. */
export async function call(
  url: string, method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; token?: string } = {},
): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- tests inspect arbitrary JSON
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${url}${path}`, {
    method, headers, body: options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text answer, e.g. GET /
  }
  return { status: response.status, body };
}

export { signLogin, generateKeypair };
